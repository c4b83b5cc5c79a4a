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
from ._draft import Capture, Draft, KeywordDraft
from ._exceptions import HuggingPlaceError, ValidationError
from ._internal import swallow
from ._mapping import build_record, compose, merge_into, normalize
from ._models import LogRecord, LogResult, Step
from ._privacy import Processor
from ._session import current_session, timed_steps
from ._stats import Stats

if TYPE_CHECKING:  # pragma: no cover
    from ._background import Pipeline
    from ._session import Session, StepTimer

__all__ = ["Recorder", "Accepted", "Fields"]

logger = logging.getLogger("huggingplace")

Fields = dict[str, tuple[str, Any]]
#: what ``accept`` hands on: a validated record, or (background mode) a draft the worker validates
Accepted = Union[LogRecord, Capture]


@attrs.define(kw_only=True, eq=False)
class Recorder:
    """Turns caller input into records and hands them on; one per client."""

    enabled: bool
    is_async: bool
    org_id: str
    stats: Stats
    processor: Processor
    pipeline: Optional[Pipeline]
    #: what the client's ``log()`` returns for an :meth:`accept` result: a LogResult, or (the
    #: async client) an awaitable of one
    log: Callable[[Any], Any]
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

    def _defaults(self, context: Optional[Scope], session: Session[Any] | None) -> Optional[Fields]:
        """What a record inherits: the enclosing context's fields, then its session's defaults
        (the given session, else the one whose block encloses the call, if it is this client's)."""
        scope = session or current_session()
        if scope is not None and scope._recorder is not self:
            scope = None
        if scope is None:
            return context.fields if context is not None else None
        return scope.defaults if context is None else merge_into(dict(context.fields), scope.defaults)

    def accept(self, args: tuple[Mapping[str, Any], ...], kwargs: Mapping[str, Any], *,
               session: Session[Any] | None = None, fields: Fields | None = None,
               steps: list[StepTimer] | tuple[StepTimer, ...] = (), measured_ms: float | None = None) -> Any:
        """A record to hand on (validated, or a background draft), or a LogResult: the queued
        one of a background ``log(**fields)`` (captured and queued here, the shortest path),
        or one saying why not: disabled, not tracked, sampled out, or (background mode, which
        never raises into the host) a counted rejection. Its fields: ``fields`` (already
        normalized) or the call's ``args``/``kwargs``, over the context's and session's, with
        the ``steps`` timed for it and ``measured_ms`` as the ``response_time`` unless given."""
        if not self.enabled:
            return LogResult(event_id="", dropped="disabled")
        scope = current_scope()
        if scope is not None and not scope.track:
            self.stats.drop("not_tracked")
            return LogResult(event_id="", dropped="not_tracked")
        try:
            defaults = self._defaults(scope, session)
            offset, timed = timed_steps(steps) if steps else (0.0, ())
            if self.quick and not args and fields is None:  # background log(**fields), in a session or not
                quick = KeywordDraft.capture(kwargs, defaults, timed, measured_ms, offset)
                if quick is not None:
                    return self.enqueue(quick)
            given = fields if fields is not None else self.normalize(args, kwargs, where="log()")
            record = compose(given, defaults, [Step.from_timer(s, offset) for s in timed], measured_ms,
                             fresh=fields is None)
            accepted: Accepted = Draft(record) if self.defer else build_record(record)
            sid = record.get("session_id")
            if not self.processor.keep(sid[1] if sid is not None and isinstance(sid[1], str) else None):
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
