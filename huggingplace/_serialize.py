"""Turn whatever a caller put in ``metadata`` into JSON-safe data, without ever raising.

Also the timestamp format of the contract. Pure: no I/O, no global state.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import itertools
import json
import math
import pathlib
import re
import uuid
from collections import deque
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, Sequence, ValuesView
from collections.abc import Set as AbstractSet
from typing import Any

import attrs

__all__ = ["to_jsonable", "format_timestamp", "MAX_DEPTH", "scrub_surrogates", "dumps"]

MAX_DEPTH = 20
MAX_BYTES = 4096  # bytes values larger than this are replaced by a size marker
MAX_ITEMS = 10_000  # items kept from one list, dict or array
ARRAY_HEAD = 100  # values shown from an array larger than MAX_ITEMS


_SURROGATE = re.compile("[\ud800-\udfff]")


def scrub_surrogates(text: str) -> str:
    """Lone surrogates (not valid Unicode, so not encodable as UTF-8) become U+FFFD. The SDK and
    the collector both apply this, so they agree on what such a string turns into."""
    return _SURROGATE.sub("\ufffd", text)


# one encoder for every record (json.dumps with options builds a new one per call)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


def _c_encode() -> Callable[[Any], str]:
    """``_ENCODER.encode`` less its Python layers, which rebuild the C encoder on every call:
    CPython's C encoder, made once with the same options; elsewhere ``_ENCODER.encode``. It
    skips the cycle check: a cycle ends in RecursionError, which :func:`dumps` handles."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - PyPy, or a CPython built without _json
        return _ENCODER.encode
    encoder = make(None, _refuse, json.encoder.encode_basestring, None, ":", ",", False, False, False)

    def encode(value: Any) -> str:
        return "".join(encoder(value, 0))

    return encode


_encode = _c_encode()


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON that cannot fail on a JSON-safe value: lone surrogates are replaced
    (as above); anything else that is not strict JSON (NaN, a ``datetime`` or ``set`` that a
    ``before_send`` hook put back) goes through :func:`to_jsonable` first."""
    try:
        text = _encode(value)
    except (TypeError, ValueError, RecursionError):
        text = _encode(to_jsonable(value))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return scrub_surrogates(text).encode("utf-8")


def format_timestamp(value: _dt.datetime) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-22T08:15:00.123Z``; naive means UTC."""
    if value.tzinfo is _dt.timezone.utc:  # the SDK's own times: "+00:00" becomes "Z"
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    elif value.tzinfo is not _dt.timezone.utc:
        value = value.astimezone(_dt.timezone.utc)
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _float(value: float) -> Any:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def to_jsonable(value: Any, *, max_depth: int = MAX_DEPTH) -> Any:
    """A deep, JSON-safe copy of ``value``; never raises, never consumes iterators."""
    try:
        return _convert(value, max_depth, set())
    except Exception as exc:  # pragma: no cover - a last resort for hostile __repr__ and the like
        return f"<unserializable {type(value).__name__}: {type(exc).__name__}>"


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, enum.Enum):
        return str(key.value)
    return _safe_str(key)


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


_PLAIN = frozenset({str, int, bool, type(None)})


def _convert(value: Any, depth: int, seen: set[int]) -> Any:
    kind = type(value)
    if kind in _PLAIN:  # the common case first, by exact type (an IntEnum is not an int here)
        return value
    if kind is dict and depth > 0 and len(value) <= MAX_ITEMS:
        ident = id(value)
        if ident in seen:
            return "<cycle: dict>"
        seen.add(ident)
        try:
            return {k if type(k) is str else _key(k): _convert(v, depth - 1, seen) for k, v in value.items()}
        finally:
            seen.discard(ident)
    if isinstance(value, enum.Enum):  # first: IntEnum and StrEnum are ints and strs too
        return _convert(value.value, depth, seen)
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, _dt.datetime):
        return format_timestamp(value)
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return _float(float(value))
    if isinstance(value, (uuid.UUID, pathlib.PurePath)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) > MAX_BYTES:
            return f"<bytes: {len(raw)}>"
        return base64.b64encode(raw).decode("ascii")
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": _safe_str(value)}
    if depth <= 0:
        return f"<max depth: {type(value).__name__}>"
    ident = id(value)
    if ident in seen:
        return f"<cycle: {type(value).__name__}>"
    seen.add(ident)
    try:
        return _container(value, depth - 1, seen)
    finally:
        seen.discard(ident)


def _sorted(items: Any) -> list[Any]:
    try:
        return sorted(items, key=repr)
    except Exception:
        return list(items)


def _container(value: Any, depth: int, seen: set[int]) -> Any:
    if isinstance(value, Mapping):
        out_map: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out_map["<truncated>"] = f"{len(value) - MAX_ITEMS} more keys"
                break
            out_map[_key(k)] = _convert(v, depth, seen)
        return out_map
    if isinstance(value, Iterator):  # generators and iterators: consuming them would change the host's data
        return f"<iterator: {type(value).__name__}>"
    if isinstance(value, (AbstractSet, KeysView, ValuesView, ItemsView, Sequence, deque)) and not isinstance(
        value, (str, bytes)
    ):
        items = _sorted(value) if isinstance(value, (AbstractSet, KeysView)) else value
        out = [_convert(v, depth, seen) for v in itertools.islice(items, MAX_ITEMS)]
        if len(value) > MAX_ITEMS:
            out.append(f"<{len(value) - MAX_ITEMS} more items>")
        return out
    ndim = getattr(value, "ndim", None)
    if isinstance(ndim, int) and callable(getattr(value, "tolist", None)) and not isinstance(value, type):
        try:  # numpy scalars and arrays: never materialize more than MAX_ITEMS values
            if ndim == 0:
                return _convert(value.item(), depth + 1, seen)
            if value.size <= MAX_ITEMS:
                return _convert(value.tolist(), depth + 1, seen)
            head = value.ravel()[:ARRAY_HEAD].tolist()
            return {"shape": list(value.shape), "dtype": str(value.dtype), "head": _convert(head, depth, seen)}
        except Exception:
            return f"<array: {type(value).__name__}>"
    if attrs.has(type(value)):
        return _convert(attrs.asdict(value, recurse=False), depth + 1, seen)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _convert({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth + 1, seen)
    for method in ("model_dump", "dict"):  # pydantic v2, pydantic v1
        dump = getattr(value, method, None)
        if callable(dump) and not isinstance(value, type):
            try:
                return _convert(dump(), depth + 1, seen)
            except Exception:
                continue
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict) and not isinstance(value, type):
        return _convert({k: a for k, a in attributes.items() if not k.startswith("_")}, depth + 1, seen)
    return _safe_str(value)
