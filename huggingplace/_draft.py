"""Drafts: what a background ``log()`` captures on the caller's thread, built into a validated
record later, on the worker. Capturing costs the caller microseconds; validation, mapping and
encoding are the worker's."""

from __future__ import annotations

import datetime as _dt
import pickle
import time as _time
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from ._fields import ALIASES
from ._mapping import build_record, compose, normalize
from ._models import LogRecord, Step, new_event_id

__all__ = ["Capture", "Draft", "KeywordDraft", "plain_dumps"]

_CONTAINERS = (dict, list, tuple)


def _snapshot(value: Any, depth: int = 16) -> Any:
    """Plain dicts, lists and tuples copied (deeply, up to ``depth``); anything else kept as it
    is. What a caller changes after ``log()`` returns must not change the record."""
    kind = type(value)
    if depth <= 0 or kind not in _CONTAINERS:
        return value
    if kind is dict:
        copied: Any = value.copy()  # a C copy, then only the nested containers replaced
        for k, v in copied.items():
            if type(v) in _CONTAINERS:
                copied[k] = _snapshot(v, depth - 1)
        return copied
    copied = list(value)
    for i, v in enumerate(copied):
        if type(v) in _CONTAINERS:
            copied[i] = _snapshot(v, depth - 1)
    return copied if kind is list else kind(copied)


class Capture:
    """A record captured when ``log()`` was called (its id and time fixed, what it was given
    copied) and validated later by :meth:`build`, on the worker. ``size`` estimates it for the
    queue's byte bound; ``at`` is the call's time, unless the caller gave a ``timestamp``."""

    __slots__ = ("event_id", "size", "at")
    event_id: str
    size: int
    at: Optional[float]

    def fields(self) -> dict[str, tuple[str, Any]]:
        """The captured fields, as :func:`normalize` gives them."""
        raise NotImplementedError

    def build(self) -> LogRecord:
        """The validated record (raises :class:`ValidationError` naming the field as the caller
        spelled it)."""
        fields = self.fields()
        if self.at is not None:
            fields["timestamp"] = ("timestamp", _dt.datetime.fromtimestamp(self.at, _dt.timezone.utc))
        return build_record(fields)


class Draft(Capture):
    """Any call's normalized fields, held compactly (names and values in one flat tuple, the
    caller's spelling only where it differs), since up to ``max_queue_size`` wait: its dicts
    and lists copied, anything else kept by reference."""

    __slots__ = ("items", "spelled")
    items: tuple[Any, ...]
    spelled: Optional[dict[str, str]]

    def __init__(self, fields: Mapping[str, tuple[str, Any]]) -> None:
        self.at = None if "timestamp" in fields else _time.time()  # a datetime when built
        flat: list[Any] = []
        spelled: dict[str, str] | None = None
        size = 512  # the queue's byte bound counts the two texts; the rest is small
        for name, (key, value) in fields.items():
            if type(value) in _CONTAINERS:
                value = _snapshot(value)
            elif (name == "user_prompt" or name == "response") and isinstance(value, str):
                size += len(value)
            flat += (name, value)
            if key is not name and key != name:
                if spelled is None:
                    spelled = {}
                spelled[name] = key
        given = fields.get("event_id")
        if given is None:
            self.event_id = new_event_id()
            flat += ("event_id", self.event_id)
        else:
            self.event_id = given[1] if isinstance(given[1], str) else ""
        self.items = tuple(flat)
        self.spelled = spelled
        self.size = size

    @classmethod
    def restore(cls, items: tuple[Any, ...], spelled: dict[str, str] | None, event_id: str, size: int,
                at: float | None) -> Draft:
        """A draft from its parts (another process's, handed over by ``_sender``)."""
        draft = cls.__new__(cls)
        draft.items, draft.spelled, draft.event_id, draft.size, draft.at = items, spelled, event_id, size, at
        return draft

    def fields(self) -> dict[str, tuple[str, Any]]:
        spelled = self.spelled or {}
        items = self.items
        return {items[i]: (spelled.get(items[i], items[i]), items[i + 1]) for i in range(0, len(items), 2)}


class _NotPlain(Exception):
    pass


class _PlainPickler(pickle.Pickler):
    """Pickles builtins only: the C pickler asks ``reducer_override`` about every object that is
    not a builtin container, string, number, bool or None, and this refuses them all, so that no
    user code runs and what is read back is exactly what was given."""

    def reducer_override(self, obj: Any) -> Any:
        raise _NotPlain


class _Chunks(list):  # type: ignore[type-arg]
    """What a pickler writes: its output in one chunk (a long text in a few), kept as given."""

    __slots__ = ()
    write = list.append


_picklers: list[tuple[_Chunks, _PlainPickler]] = []  # idle ones; list.pop/append are atomic


