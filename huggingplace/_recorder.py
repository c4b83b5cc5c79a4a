"""The recorder: what a caller passes, turned into a record and handed on.

Each client makes one and gives it to everything that logs for it: its own ``log()``, sessions,
traces and ``wrap()``. They ask it to accept input (validated, with the enclosing context's and
session's fields) and to hand the result on; how a record travels (a request now, or the
background queue) stays the client's, behind the ``log`` and ``send`` callables it passes in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import attrs

from ._context import Scope, current_scope
from ._draft import Draft, KeywordDraft
from ._exceptions import HuggingPlaceError, ValidationError
from ._internal import swallow
from ._mapping import build_record, merge_into, normalize
from ._models import LogRecord, LogResult, Step
from ._privacy import Processor
from ._session import current_session
from ._stats import Stats

if TYPE_CHECKING:  # pragma: no cover
    from ._background import Pipeline
    from ._session import Session

__all__ = ["Recorder", "Accepted", "Fields"]

logger = logging.getLogger("huggingplace")

Fields = dict[str, tuple[str, Any]]
#: what ``accept`` hands on: a validated record, or (background mode) a draft the worker validates
Accepted = Union[LogRecord, Draft]


@attrs.define(kw_only=True, eq=False)
class Recorder:
    """Turns caller input into records and hands them on; one per client."""

    enabled: bool
    is_async: bool
    org_id: str
    stats: Stats
    processor: Processor
    pipeline: Optional[Pipeline]
    #: the client's log() for an accept() result: a LogResult, or an awaitable of one
    _log: Callable[[Any], Any] = attrs.field(alias="log")
    #: the client's foreground delivery of one record (raises on failure)
    _send: Callable[[LogRecord], Any] = attrs.field(alias="send")
    #: background mode validates on the worker and log() only captures; not in durable mode,
    #: whose write-ahead encodes on the caller's thread
    defer: bool = attrs.field(init=False)
    #: drafts may be keyword drafts: deferred, and no sampling (which reads the session id now)
    quick: bool = attrs.field(init=False)

    @defer.default
    def _defer(self) -> bool:
        return self.pipeline is not None and not self.pipeline.config.durable

    @quick.default
    def _quick(self) -> bool:
        return self.defer and self.processor.config.sample_rate >= 1.0

    @property
    def background(self) -> bool:
        return self.pipeline is not None

    def require_sync(self, message: str) -> None:
        if self.is_async:
            raise TypeError(message)

    # ---- input to records (pure) ---------------------------------------------------------
    def normalize(self, args: tuple[Mapping[str, Any], ...], kwargs: Mapping[str, Any], *, where: str) -> Fields:
        """A call's positional dict and keywords as fields, keys checked (not values)."""
        if len(args) > 1:
            raise ValidationError(f"{where} takes at most one dict of fields, got {len(args)} positional arguments")
        if args and not isinstance(args[0], Mapping):
            raise ValidationError(
                f"{where} takes fields as keywords or one dict, got {type(args[0]).__name__}; "
                "e.g. log(user_prompt=..., response=...)"
            )
        if not args:
            return normalize(kwargs, where=where)
        fields = normalize(args[0], where=where)
        return {**fields, **normalize(kwargs, where=where)} if kwargs else fields

    def _fields(
        self,
        args: tuple[Mapping[str, Any], ...],
        kwargs: Mapping[str, Any],
        context: Optional[Scope],
        *,
        session: Session[Any] | None = None,
        fields: Fields | None = None,
        steps: list[Step] | tuple[Step, ...] = (),
        measured_ms: float | None = None,
    ) -> Fields:
        """One record's fields: the enclosing context's, then the session's defaults, then the
        caller's own, then the steps timed for it; ``measured_ms`` is the ``response_time``
        unless given."""
        given = fields if fields is not None else self.normalize(args, kwargs, where="log()")
        scope = session or current_session()
        if scope is not None and scope._recorder is not self:
            scope = None
        if context is not None or scope is not None:  # one dict: context, then session, then the call's
            merged: Fields = dict(context.fields) if context is not None else {}
            if scope is not None:
                merge_into(merged, scope.defaults)
            given = merge_into(merged, given)
        elif fields is not None:
            given = dict(given)  # the caller's dict stays as it was
        if steps:
            if "step_data" in given:
                merge_into(given, {"step_data": ("step_data", list(steps))})
            else:  # the list is the session's to give (Draft copies it anyway)
                given["step_data"] = ("step_data", steps if isinstance(steps, list) else list(steps))
        if measured_ms is not None:
            given.setdefault("response_time", ("response_time", measured_ms))
        return given

    def accept(self, args: tuple[Mapping[str, Any], ...], kwargs: Mapping[str, Any], **extra: Any) -> Any:
        """A record to hand on (validated, or a background draft), or a LogResult saying why
        not: disabled, not tracked, sampled out, or (background mode, which never raises into
        the host) a counted rejection."""
        if not self.enabled:
            return LogResult(event_id="", dropped="disabled")
        scope = current_scope()
        if scope is not None and not scope.track:
            self.stats.drop("not_tracked")
            return LogResult(event_id="", dropped="not_tracked")
        try:
            if self.quick and not args and not extra and scope is None and current_session() is None:
                quick = KeywordDraft.capture(kwargs)  # the common background log(**fields)
                if quick is not None:
                    return quick
            fields = self._fields(args, kwargs, scope, **extra)
            accepted: Accepted = Draft(fields) if self.defer else build_record(fields)
            given = fields.get("session_id")
            if not self.processor.keep(given[1] if given is not None and isinstance(given[1], str) else None):
                self.stats.drop("sampled")
                return LogResult(event_id=accepted.event_id, dropped="sampled")
            return accepted
        except ValidationError as exc:
            if self.pipeline is None:
                raise
            self.pipeline.reject(exc)
            return LogResult(event_id="", error=str(exc))
        except Exception as exc:  # anything else a caller passed: background mode never raises
            if self.pipeline is None:
                raise ValidationError(
                    f"log() could not build a record from what it was given ({type(exc).__name__})"
                ) from exc
            swallow("building a record", exc, stats=self.stats, count="invalid_input")
            return LogResult(event_id="", error=type(exc).__name__)

    # ---- handing on ----------------------------------------------------------------------
    def log(self, accepted: Any) -> Any:
        """What ``log()`` returns for an :meth:`accept` result: a LogResult, or an awaitable
        of one from the async client."""
        return self._log(accepted)

    def enqueue(self, accepted: Accepted) -> LogResult:
        """Background mode: queue, never block, never raise."""
        assert self.pipeline is not None
        queued = self.pipeline.submit(accepted)  # positional: a tenth cheaper, on every call
        return LogResult(accepted.event_id, None, None, queued, None if queued else "client closed")

    def hand_on_quietly(self, accepted: Accepted) -> None:
        """Deliver from code the caller did not write to log (a ``with`` block's end, a
        wrapped call): a record the endpoint refuses is logged as a warning, never raised."""
        if self.pipeline is not None:
            self.enqueue(accepted)
            return
        assert isinstance(accepted, LogRecord)
        try:
            self._send(accepted)
        except HuggingPlaceError as exc:
            self._warn_unstored(accepted, exc)

    async def hand_on_quietly_async(self, accepted: Accepted) -> None:
        """As :meth:`hand_on_quietly`, from a coroutine: the sync client sends from a thread."""
        if self.pipeline is not None or not self.is_async:
            import asyncio  # loaded already: this runs on an event loop

            if self.pipeline is not None:
                self.enqueue(accepted)
            else:
                await asyncio.to_thread(self.hand_on_quietly, accepted)
            return
        assert isinstance(accepted, LogRecord)
        try:
            await self._send(accepted)
        except HuggingPlaceError as exc:
            self._warn_unstored(accepted, exc)

    def _warn_unstored(self, record: LogRecord, exc: HuggingPlaceError) -> None:
        status = getattr(exc, "status_code", None)
        logger.warning(
            "record %s was not stored (%s%s)", record.event_id, type(exc).__name__, f", HTTP {status}" if status else ""
        )
