"""Sessions, timed steps and traces. Each class serves ``with`` and ``async with`` alike;
the client decides whether sending a record is a call or an await.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import json
import logging
import time
import uuid
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Generic, Mapping, Optional, TypeVar

from ._exceptions import ValidationError
from ._mapping import merge_defaults, suggest
from ._models import ErrorInfo, LogResult, Step
from ._serialize import to_jsonable

if TYPE_CHECKING:  # pragma: no cover
    from ._recorder import Accepted, Recorder

__all__ = ["Session", "StepTimer", "Trace", "current_session"]

logger = logging.getLogger("huggingplace")

F = TypeVar("F", bound=Callable[..., Any])
Fields = dict[str, tuple[str, Any]]

_STEP_FIELDS = {
    "type": "type",
    "metadata": "metadata",
    "user_question": "user_question",
    "userQuestion": "user_question",
    "prompt_response": "prompt_response",
    "promptResponse": "prompt_response",
    "llm_model": "llm_model",
    "llmModel": "llm_model",
    "token": "token",
    "input_tokens": "input_tokens",
    "inputTokens": "input_tokens",
    "output_tokens": "output_tokens",
    "outputTokens": "output_tokens",
    "status": "status",
    "error": "error",
}

# The innermost open step in this thread or task (its owner: the session or trace it belongs to).
_current_step: ContextVar[Optional[StepTimer]] = ContextVar("huggingplace_step", default=None)
_current_session: ContextVar[Optional[Session[Any]]] = ContextVar("huggingplace_session", default=None)


def current_session() -> Session[Any] | None:
    """The session whose ``with`` block encloses this code, if any."""
    return _current_session.get()


class StepTimer:
    """The handle ``step()`` returns: times a block, nests inside the enclosing step of the same
    owner, and records an exception as ``status: "error"`` without swallowing it.

    It reads only ``perf_counter_ns`` (this is on the request's path); the step's UTC times come
    from one wall-clock reading per record, when it is logged (:meth:`plain`). Fields beyond the
    name and type live in a :class:`Step` made only when some are given."""

    # Not slotted: what most steps never set reads as these class defaults, and __init__ sets three
    # attributes instead of nine (a step is made on the request's path).
    _detail: Step | None = None  # a Step holding the fields given beyond name and type (validated)
    _start_ns: int | None = None
    _end_ns: int | None = None
    _error: ErrorInfo | None = None
    _children: list[StepTimer] | None = None
    _token: Token[Optional[StepTimer]] | None = None

    def __init__(self, owner: _StepOwner, name: str, type: str | None = None) -> None:
        self.name = name
        self.type = type
        self._owner = owner

    def __repr__(self) -> str:
        return f"StepTimer(name={self.name!r}, type={self.type!r})"

    def update(self, **fields: Any) -> StepTimer:
        """Set step fields (``metadata`` merges); validated now, naming the field on error."""
        detail = self._detail
        if detail is None:
            detail = self._detail = Step.timed(self.name)
            detail.type = self.type
        _update_step(detail, fields)
        self.type = detail.type
        return self

    @property
    def step(self) -> Step:
        """The step as it stands: a copy, with its times read now."""
        return Step.from_plain(self.plain(time.time() - time.perf_counter_ns() / 1e9))

    @property
    def start_ns(self) -> Optional[int]:
        """``perf_counter_ns()`` when the step started; for durations only."""
        return self._start_ns

    @property
    def finished(self) -> bool:
        return self._end_ns is not None

    def plain(self, offset: float) -> tuple[Any, ...]:
        """Its values as :meth:`Step.plain` gives them, with UTC times as epoch floats:
        ``offset`` is the wall clock less ``perf_counter_ns() / 1e9``, read once per record."""
        start, end, detail, error = self._start_ns, self._end_ns, self._detail, self._error
        kids = [child.plain(offset) for child in self._children] if self._children else []
        started = offset + start / 1e9 if start is not None else None
        ended = offset + end / 1e9 if end is not None else None
        took = (end - start) / 1e6 if end is not None and start is not None else None
        if detail is None:
            return (self.name, self.type, "ok" if error is None else "error", started, ended, took, error, {}, kids,
                    None, None, None, None, None, None, start)
        return (self.name, self.type, "error" if error is not None else detail.status, started, ended, took,
                error or detail.error, detail.metadata, kids, detail.user_question, detail.prompt_response,
                detail.llm_model, detail.token, detail.input_tokens, detail.output_tokens, start)

    def __enter__(self) -> StepTimer:
        owner = self._owner
        enclosing = _current_step.get()
        if enclosing is not None and enclosing._owner is owner:
            if enclosing._children is None:
                enclosing._children = [self]
            else:
                enclosing._children.append(self)
        else:
            owner._steps.append(self)
        self._token = _current_step.set(self)
        self._start_ns = time.perf_counter_ns()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._end_ns = time.perf_counter_ns()
        if exc is not None:
            self._error = ErrorInfo.from_exception(exc)
        if self._token is not None:
            try:
                _current_step.reset(self._token)
            except ValueError:  # exited in another context (a generator crossing tasks)
                _current_step.set(None)

    async def __aenter__(self) -> StepTimer:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return self.__exit__(exc_type, exc, tb)


def timed_steps(timers: list[StepTimer] | tuple[StepTimer, ...]) -> tuple[float, list[tuple[Any, ...]]]:
    """Finished timers for a record, with the wall clock less ``perf_counter_ns() / 1e9`` read
    once now: each as ``(name, type, start_ns, end_ns)`` when that is all it holds, else as
    :meth:`StepTimer.plain`; :meth:`Step.from_timer` reads either."""
    offset = time.time() - time.perf_counter_ns() / 1e9
    return offset, [
        (t.name, t.type, t._start_ns, t._end_ns)
        if t._detail is None and t._error is None and t._children is None else t.plain(offset)
        for t in timers
    ]


def _update_step(step: Step, fields: Mapping[str, Any]) -> None:
    for key, value in fields.items():
        name = _STEP_FIELDS.get(key)
        if name is None:
            raise ValidationError(f"step got an unknown field `{key}`{suggest(key, list(_STEP_FIELDS))}", field=key)
        if value is None:
            continue
        try:
            if name == "metadata":
                if not isinstance(value, Mapping):
                    raise TypeError("metadata must be a dict")
                step.metadata = {**step.metadata, **to_jsonable(value)}
            elif name == "error":
                step.error = value if isinstance(value, ErrorInfo) else ErrorInfo(type="Error", message=str(value))
                step.status = "error"
            else:
                step.set(name, value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"step field `{key}` is invalid: {exc}", field=key) from None


class _StepOwner:
    """What sessions and traces share: the top-level steps timed in them."""

    def __init__(self) -> None:
        self._steps: list[StepTimer] = []

    def step(self, name: str, type: str | None = None, **fields: Any) -> StepTimer:
        """A timed block: ``with owner.step("retrieve", type="retrieval") as st: ...``."""
        if not isinstance(name, str) or not name:
            raise ValidationError(f"step name must be a non-empty string, got {name!r}", field="name")
        if fields:
            return StepTimer(self, name).update(type=type, **fields)
        if type is None or builtins.type(type) is str:  # the common call, checked as update() would
            return StepTimer(self, name, type)
        return StepTimer(self, name).update(type=type)

    def _take_steps(self) -> list[StepTimer]:
        """The finished top-level steps, removed; open ones stay for the next record."""
        steps = self._steps
        if all(s._end_ns is not None for s in steps):  # the common case: every step has ended
            self._steps = []
            return steps
        self._steps = [s for s in steps if s._end_ns is None]
        return [s for s in steps if s._end_ns is not None]


Logged = TypeVar("Logged")  # what ``log()`` gives: a LogResult, or (async client) an awaitable of one


class Session(_StepOwner, Generic[Logged]):
    """A conversation: its id and defaults go into every record it logs, with the steps timed
    in it since its previous ``log()``. Use it with ``with`` / ``async with``, or plainly.
    ``Session[LogResult]`` from ``HuggingPlace``, ``Session[Awaitable[LogResult]]`` from
    ``AsyncHuggingPlace``."""

    def __init__(self, recorder: Recorder, session_id: str, defaults: Fields | None = None) -> None:
        self._steps = []
        self._recorder = recorder
        self.session_id = session_id
        # start_session() took session_id out of the defaults
        self._defaults = ({**defaults, "session_id": ("session_id", session_id)} if defaults
                          else {"session_id": ("session_id", session_id)})
        self._token: Token[Optional[Session[Any]]] | None = None

    def __repr__(self) -> str:
        return f"Session(session_id={self.session_id!r})"

    @property
    def defaults(self) -> Fields:
        return self._defaults

    def log(self, *args: Mapping[str, Any], **kwargs: Any) -> Logged:
        """Log one record with this session's id, defaults and finished steps.

        Returns a :class:`LogResult` (sync client) or an awaitable of one (async client).
        """
        if self._steps:
            steps = self._take_steps()
            # every step taken has started (and ended): _start_ns is an int
            measured = (time.perf_counter_ns() - min([s._start_ns for s in steps])) / 1e6 if steps else None  # type: ignore[type-var,operator]
            accepted = self._recorder.accept(args, kwargs, session=self, steps=steps, measured_ms=measured)
        else:
            accepted = self._recorder.accept(args, kwargs, session=self)
        logged: Logged = self._recorder.log(accepted)
        return logged

    def _exit(self) -> None:
        if self._token is not None:
            try:
                _current_session.reset(self._token)
            except ValueError:  # left in another context (a generator crossing tasks)
                _current_session.set(None)
        leftover = [s for s in self._steps if s.finished] if self._steps else None
        if leftover:
            self._recorder.stats.drop("unlogged_steps", len(leftover))
            logger.warning(
                "session %r ended with %d timed step(s) no log() carried: %s",
                self.session_id,
                len(leftover),
                ", ".join(s.name for s in leftover),
            )
            self._steps = [s for s in self._steps if not s.finished]

    def __enter__(self) -> Session[Logged]:
        self._token = _current_session.set(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._exit()

    async def __aenter__(self) -> Session[Logged]:
        return self.__enter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        self._exit()


def _is_provider_response(value: Any) -> bool:
    from .providers import as_dict, registry

    try:
        return registry.find(as_dict(value)) is not None
    except Exception:
        return False


def _response_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(to_jsonable(value), ensure_ascii=False)


class Trace(_StepOwner):
    """One record for one block or function call: its duration becomes ``response_time``,
    its steps ``step_data``; an exception marks it ``status: "error"`` and propagates.

    As a decorator, each call is its own trace: ``user_prompt`` is the first ``str`` argument
    (or the one named by ``prompt_arg``), ``response`` the return value.
    """

    def __init__(
        self, recorder: Recorder, name: str, fields: Fields, *, prompt_arg: str | None = None
    ) -> None:
        super().__init__()
        self._recorder = recorder
        self.name = name
        self._fields = fields
        self._prompt_arg = prompt_arg
        self._start_ns: int | None = None
        self.record: Accepted | None = None

    def __repr__(self) -> str:
        return f"Trace(name={self.name!r})"

    def update(self, *args: Mapping[str, Any], **kwargs: Any) -> Trace:
        """Add or replace record fields (``metadata`` merges), validated now."""
        given = self._recorder.normalize(args, kwargs, where="trace.update()")
        self._fields = merge_defaults(self._fields, given)
        return self

    def _fresh(self) -> Trace:
        return Trace(self._recorder, self.name, dict(self._fields), prompt_arg=self._prompt_arg)

    # ---- the block -------------------------------------------------------------------
    def _begin(self) -> None:
        self._start_ns = time.perf_counter_ns()

    def _end(self, exc: BaseException | None) -> Accepted | None:
        """Build the record; a build error is raised only when the block itself succeeded."""
        elapsed = (time.perf_counter_ns() - (self._start_ns or time.perf_counter_ns())) / 1e6
        fields = merge_defaults({"metadata": ("metadata", {"trace_name": self.name})}, self._fields)
        fields.setdefault("response", ("response", ""))
        if exc is not None:
            fields["status"] = ("status", "error")
            fields["error"] = ("error", ErrorInfo.from_exception(exc))
        try:
            accepted = self._recorder.accept((), {}, fields=fields, steps=self._take_steps(), measured_ms=elapsed)
        except ValidationError as build_error:
            if exc is None:
                raise
            self._recorder.stats.add("rejected")
            logger.error("trace %r not logged: field `%s` is invalid", self.name, build_error.field)
            return None
        if isinstance(accepted, LogResult):  # background mode: refused and counted already
            return None
        kept: Accepted = accepted
        self.record = kept
        return kept

    def __enter__(self) -> Trace:
        self._recorder.require_sync("use `async with hp.trace(...)` with AsyncHuggingPlace")
        self._begin()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        record = self._end(exc)
        if record is not None:
            self._recorder.hand_on_quietly(record)

    async def __aenter__(self) -> Trace:
        self._begin()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        record = self._end(exc)
        if record is not None:
            await self._recorder.hand_on_quietly_async(record)

    # ---- the decorator ---------------------------------------------------------------
    def _bind_prompt(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if "user_prompt" in self._fields:
            return
        try:
            bound = inspect.signature(func).bind_partial(*args, **kwargs)
        except (TypeError, ValueError):
            bound = None
        prompt: Any = None
        if self._prompt_arg is not None:
            prompt = bound.arguments.get(self._prompt_arg) if bound else kwargs.get(self._prompt_arg)
        else:
            values = list(bound.arguments.values()) if bound else [*args, *kwargs.values()]
            prompt = next((a for a in values if isinstance(a, str)), None)
        if prompt is not None:
            self._fields["user_prompt"] = ("user_prompt", prompt if isinstance(prompt, str) else _response_text(prompt))

    def _set_result(self, result: Any) -> None:
        """The return value as the response: a provider response object is read by its
        adapter (text, model, tokens), anything else becomes text."""
        if "response" not in self._fields:
            readable = not isinstance(result, str) and result is not None and _is_provider_response(result)
            self._fields["response"] = ("response", result if readable else _response_text(result))

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                trace = self._fresh()
                trace._bind_prompt(func, args, kwargs)
                async with trace as t:
                    result = await func(*args, **kwargs)
                    t._set_result(result)
                    return result

            return async_wrapper  # type: ignore[return-value]

        self._recorder.require_sync(
            "AsyncHuggingPlace.trace decorates `async def` functions; use HuggingPlace for plain functions"
        )

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            trace = self._fresh()
            trace._bind_prompt(func, args, kwargs)
            with trace as t:
                result = func(*args, **kwargs)
                t._set_result(result)
                return result

        return wrapper  # type: ignore[return-value]


def new_session_id() -> str:
    return uuid.uuid4().hex
