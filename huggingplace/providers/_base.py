"""What every provider adapter returns, and the helpers adapters share. Pure: no provider
package is imported here or anywhere in ``providers/``; objects are read by duck typing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional, Protocol

import attrs

__all__ = ["Normalized", "Adapter", "Accumulator", "as_dict", "dig", "count"]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _calls(value: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class Normalized:
    """One LLM answer, whatever the provider: never ``None`` where an int is expected."""

    text: str = ""
    model: Optional[str] = None
    provider: str = "unknown"
    prompt_tokens: int = attrs.field(default=0, converter=_int)
    completion_tokens: int = attrs.field(default=0, converter=_int)
    total_tokens: int = attrs.field(converter=_int)
    cached_tokens: int = attrs.field(default=0, converter=_int)
    reasoning_tokens: int = attrs.field(default=0, converter=_int)
    finish_reason: Optional[str] = None
    tool_calls: tuple[dict[str, Any], ...] = attrs.field(default=(), converter=_calls)
    response_id: Optional[str] = None

    @total_tokens.default
    def _total(self) -> int:
        return _int(self.prompt_tokens) + _int(self.completion_tokens)

    @property
    def has_usage(self) -> bool:
        return self.total_tokens > 0


class Adapter(Protocol):
    """Reads one provider's responses. ``name`` is unique in the registry."""

    name: str

    def matches(self, data: dict[str, Any]) -> bool: ...

    def normalize(self, data: dict[str, Any]) -> Normalized: ...


class Accumulator(Protocol):
    """Folds stream chunks (as dicts) into one :class:`Normalized`."""

    def add(self, chunk: dict[str, Any]) -> bool:
        """Take one chunk; True when it carried answer content (for time to first token)."""
        ...

    def result(self) -> Normalized: ...


def as_dict(obj: Any, _depth: int = 0) -> Any:
    """A provider object as plain dicts and lists (pydantic v2/v1, ``to_dict()``, attributes).
    Past 64 levels (a cycle, or something no provider sends) the rest is left out."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if _depth > 64:
        return None
    if isinstance(obj, dict):
        return {k: as_dict(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_dict(v, _depth + 1) for v in obj]
    for method in ("model_dump", "to_dict", "dict"):
        fn = getattr(obj, method, None)
        if callable(fn) and not isinstance(obj, type):
            try:
                return as_dict(fn(), _depth + 1)
            except Exception:
                continue
    attributes = getattr(obj, "__dict__", None)
    if isinstance(attributes, dict):
        return {k: as_dict(v, _depth + 1) for k, v in attributes.items() if not k.startswith("_")}
    return obj


def dig(data: Any, *path: Any) -> Any:
    """``data[a][b][0]...`` or None when any step is missing."""
    for key in path:
        if isinstance(key, int):
            if not isinstance(data, list) or not -len(data) <= key < len(data):
                return None
            data = data[key]
        else:
            if not isinstance(data, dict):
                return None
            data = data.get(key)
    return data


def count(*values: Any) -> int:
    """The first value that is a non-negative int, else 0."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return 0
