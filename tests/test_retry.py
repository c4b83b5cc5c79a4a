"""The retry policy: which failures are retried, how long to wait, Retry-After parsing."""

from __future__ import annotations

import email.utils

import pytest

from huggingplace import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
)
from huggingplace._retry import RetryPolicy, parse_retry_after


@pytest.mark.parametrize(
    "value, expected",
    [("3", 3.0), ("0.5", 0.5), (" 10 ", 10.0), ("0", 0.0), ("soon", None), ("", None), (None, None),
     ("-4", None), ("nan", None), ("inf", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30.0, abs=1.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def _status(cls: type, retry_after: float | None = None) -> Exception:
    return cls("x", status_code=503, retry_after=retry_after)


@pytest.mark.parametrize(
    "exc, retried",
    [
        (APIConnectionError("refused"), True),
        (APITimeoutError("slow"), True),
        (_status(InternalServerError), True),
        (_status(RateLimitError), True),
        (_status(AuthenticationError), False),
        (BadRequestError("bad", status_code=422), False),
        (ValueError("not ours"), False),
    ],
)
def test_should_retry(exc: Exception, retried: bool) -> None:
    assert RetryPolicy(max_retries=3).should_retry(1, exc) is retried


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(max_retries=2)
    exc = APIConnectionError("refused")
    assert [policy.should_retry(n, exc) for n in (1, 2, 3)] == [True, True, False]


def test_backoff_is_exponential_with_full_jitter() -> None:
    top = RetryPolicy(initial=0.5, maximum=8.0, rand=lambda: 1.0)
    assert [top.backoff(n) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert RetryPolicy(rand=lambda: 0.0).backoff(3) == 0.0


def test_retry_after_is_a_floor_on_the_wait() -> None:
    policy = RetryPolicy(rand=lambda: 0.0)
    assert policy.delay(1, _status(RateLimitError, retry_after=4.0)) == 4.0


def test_retry_after_beyond_the_cap_stops_retrying() -> None:
    """A server asking for an hour ends the retries instead of blocking the caller."""
    policy = RetryPolicy(max_retry_after=60.0)
    assert policy.should_retry(1, _status(RateLimitError, retry_after=3600.0)) is False
    assert policy.should_retry(1, _status(RateLimitError, retry_after=30.0)) is True
