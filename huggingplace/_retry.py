"""When to try a record again and how long to wait: one policy, built into tenacity's
``Retrying`` for the sync client and ``AsyncRetrying`` for the async one.
"""

from __future__ import annotations

import email.utils
import enum
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    import tenacity

import attrs

from ._exceptions import (
    APIError,
    APIStatusError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
)
from ._models import rng

__all__ = ["RetryPolicy", "parse_retry_after", "is_retryable", "Outcome", "outcome", "retry_after_of"]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Malformed values give ``None`` (the caller falls back to its own backoff); past dates give 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        return None
    return seconds


def _stop_never(state: Any) -> bool:
    return False


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, APIError) and exc.retryable


class Outcome(enum.Enum):
    """What to do with a record after one attempt; the worker and ``spool replay`` both ask."""

    SENT = "sent"  # stored (or already stored)
    RETRY = "retry"  # transient: try again after a backoff
    HOLD = "hold"  # a wrong key or URL: keep the record (spool) and pause, never drop it
    REJECT = "reject"  # the endpoint refused this record: retrying cannot help


def outcome(exc: BaseException | None) -> Outcome:
    if exc is None:
        return Outcome.SENT
    if isinstance(exc, (AuthenticationError, PermissionDeniedError, NotFoundError)):
        return Outcome.HOLD
    if is_retryable(exc):
        return Outcome.RETRY
    return Outcome.REJECT


def retry_after_of(exc: BaseException | None) -> float | None:
    """The server's ``Retry-After`` in seconds, when the error carried one."""
    return exc.retry_after if isinstance(exc, APIStatusError) else None


@attrs.frozen
class RetryPolicy:
    """Exponential backoff with full jitter, at least the server's ``Retry-After``.

    A ``Retry-After`` longer than ``max_retry_after`` ends the retries at once rather than
    blocking the caller for that long.
    """

    max_retries: int = 3
    initial: float = 0.5
    maximum: float = 8.0
    max_retry_after: float = 60.0
    rand: Callable[[], float] = attrs.field(default=rng.random, repr=False)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(maximum, initial * 2**(attempt-1))]."""
        ceiling = min(self.maximum, self.initial * (2 ** max(0, attempt - 1)))
        return float(ceiling * self.rand())

    def delay(self, attempt: int, exc: BaseException | None) -> float:
        retry_after: float | None = exc.retry_after if isinstance(exc, APIStatusError) else None
        backoff = self.backoff(attempt)
        return max(backoff, retry_after) if retry_after is not None else backoff

    def should_retry(self, attempt: int, exc: BaseException | None) -> bool:
        if exc is None or not is_retryable(exc) or attempt > self.max_retries:
            return False
        retry_after = exc.retry_after if isinstance(exc, APIStatusError) else None
        return retry_after is None or retry_after <= self.max_retry_after

    # tenacity glue: the decisions above, nothing else
    def _retry(self, state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        return self.should_retry(state.attempt_number, exc)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        return self.delay(state.attempt_number, outcome.exception() if outcome is not None else None)

    def _kwargs(self, before_sleep: Callable[[tenacity.RetryCallState], Any] | None) -> dict[str, Any]:
        return {
            "retry": self._retry,
            "wait": self._wait,
            "stop": _stop_never,  # _retry owns the attempt limit
            "reraise": True,
            "before_sleep": before_sleep,
        }

    def retrying(  # tenacity loads on the first foreground send, not at import
        self,
        *,
        sleep: Callable[[float], None] | None = None,
        before_sleep: Callable[[tenacity.RetryCallState], Any] | None = None,
    ) -> tenacity.Retrying:
        import tenacity

        return tenacity.Retrying(sleep=sleep or time.sleep, **self._kwargs(before_sleep))

    def async_retrying(
        self,
        *,
        sleep: Callable[[float], Any] | None = None,
        before_sleep: Callable[[tenacity.RetryCallState], Any] | None = None,
    ) -> tenacity.AsyncRetrying:
        import tenacity

        kwargs = self._kwargs(before_sleep)
        if sleep is not None:
            kwargs["sleep"] = sleep
        return tenacity.AsyncRetrying(**kwargs)
