"""What every provider adapter returns, and the helpers adapters share. Pure: no provider
package is imported here or anywhere in ``providers/``; objects are read by duck typing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, Optional, Protocol

import attrs

__all__ = ["Normalized", "Adapter", "Accumulator", "as_dict", "dig", "count", "RECORD_FIELDS", "llm_metadata",
           "fields_table", "TOOL_ARGUMENT_CHARS"]

TOOL_ARGUMENT_CHARS = 4096  # a tool call's arguments are kept up to this many characters
TOOL_CALLS_KEPT = 64


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


class RecordField(NamedTuple):
    where: str  #: where it lands in the record
    meaning: str
    streamed: str  #: how a stream gets it


#: What a record of any LLM call carries, whichever provider and call produced it; every adapter
#: fills :class:`Normalized`, and :func:`llm_metadata` lays it out. docs/providers/fields.md is
#: generated from this table (a test keeps the two equal).
RECORD_FIELDS: tuple[RecordField, ...] = (
    RecordField("user_prompt", "the last user message the call sent", "the same"),
    RecordField("ai_response", "the answer's text (all text blocks joined)", "the text that arrived"),
    RecordField("llm_model", "the model that answered (the request's model when the response names none)",
                "from the first chunk"),
    RecordField("token_usage", "prompt, completion and total tokens as the provider counted them",
                "from the usage chunk (OpenAI streams are asked for it)"),
    RecordField("response_time", "milliseconds from the call to its answer, or to the stream's end", "the same"),
    RecordField("status, error", "`error` and the exception's type and message when the call or stream raised, "
                "or when a stream ended before its end", "the same"),
    RecordField("user_id", "the call's `user` / `safety_identifier` (OpenAI) or `metadata.user_id` (Anthropic), "
                "unless a session or context gives one", "the same"),
    RecordField("session_id", "the session or context's id, else a conversation id derived from the org, the "
                "user and the opening exchange", "the same"),
    RecordField("metaData.session_derived", "`true` when `session_id` was derived, not given", "the same"),
    RecordField("metaData.llm.provider", "`openai`, `anthropic`, `mistral`, `gemini`, `bedrock`, ...", "the same"),
    RecordField("metaData.llm.request_model", "the model the call asked for", "the same"),
    RecordField("metaData.llm.response_id", "the provider's id for the response", "from the stream's events"),
    RecordField("metaData.llm.finish_reason", "why the model stopped (`stop`, `end_turn`, `tool_calls`, "
                "`length`...)", "from the last chunk"),
    RecordField("metaData.llm.cached_tokens", "prompt tokens read from the provider's cache, when reported",
                "from the usage chunk"),
    RecordField("metaData.llm.reasoning_tokens", "reasoning tokens, when reported", "from the usage chunk"),
    RecordField("metaData.llm.tool_calls", f"each tool call's `id`, `name` and `arguments` (arguments cut at "
                f"{TOOL_ARGUMENT_CHARS} characters, at most {TOOL_CALLS_KEPT} calls)", "merged from the deltas"),
    RecordField("metaData.llm.stream", "`true` for a streamed call", "always"),
    RecordField("metaData.llm.time_to_first_token_ms", "milliseconds from the call to the first content", "always"),
    RecordField("metaData.llm.completed", "`false` when the stream was closed or dropped before its end",
                "always"),
    RecordField("metaData.llm.end", "how a stream ended: `complete`, `closed`, `abandoned` (garbage-collected) "
                "or `error`", "always"),
    RecordField("metaData.llm.chunks", "how many chunks arrived", "always"),
)


def _cap(call: dict[str, Any]) -> dict[str, Any]:
    arguments = call.get("arguments")
    if isinstance(arguments, str) and len(arguments) > TOOL_ARGUMENT_CHARS:
        cut = len(arguments) - TOOL_ARGUMENT_CHARS
        call = {**call, "arguments": arguments[:TOOL_ARGUMENT_CHARS] + f"...[{cut} more characters]"}
    return call


def llm_metadata(result: Normalized) -> dict[str, Any]:
    """The ``metaData.llm`` part of a record from one normalized answer (see ``RECORD_FIELDS``)."""
    llm: dict[str, Any] = {"provider": result.provider}
    for name in ("response_id", "finish_reason", "cached_tokens", "reasoning_tokens"):
        value = getattr(result, name)
        if value:
            llm[name] = value
    if result.tool_calls:
        llm["tool_calls"] = [_cap(dict(c)) for c in result.tool_calls[:TOOL_CALLS_KEPT]]
    return llm


def fields_table() -> str:
    """``RECORD_FIELDS`` as the Markdown table docs/providers/fields.md shows."""
    lines = ["| field | what it holds | from a stream |", "|---|---|---|"]
    lines += [f"| `{f.where}` | {f.meaning} | {f.streamed} |" for f in RECORD_FIELDS]
    return "\n".join(lines) + "\n"


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
