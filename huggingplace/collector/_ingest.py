"""What the collector accepts on ``/store_generated_response``: the contract's body, and the
public HuggingPlace SDKs' bodies as they are (integer ``org_id``, ``null`` values, no
``event_id``, extra keys, ``"0 min 1.23 sec"`` response times).

Pure: a decoded JSON body in, a normalized record or an :class:`IngestError` out.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Optional

from .._fields import ALIASES, BY_NAME, MAX_DEPTH, MAX_INT, legacy_step, public_sdk_ms, step_problem
from .._models import utcnow
from .._serialize import format_timestamp, scrub_surrogates

__all__ = ["IngestError", "normalize_record", "parse_response_time", "LIMITS", "parse_body"]

LIMITS = {
    "body_bytes": 8 * 1024 * 1024,
    "text_chars": 1024 * 1024,  # user_prompt, ai_response
    "id_chars": 1024,  # ids, model names, file names
    "steps": 1000,  # steps in one record, nested ones included
    "step_depth": 32,
    "batch_records": 1000,
    "head_seconds": 10,  # a request head must arrive within this (slow-header clients are cut off)
    "body_seconds": 30,  # ... and its body within this
}

_TEXT = ("user_prompt", "ai_response")
_IDS = ("session_id", "user_id", "user_uuid", "org_uuid", "file_name", "llm_model", "llm_model2", "message_id")
_OBJECTS = ("metaData", "user_meta_data")
_KNOWN = set(_TEXT) | set(_IDS) | set(_OBJECTS) | {
    "org_id", "mode", "token_count", "token_usage", "response_time", "step_data", "user_roles",
    "mapping_table", "status", "error", "event_id", "timestamp", "sdk",
}
_EVENT_ID = re.compile(r"^[0-9a-f]{32}$")


class IngestError(Exception):
    """A refused record: ``status`` is 400 or 422, ``field`` names what was wrong."""

    def __init__(self, status: int, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


def _type_error(field: str, expected: str, value: Any) -> IngestError:
    return IngestError(422, f"`{field}` must be {expected}, got {type(value).__name__}", field)


def parse_response_time(value: Any, field: str = "response_time") -> float:
    """Milliseconds from a number, or from the public SDKs' ``"0 min 1.23 sec"`` string."""
    if isinstance(value, str):
        ms = public_sdk_ms(value)
        if ms is not None:
            return ms
        try:
            value = float(value)
        except ValueError:
            raise IngestError(
                422, f"`{field}` must be milliseconds as a number, got the string {value[:40]!r}", field
            ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(field, "a number of milliseconds", value)
    if not value >= 0 or value == float("inf"):
        raise IngestError(422, f"`{field}` must be a number >= 0 (milliseconds)", field)
    return float(value)


def _count(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise IngestError(422, f"`{field}` must be a whole number from 0 to {MAX_INT}", field)
    return value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abAB]", re.ASCII)


def parse_body(raw: bytes) -> Any:
    """A request body as JSON, or an IngestError 400 naming why not: not UTF-8, not JSON, nested
    deeper than the limit (checked before parsing: Python's parser recurses), numbers Python
    will not read. Lone surrogates from ``\\ud800``-style escapes become U+FFFD, as the SDK does."""
    depth = most = 0
    in_string = escaped = False
    for byte in raw:  # a cheap scan for nesting; strings are skipped
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            most = max(most, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    if most > MAX_DEPTH:
        raise IngestError(400, f"the body nests deeper than {MAX_DEPTH} levels")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IngestError(400, f"the body is not valid JSON ({type(exc).__name__})") from None
    if _SURROGATE_ESCAPE.search(raw):
        data = _scrubbed(data)
    return data


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_surrogates(value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {scrub_surrogates(k): _scrubbed(v) for k, v in value.items()}
    return value


def _string(field: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise _type_error(field, "a string", value)
    if len(value) > limit:
        raise IngestError(422, f"`{field}` is {len(value)} characters; the limit is {limit}", field)
    return value


def _steps(value: Any, path: str, depth: int, budget: list[int]) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _type_error(path, "an array of step objects", value)
    if depth > LIMITS["step_depth"]:
        raise IngestError(422, f"`{path}` nests deeper than {LIMITS['step_depth']} levels", path)
    steps = []
    for i, step in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(step, Mapping):
            raise _type_error(where, "a step object", step)
        budget[0] -= 1
        if budget[0] < 0:
            raise IngestError(422, f"`step_data` has more than {LIMITS['steps']} steps", "step_data")
        clean = legacy_step(step)  # the SDK's own reading of camelCase keys and "0 min 1.80 sec"
        problem = step_problem(clean, where)  # the SDK's own check: the two never disagree
        if problem is not None:
            raise IngestError(422, f"`{problem[0]}` must be {problem[1]}", problem[0])
        if "step_name" in clean:
            _string(f"{where}.step_name", clean["step_name"], LIMITS["id_chars"])
        if "steps" in clean:
            clean["steps"] = _steps(clean["steps"], f"{where}.steps", depth + 1, budget)
        steps.append(clean)
    return steps


def _wire_names(data: dict[str, Any]) -> set[str]:
    """Rename the SDK's aliases (``userPrompt``, ``metadata``, ``response``...) to their wire
    names in place, from the SDK's own field table; return the keys that were moved. An alias
    beside its wire key stays an extra; two objects (``metaData: {}`` beside ``metadata: {...}``,
    as the JavaScript SDK's sessions send) are also merged, the wire key's values winning."""
    moved: set[str] = set()
    for key in [k for k in data if k not in _KNOWN]:
        name = ALIASES.get(key)
        wire = BY_NAME[name].wire if name else ""
        if not wire:
            continue
        if wire not in data:
            data[wire] = data.pop(key)
            moved.add(key)
        elif isinstance(data[wire], Mapping) and isinstance(data[key], Mapping):
            data[wire] = {**data[key], **data[wire]}
    return moved


def normalize_record(body: Any, *, idempotency_key: Optional[str] = None) -> dict[str, Any]:
    """Check one record body and return the values the store writes (extras kept apart)."""
    if not isinstance(body, Mapping):
        raise IngestError(400, "the body must be one JSON object")
    data = {k: v for k, v in body.items() if v is not None}
    mapped = _wire_names(data)
    out: dict[str, Any] = {}
    for field in _TEXT:
        if field not in data:
            raise IngestError(422, f"`{field}` is required (a string)", field)
        out[field] = _string(field, data[field], LIMITS["text_chars"])
    org = data.get("org_id")
    if org is None or org == "":
        raise IngestError(422, "`org_id` is required (a string or an integer)", "org_id")
    if isinstance(org, bool) or not isinstance(org, (str, int)):
        raise _type_error("org_id", "a string or an integer", org)
    out["org_id"] = str(org)
    mode = data.get("mode", "prod")
    if mode not in ("prod", "dev"):
        raise IngestError(422, f"`mode` must be 'prod' or 'dev', got {str(mode)[:40]!r}", "mode")
    out["mode"] = mode
    for field in _IDS:
        if field in data:
            out[field] = _string(field, data[field], LIMITS["id_chars"])
    for field in _OBJECTS:
        if field in data:
            if not isinstance(data[field], Mapping):
                raise _type_error(field, "a JSON object", data[field])
            out[field] = dict(data[field])
    if "token_count" in data:
        out["token_count"] = _count("token_count", data["token_count"])
    if "token_usage" in data:
        usage = data["token_usage"]
        if not isinstance(usage, Mapping):
            raise _type_error("token_usage", "a JSON object", usage)
        out["token_usage"] = {
            k: _count(f"token_usage.{k}", usage[k])
            for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            if usage.get(k) is not None
        }
        total = out["token_usage"].get("total_tokens")
        if total is not None and out.setdefault("token_count", total) != total:
            raise IngestError(422, "`token_count` differs from `token_usage.total_tokens`", "token_count")
    if "response_time" in data:
        out["response_time"] = parse_response_time(data["response_time"])
    if "step_data" in data:
        out["step_data"] = _steps(data["step_data"], "step_data", 0, [LIMITS["steps"]])
    if "user_roles" in data:
        roles = data["user_roles"]
        roles = [roles] if isinstance(roles, str) else roles  # the public SDKs' READMEs: "admin"
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise _type_error("user_roles", "an array of strings", roles)
        out["user_roles"] = roles
    if "mapping_table" in data:
        if not isinstance(data["mapping_table"], (str, Mapping)):
            raise _type_error("mapping_table", "a string or a JSON object", data["mapping_table"])
        out["mapping_table"] = data["mapping_table"]
    status = data.get("status", "ok")
    if status not in ("ok", "error"):
        raise IngestError(422, "`status` must be 'ok' or 'error'", "status")
    out["status"] = status
    if "error" in data:
        error = data["error"]
        if not isinstance(error, Mapping):
            raise _type_error("error", "an object {type, message}", error)
        out["error"] = dict(error)
    event_id = data.get("event_id", idempotency_key)
    if event_id is not None:
        if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
            raise IngestError(422, "`event_id` must be 32 lowercase hex characters", "event_id")
        if idempotency_key is not None and idempotency_key != event_id:
            raise IngestError(400, "the Idempotency-Key header differs from the body's event_id", "event_id")
    out["event_id"] = event_id or uuid.uuid4().hex
    timestamp = data.get("timestamp")
    if timestamp is not None:
        if not isinstance(timestamp, str):
            raise _type_error("timestamp", "an RFC 3339 string", timestamp)
        try:
            parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError:
            raise IngestError(422, f"`timestamp` is not RFC 3339: {timestamp[:40]!r}", "timestamp") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        try:
            parsed = parsed.astimezone(timezone.utc)
        except (OverflowError, ValueError):
            raise IngestError(422, "`timestamp` must be between the years 1970 and 9999", "timestamp") from None
        if not 1970 <= parsed.year <= 9999:  # the SDK's range too
            raise IngestError(422, "`timestamp` must be between the years 1970 and 9999", "timestamp")
        timestamp = format_timestamp(parsed)  # one form (UTC, milliseconds): time filters compare strings
    out["timestamp"] = timestamp or format_timestamp(utcnow())
    if "sdk" in data:
        if not isinstance(data["sdk"], Mapping):
            raise _type_error("sdk", "a JSON object", data["sdk"])
        out["sdk"] = dict(data["sdk"])
    extras = {k: v for k, v in body.items() if k not in _KNOWN and k not in mapped}
    if extras:
        out["extras"] = extras
    if out.get("session_id") and "metaData" in out:
        out["metaData"].setdefault("sessionId", out["session_id"])
    return out
