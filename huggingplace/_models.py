"""The records the SDK builds: attrs classes with their invariants as validators.

Adaptation from user input lives in ``_mapping.py``; turning a record into the wire payload
lives in ``_wire.py``. These classes only hold data.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Optional, Tuple, Union

import attrs
from attrs import validators as v

from ._fields import MAX_INT  # the collector's limit too

__all__ = [
    "ErrorInfo", "TokenUsage", "Step", "LogRecord", "InvalidField", "LogResult", "new_event_id", "utcnow", "MAX_INT",
]

_EVENT_ID = re.compile(r"^[0-9a-f]{32}$")
STATUSES = ("ok", "error")


#: the SDK's own random draws (event ids, backoff and probe jitter, sampling), seeded from
#: os.urandom once (not a syscall per call, on the hot path) and again in a forked child. The
#: host's ``random`` module is never touched: an app that seeds it stays reproducible.
rng = random.Random()
_pool: list[str] = []  # ids drawn ahead, taken one per record
_ID_SLICES = [slice(i, i + 32) for i in range(0, 32 * 512, 32)]


def _reseed() -> None:
    rng.seed()
    _pool.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)  # a forked child never repeats its parent's draws


def new_event_id() -> str:
    """32 lowercase hex characters, unique per record, reused on every retry and replay. Drawn
    512 at a time (one draw and one hex encoding for all: this is on ``log()``'s path); a
    ``list.pop`` is atomic, so threads never share one."""
    try:
        return _pool.pop()
    except IndexError:
        _pool.extend(map(rng.randbytes(16 * 512).hex().__getitem__, _ID_SLICES))
        return _pool.pop()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _not_bool(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool):
        raise TypeError(f"'{attribute.name}' must be a number, not a bool ({value!r})")


def _count() -> Any:
    """A non-negative integer (bools refused)."""
    return v.and_(_not_bool, v.instance_of(int), v.ge(0), v.le(MAX_INT))


def _opt(validator: Any) -> Any:
    return v.optional(validator)


_str = v.instance_of(str)
_json_object = v.instance_of(Mapping)  # type: ignore[type-abstract]


@attrs.frozen
class ErrorInfo:
    """What went wrong in a failed call or step: the exception's type name and message."""

    type: str = attrs.field(validator=_str)
    message: str = attrs.field(validator=_str)

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """Never raises: an exception whose ``str()`` fails is described by its type."""
        try:
            message = str(exc)
        except Exception:
            message = f"<{type(exc).__name__}: str() failed>"
        return cls(type=type(exc).__name__, message=message if isinstance(message, str) else "")


@attrs.frozen(kw_only=True)
class TokenUsage:
    """Token counts of one call; ``total_tokens`` defaults to prompt + completion."""

    prompt_tokens: int = attrs.field(default=0, validator=_count())
    completion_tokens: int = attrs.field(default=0, validator=_count())
    total_tokens: int = attrs.field(validator=_count())

    @total_tokens.default
    def _total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@attrs.define(kw_only=True, eq=False, on_setattr=attrs.setters.NO_OP)
class Step:
    """One timed stage of a request (retrieve, generate, a tool call), possibly with nested steps.

    Created and timed by ``Session.step()`` / ``Trace.step()``; its durations come from
    ``perf_counter_ns`` and its ``started_at`` / ``ended_at`` from the UTC wall clock.
    Constructing one validates every field; setting one later does not (timing a step sets
    four, on the request's path), so :meth:`set` is the checked way to change a field.
    """

    name: str = attrs.field(validator=_str)
    type: Optional[str] = attrs.field(default=None, validator=_opt(_str))
    status: str = attrs.field(default="ok", validator=v.in_(STATUSES))
    started_at: Optional[datetime] = None
    ended_at: Optional[datetime] = None
    time_ms: Optional[float] = None
    error: Optional[ErrorInfo] = None
    metadata: dict[str, Any] = attrs.Factory(dict)
    steps: list[Step] = attrs.Factory(list)
    user_question: Optional[str] = attrs.field(default=None, validator=_opt(_str))
    prompt_response: Optional[str] = attrs.field(default=None, validator=_opt(_str))
    llm_model: Optional[str] = attrs.field(default=None, validator=_opt(_str))
    token: Optional[int] = attrs.field(default=None, validator=_opt(_count()))
    input_tokens: Optional[int] = attrs.field(default=None, validator=_opt(_count()))
    output_tokens: Optional[int] = attrs.field(default=None, validator=_opt(_count()))
    _start_ns: Optional[int] = attrs.field(default=None, alias="_start_ns", repr=False)

    @classmethod
    def timed(cls, name: str) -> Step:
        """A new step to time, named ``name`` (a non-empty string, checked by the caller), with
        every other field at its default: built without the validators ``__init__`` runs on
        those defaults (this is on the request's path; a test keeps it equal to ``Step(name=)``)."""
        step = cls.__new__(cls)
        step.name = name
        step.type = step.started_at = step.ended_at = step.time_ms = step.error = None
        step.user_question = step.prompt_response = step.llm_model = None
        step.token = step.input_tokens = step.output_tokens = step._start_ns = None
        step.status = "ok"
        step.metadata = {}
        step.steps = []
        return step

    def set(self, name: str, value: Any) -> None:
        """Set one field, checked by the field's validator (``TypeError``/``ValueError``)."""
        validator = _STEP_VALIDATORS.get(name)
        if validator is not None:
            validator(self, _STEP_FIELDS[name], value)
        setattr(self, name, value)

    def start(self) -> None:
        self.started_at = utcnow()
        self._start_ns = time.perf_counter_ns()

    def finish(self, exc: BaseException | None = None) -> None:
        end_ns = time.perf_counter_ns()
        self.ended_at = utcnow()
        if self._start_ns is not None:
            self.time_ms = (end_ns - self._start_ns) / 1e6
        if exc is not None:
            self.status = "error"
            self.error = ErrorInfo.from_exception(exc)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as :meth:`plain` values (attrs' state dict and a datetime's own pickling cost
        several times as much, and a sender process receives steps by the thousand)."""
        return Step.from_plain, (self.plain(),)

    def plain(self) -> tuple[Any, ...]:
        """Its values in field order, nested steps as their own ``plain()``, UTC times as epoch
        floats (which come back to the same microsecond): builtins only, for ``marshal``."""
        return (self.name, self.type, self.status, _stamp(self.started_at), _stamp(self.ended_at), self.time_ms,
                self.error, self.metadata, [s.plain() if type(s) is Step else s for s in self.steps] if self.steps
                else [], self.user_question, self.prompt_response, self.llm_model, self.token, self.input_tokens,
                self.output_tokens, self._start_ns)

    @classmethod
    def from_plain(cls, values: tuple[Any, ...]) -> Step:
        """The step :meth:`plain` described (checked when it was made)."""
        step = cls.__new__(cls)
        # one assignment per field, in _STEP_NAMES's order (a test keeps the two the same)
        (step.name, step.type, step.status, started, ended, step.time_ms, step.error, step.metadata, nested,
         step.user_question, step.prompt_response, step.llm_model, step.token, step.input_tokens,
         step.output_tokens, step._start_ns) = values
        step.started_at = datetime.fromtimestamp(started, timezone.utc) if type(started) is float else started
        step.ended_at = datetime.fromtimestamp(ended, timezone.utc) if type(ended) is float else ended
        step.steps = [cls.from_plain(s) if type(s) is tuple else s for s in nested] if nested else []
        return step

    @classmethod
    def from_timer(cls, values: tuple[Any, ...], offset: float) -> Step:
        """The step a ``StepTimer`` captured (``_session.timed_steps``): ``(name, type, start_ns,
        end_ns)``, its UTC times the record's ``offset`` plus those, or a whole :meth:`plain`."""
        if len(values) != 4:
            return cls.from_plain(values)
        name, kind, start, end = values
        return cls.from_plain((name, kind, "ok", offset + start / 1e9, offset + end / 1e9, (end - start) / 1e6, None,
                               {}, [], None, None, None, None, None, None, start))

    @property
    def start_ns(self) -> Optional[int]:
        """``perf_counter_ns()`` when the step started; for durations only."""
        return self._start_ns

    @property
    def finished(self) -> bool:
        return self.ended_at is not None


_STEP_FIELDS = attrs.fields_dict(Step)
_STEP_NAMES = tuple(_STEP_FIELDS)  # the order of Step.plain()
_STEP_VALIDATORS = {a.name: a.validator for a in attrs.fields(Step) if a.validator is not None}


def _stamp(when: Any) -> Any:
    return when.timestamp() if type(when) is datetime and when.tzinfo is timezone.utc else when


StepLike = Union[Step, Mapping[str, Any]]


def _checked(default: Any, validator: Any = None, plain: Optional[type] = None, **kwargs: Any) -> Any:
    """A LogRecord field whose validator :meth:`LogRecord.create` runs on given values only
    (but for a value of exactly the ``plain`` type, which it accepts)."""
    return attrs.field(default=default, metadata={"check": validator, "plain": plain}, **kwargs)


def _text(default: Any = None) -> Any:
    """A LogRecord text field: a ``str`` (``None`` too, unless it is required)."""
    return attrs.field(default=default, metadata={"check": _str if default is attrs.NOTHING else _opt(_str),
                                                  "plain": str})


@attrs.frozen(kw_only=True)
class LogRecord:
    """One record for ``/store_generated_response``, validated. Attribute names are the SDK's
    keyword names; ``_wire.py`` renames them to the contract's wire names.

    Build it with :meth:`create`, which checks each given value against its field's validator;
    the defaults are valid by construction, so a record of five fields pays for five checks,
    not twenty-four (this is on every ``log()``).
    """

    user_prompt: str = _text(attrs.NOTHING)
    response: str = _text(attrs.NOTHING)
    event_id: str = attrs.field(factory=new_event_id, metadata={"check": v.matches_re(_EVENT_ID)})
    timestamp: datetime = attrs.field(factory=utcnow, metadata={"check": v.instance_of(datetime)})
    metadata: Optional[Mapping[str, Any]] = _checked(None, _opt(_json_object), plain=dict)
    user_metadata: Optional[Mapping[str, Any]] = _checked(None, _opt(_json_object), plain=dict)
    user_id: Optional[str] = _text()
    session_id: Optional[str] = _text()
    file_name: Optional[str] = _text()
    llm_model: Optional[str] = _text()
    token_count: Optional[int] = _checked(None, _opt(_count()))
    token_usage: Optional[TokenUsage] = _checked(None, _opt(v.instance_of(TokenUsage)))
    response_time: Optional[float] = _checked(None, _opt(v.and_(_not_bool, v.instance_of((int, float)), v.ge(0))))
    step_data: Tuple[StepLike, ...] = _checked((), converter=tuple)
    user_uuid: Optional[str] = _text()
    org_uuid: Optional[str] = _text()
    user_roles: Optional[Tuple[str, ...]] = _checked(None, _opt(v.deep_iterable(_str, v.instance_of(tuple))))
    llm_model2: Optional[str] = _text()
    mapping_table: Optional[Union[str, Mapping[str, Any]]] = _checked(None, _opt(v.instance_of((str, Mapping))))
    message_id: Optional[str] = _text()
    status: str = _checked("ok", v.in_(STATUSES))
    error: Optional[ErrorInfo] = _checked(None, _opt(v.instance_of(ErrorInfo)))

    @classmethod
    def create(cls, **values: Any) -> LogRecord:
        """A record from ``values``, each checked first; raises :class:`InvalidField` naming the
        first field refused (``TypeError`` for an unknown or missing one, as ``__init__`` does)."""
        for name, value in values.items():
            if _PLAIN.get(name) is type(value):
                continue  # what its check accepts, without the calls a check costs
            checked = _CHECKS.get(name)
            if checked is not None:
                try:
                    checked[0](None, checked[1], value)
                except Exception as exc:  # a refusal; or its message failed on the value's repr
                    raise InvalidField(name, exc) from exc
        return cls(**values)


class InvalidField(ValueError):
    """A value :meth:`LogRecord.create` refused; ``name`` is the field's."""

    def __init__(self, name: str, cause: Exception) -> None:
        super().__init__(f"`{name}` is invalid ({cause})")
        self.name = name


_CHECKS: dict[str, tuple[Any, Any]] = {
    a.name: (a.metadata["check"], a) for a in attrs.fields(LogRecord) if a.metadata["check"] is not None
}
_PLAIN: dict[str, type] = {a.name: a.metadata["plain"] for a in attrs.fields(LogRecord) if a.metadata.get("plain")}


@attrs.frozen(slots=False, init=False)
class LogResult:
    """What ``log()`` returns: the record's ``event_id`` and how the endpoint answered.

    ``queued`` is true when a background client accepted the record for later delivery
    (then ``status_code`` is ``None``); ``error`` says why a background client refused it;
    ``dropped`` names why a record was left out on purpose (``sampled``, ``before_send``,
    ``disabled``).
    """

    event_id: str
    status_code: Optional[int] = None
    body: Any = attrs.field(default=None, repr=False)
    queued: bool = False
    error: Optional[str] = None
    dropped: Optional[str] = None

    def __init__(self, event_id: str, status_code: Optional[int] = None, body: Any = None, queued: bool = False,
                 error: Optional[str] = None, dropped: Optional[str] = None) -> None:
        # attrs' frozen __init__, less its setattr lookup: every background log() makes one
        fields = self.__dict__
        fields["event_id"], fields["status_code"], fields["body"] = event_id, status_code, body
        fields["queued"], fields["error"], fields["dropped"] = queued, error, dropped
