"""The field table: each keyword a caller may pass, its camelCase aliases, and its wire name.

This is the single place that knows ``metadata`` travels as ``metaData`` and ``response`` as
``ai_response``; ``_mapping.py`` reads it to accept input, ``_wire.py`` to write the payload.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple


class Field(NamedTuple):
    name: str  #: the SDK keyword, and the LogRecord attribute
    wire: str  #: the key in the JSON body
    aliases: tuple[str, ...]  #: other spellings accepted from callers
    hint: str  #: what a valid value looks like, for error messages


FIELDS: tuple[Field, ...] = (
    Field("user_prompt", "user_prompt", ("userPrompt",), "a string: the question or prompt"),
    Field("response", "ai_response", ("aiResponse", "ai_response"), "a string: the model's answer"),
    Field("metadata", "metaData", ("metaData",), "a dict with string keys"),
    Field("user_metadata", "user_meta_data", ("userMetadata", "user_meta_data"), "a dict with string keys"),
    Field("user_id", "user_id", ("userId",), "a string"),
    Field("session_id", "session_id", ("sessionId",), "a string"),
    Field("file_name", "file_name", ("fileName",), "a string"),
    Field("llm_model", "llm_model", ("llmModel",), "a string such as 'gpt-4o'"),
    Field("token_count", "token_count", ("tokenCount",), "a whole number >= 0 (total tokens)"),
    Field(
        "token_usage",
        "token_usage",
        ("tokenUsage",),
        "a dict {'prompt_tokens': int, 'completion_tokens': int, 'total_tokens': int}",
    ),
    Field(
        "response_time",
        "response_time",
        ("responseTime",),
        "a number of milliseconds >= 0 (or the public SDKs' '0 min 1.23 sec')",
    ),
    Field("step_data", "step_data", ("stepData",), "a list of step dicts"),
    Field("user_uuid", "user_uuid", ("userUuid",), "a string"),
    Field("org_uuid", "org_uuid", ("orgUuid",), "a string"),
    Field("user_roles", "user_roles", ("userRoles",), "a list of strings (one string is one role)"),
    Field("llm_model2", "llm_model2", ("llmModel2",), "a string"),
    Field("mapping_table", "mapping_table", ("mappingTable",), "a string or a dict"),
    Field("message_id", "message_id", ("messageId",), "a string"),
    Field("status", "status", (), "'ok' or 'error'"),
    Field("error", "error", (), "an exception, a string, or a dict {'type': str, 'message': str}"),
    Field("event_id", "event_id", ("eventId",), "32 lowercase hex characters (uuid4().hex)"),
    Field("timestamp", "timestamp", (), "a datetime (naive values are taken as UTC)"),
    # input only: read to fill user_prompt (the last user message), never sent as such
    Field("messages", "", ("input",), "a list of chat messages [{'role': ..., 'content': ...}]"),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

#: every accepted spelling -> the SDK keyword
ALIASES: dict[str, str] = {spelling: f.name for f in FIELDS for spelling in (f.name, *f.aliases)}


def fields_table() -> str:
    """``FIELDS`` as the Markdown table of docs/fields.md (``python -m huggingplace._fields``)."""
    lines = ["| keyword | also accepted | wire name | value |", "|---|---|---|---|"]
    for f in FIELDS:
        aliases = ", ".join(f"`{a}`" for a in f.aliases) or "-"
        wire = f"`{f.wire}`" if f.wire else "(not sent: read for `user_prompt`)"
        lines.append(f"| `{f.name}` | {aliases} | {wire} | {f.hint} |")
    return "\n".join(lines) + "\n"


_PUBLIC_SDK_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*min\s+(\d+(?:\.\d+)?)\s*sec\s*$")


def public_sdk_ms(text: str) -> float | None:
    """Milliseconds from the public SDKs' ``"0 min 1.23 sec"`` string, or None for other text."""
    match = _PUBLIC_SDK_TIME.match(text)
    if match is None:
        return None
    return (float(match.group(1)) * 60 + float(match.group(2))) * 1000.0