def plain_dumps(value: Any) -> Optional[bytes]:
    """``value`` pickled when it holds only builtins and no cycle (a deep copy, in C), else None."""
    try:
        chunks, pickler = _picklers.pop()
    except IndexError:
        chunks = _Chunks()
        pickler = _PlainPickler(chunks, pickle.HIGHEST_PROTOCOL)
        pickler.fast = True  # no memo: faster, and a cycle is refused (ValueError), as Draft renders it
    try:
        pickler.dump(value)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except (_NotPlain, ValueError, RecursionError):  # the answer, not an error: an object, a cycle
        return None  # or nesting too deep for the C pickler; the caller captures it as a Draft
    finally:
        chunks.clear()
        _picklers.append((chunks, pickler))


_KNOWN = frozenset(ALIASES)
_RESPELT = frozenset(key for key, name in ALIASES.items() if key != name)  # camelCase and other aliases
_OWN = frozenset(key for key, name in ALIASES.items() if name in ("event_id", "timestamp"))
_LONG = 4096  # characters: pickling copies a text (and encodes it, unless ASCII: 1 µs per KiB); a
# Draft refers to it


_OWN_NAMES, _RESPELT_NAMES, _REFUSED = "own", "respelt", "refused"
_KINDS: dict[tuple[str, ...], str] = {}  # a call's keys, in order, and which of the above they are
_MAX_KINDS = 512  # distinct key sets remembered; past that, each call is checked anew


def _kind(keys: tuple[str, ...]) -> str:
    """Which keys a keyword draft takes: all the SDK's own names, or some other spellings (each
    field once), else refused (a key unknown, a field twice, the caller's own id or time)."""
    if not _KNOWN.issuperset(keys) or not _OWN.isdisjoint(keys):
        kind = _REFUSED
    elif _RESPELT.isdisjoint(keys):
        kind = _OWN_NAMES
    else:
        kind = _RESPELT_NAMES if len({ALIASES[key] for key in keys}) == len(keys) else _REFUSED
    if len(_KINDS) < _MAX_KINDS:
        _KINDS[keys] = kind
    return kind


class KeywordDraft(Capture):
    """A ``log(**fields)`` of builtin values (a plain call, or a session's with its defaults
    and timed steps), captured pickled with its id and time: one C call copies and packs it (a
    third of :class:`Draft`'s cost, and less memory while queued), and the pickle is also what
    a sender process is handed (:func:`_sender.pack` adds nothing). :func:`normalize` and
    :func:`compose` map it on the worker."""

    __slots__ = ("blob", "captured")
    blob: bytes
    captured: Optional[tuple[Any, ...]]  # the blob read back, once another process read it

    @classmethod
    def capture(
        cls, kwargs: Mapping[str, Any], defaults: Optional[Mapping[str, tuple[str, Any]]] = None,
        steps: Sequence[tuple[Any, ...]] = (), measured_ms: Optional[float] = None, offset: float = 0.0,
    ) -> Optional[KeywordDraft]:
        """The draft, or None when the call needs :class:`Draft`: a key unknown (normalize
        names it now), a field under two spellings, an ``event_id`` or ``timestamp`` of the
        caller's own, a value (or a step's) that is not a builtin, or a text longer than
        ``_LONG`` (a long prompt or response costs a Draft nothing to keep). ``steps`` are
        ``_session.timed_steps``'s, read with its ``offset``."""
        keys = tuple(kwargs)
        kind = _KINDS.get(keys)
        if kind is None:
            kind = _kind(keys)
        if kind is _OWN_NAMES:  # the two long texts, by name
            prompt, response = kwargs.get("user_prompt"), kwargs.get("response")
            if (type(prompt) is str and len(prompt) > _LONG) or (type(response) is str and len(response) > _LONG):
                return None
        elif kind is _RESPELT_NAMES:
            if any(type(value) is str and len(value) > _LONG for value in kwargs.values()):
                return None
        else:
            return None
        event_id, at = new_event_id(), _time.time()
        if defaults or steps or measured_ms is not None:
            if defaults and not _OWN.isdisjoint(defaults):
                return None
            blob = plain_dumps((event_id, at, kwargs, defaults, steps, measured_ms, offset))
        else:
            blob = plain_dumps((event_id, at, kwargs))
        if blob is None:
            return None
        draft = cls.__new__(cls)
        draft.blob, draft.captured, draft.event_id, draft.at, draft.size = blob, None, event_id, at, 256 + len(blob)
        return draft

    @classmethod
    def from_blob(cls, blob: bytes) -> KeywordDraft:
        """The draft another process captured, from its blob (read here once, kept read)."""
        captured = pickle.loads(blob)
        if type(captured) is not tuple or len(captured) not in (3, 7) or type(captured[0]) is not str:
            raise ValueError("not a keyword draft")
        draft = cls.__new__(cls)
        draft.blob, draft.captured, draft.event_id, draft.at, draft.size = (
            blob, captured, captured[0], captured[1], 256 + len(blob))
        return draft

    def fields(self) -> dict[str, tuple[str, Any]]:
        captured = self.captured if self.captured is not None else pickle.loads(self.blob)
        if len(captured) == 3:
            fields = normalize(captured[2])
        else:
            _, _, kwargs, defaults, steps, measured_ms, offset = captured
            fields = compose(normalize(kwargs), defaults, [Step.from_timer(s, offset) for s in steps], measured_ms,
                             fresh=True)
        fields["event_id"] = ("event_id", self.event_id)
        return fields