# ---- a step object: what SDK and collector both accept (one table, one check) -------------------
MAX_INT = 2**63 - 1  # 64-bit: what SQLite stores exactly; larger counts are refused on both sides
MAX_DEPTH = 64  # nesting of any JSON value a record carries
STEP_STRINGS = ("step_name", "type", "status", "user_question", "prompt_response", "llm_model", "started_at",
                "ended_at")
STEP_COUNTS = ("token", "input_tokens", "output_tokens")
#: camelCase step keys the JavaScript SDK's users write -> the wire names every step travels under
STEP_ALIASES: dict[str, str] = {
    "stepName": "step_name", "timeMs": "time_ms", "userQuestion": "user_question",
    "promptResponse": "prompt_response", "llmModel": "llm_model", "inputTokens": "input_tokens",
    "outputTokens": "output_tokens", "responseTime": "response_time", "startedAt": "started_at",
    "endedAt": "ended_at",
}
STEP_TIMES = ("time_ms", "response_time")
_STEP_OK = frozenset({"ok", "success", "succeeded", "completed", "complete", "done"})
_STEP_ERROR = frozenset({"error", "failed", "failure", "fail", "errored"})


def step_status_class(status: object) -> str:
    """How a step's status is filed: ``ok``, ``error`` or ``unknown`` (the string is kept as sent)."""
    if not isinstance(status, str):
        return "unknown"
    low = status.strip().lower()
    return "ok" if low in _STEP_OK else "error" if low in _STEP_ERROR else "unknown"


def step_problem(step: object, path: str) -> tuple[str, str] | None:
    """The first thing wrong with one step object (not its children), as ``(field, what it must
    be)``, or None. The contract's types: any string as status, 64-bit counts, finite times."""
    if not isinstance(step, dict):
        return path, "a step object"
    for key in STEP_STRINGS:
        if step.get(key) is not None and not isinstance(step[key], str):
            return f"{path}.{key}", "a string"
    for key in STEP_COUNTS:
        value = step.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT):
            return f"{path}.{key}", f"a whole number from 0 to {MAX_INT}"
    for key in STEP_TIMES:
        value = step.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf")
        ):
            return f"{path}.{key}", "a number of milliseconds >= 0 (or a '0 min 1.23 sec' string)"
    if step.get("metadata") is not None and not isinstance(step["metadata"], dict):
        return f"{path}.metadata", "a JSON object"
    if step.get("steps") is not None and not isinstance(step["steps"], list):
        return f"{path}.steps", "an array of step objects"
    error = step.get("error")
    if error is not None and not isinstance(error, (str, dict)):
        return f"{path}.error", "a string or an object {type, message}"
    return None


def legacy_step(step: Mapping[str, Any]) -> dict[str, Any]:
    """A step as the public SDKs' users write it, under the wire names: camelCase keys renamed
    (an alias beside its wire key with another value is kept as given), ``None`` values dropped,
    ``"0 min 1.80 sec"`` times read as milliseconds. Nested ``steps`` likewise. Never raises."""
    out: dict[str, Any] = {}
    for key, value in step.items():
        if value is None:
            continue
        wire = STEP_ALIASES.get(key) if isinstance(key, str) else None
        if wire is None or (wire in step and step[wire] is not None and step[wire] != value):
            out.setdefault(key, value)
        else:
            out[wire] = value
    for key in STEP_TIMES:
        value = out.get(key)
        if isinstance(value, str):
            ms = public_sdk_ms(value)
            if ms is None:
                try:
                    ms = float(value)
                except ValueError:
                    continue
            out[key] = ms
    children = out.get("steps")
    if isinstance(children, list):
        out["steps"] = [legacy_step(c) if isinstance(c, Mapping) else c for c in children]
    return out


if __name__ == "__main__":
    print(fields_table(), end="")
