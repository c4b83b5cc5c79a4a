"""Caller input (snake_case or camelCase keywords, or one dict) to a validated :class:`LogRecord`.

Pure and synchronous. Every refusal is a :class:`ValidationError` that names the key the caller
used and what a valid value looks like; the caller's own dicts are never mutated.
"""

from __future__ import annotations

import datetime as _dt
import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from ._exceptions import ValidationError
from ._fields import ALIASES, BY_NAME, legacy_step, public_sdk_ms, step_problem
from ._models import ErrorInfo, InvalidField, LogRecord, Step, TokenUsage
from ._serialize import to_jsonable
from .providers import Normalized, adapt, as_dict
from .providers._base import llm_metadata

__all__ = ["normalize", "build_record", "compose", "merge_defaults", "merge_into", "step_as_log"]

_USAGE_KEYS = {
    "prompt_tokens": "prompt_tokens",
    "promptTokens": "prompt_tokens",
    "completion_tokens": "completion_tokens",
    "completionTokens": "completion_tokens",
    "total_tokens": "total_tokens",
    "totalTokens": "total_tokens",
}


def suggest(key: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def normalize(data: Mapping[str, Any], *, where: str = "log()") -> dict[str, tuple[str, Any]]:
    """Map each caller key to its SDK keyword: ``{name: (key as the caller spelled it, value)}``.

    Unknown keys are errors, and so is one field given twice with different values
    (``response`` and ``ai_response``); twice with the same value, as the public SDKs' READMEs
    write it, is one value. ``None`` values mean "not given", as in the public SDKs.
    """
    out: dict[str, tuple[str, Any]] = {}
    for key, value in data.items():
        name = ALIASES.get(key)
        if name is None:
            if not isinstance(key, str):
                raise ValidationError(f"{where}: field names must be strings, got {key!r}", field=repr(key))
            raise ValidationError(
                f"{where} got an unknown field `{key}`{suggest(key, list(ALIASES))} "
                f"(the fields are listed in docs/fields.md)",
                field=key,
            )
        if value is None:
            continue
        if name in out:
            if _same(out[name][1], value):
                continue
            raise ValidationError(
                f"{where}: `{out[name][0]}` and `{key}` are the same field with different values; "
                "pass only one",
                field=key,
            )
        out[name] = (key, value)
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(type(a) is type(b) and a == b)
    except Exception:  # a user object whose __eq__ raises is simply not "the same"
        return False


def _shown(value: Any) -> str:
    """A value as an error message may show it: its repr, short, or its type when repr fails."""
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _fail(key: str, name: str, value: Any, detail: str = "") -> ValidationError:
    hint = BY_NAME[name].hint
    shown = _shown(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    why = f" ({detail})" if detail else ""
    return ValidationError(f"`{key}` must be {hint}; got {shown}{why}", field=key)


def _token_usage(key: str, value: Any) -> TokenUsage:
    if isinstance(value, TokenUsage):
        return value
    if not isinstance(value, Mapping):
        raise _fail(key, "token_usage", value)
    counts: dict[str, Any] = {}
    for k, n in value.items():
        canonical = _USAGE_KEYS.get(k) if isinstance(k, str) else None
        if canonical is None:
            raise ValidationError(
                f"`{key}` has an unknown key {k!r}{suggest(str(k), list(_USAGE_KEYS))}; "
                "use prompt_tokens, completion_tokens, total_tokens",
                field=f"{key}.{k}",
            )
        if n is not None:
            counts[canonical] = n
    try:
        return TokenUsage(**counts)
    except (TypeError, ValueError) as exc:
        raise _fail(key, "token_usage", value, str(exc)) from None


def _error_info(key: str, value: Any) -> ErrorInfo:
    if isinstance(value, ErrorInfo):
        return value
    if isinstance(value, BaseException):
        return ErrorInfo.from_exception(value)
    if isinstance(value, str):
        return ErrorInfo(type="Error", message=value)
    if isinstance(value, Mapping) and isinstance(value.get("type"), str) and isinstance(value.get("message"), str):
        return ErrorInfo(type=value["type"], message=value["message"])
    raise _fail(key, "error", value)


def _response_time(key: str, value: Any) -> float:
    if isinstance(value, _dt.timedelta):
        return value.total_seconds() * 1000.0
    if isinstance(value, str):
        ms = public_sdk_ms(value)
        if ms is None:
            raise _fail(key, "response_time", value, "pass milliseconds as a number, e.g. 1234.5")
        return ms
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(key, "response_time", value)
    if not value >= 0 or value == float("inf"):
        raise _fail(key, "response_time", value)
    try:
        return float(value)
    except OverflowError:  # an int past a float's range
        raise _fail(key, "response_time", value, "too large for a number of milliseconds") from None


def _steps(key: str, value: Any) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise _fail(key, "step_data", value)
    steps: list[Any] = []
    for i, step in enumerate(value):
        if isinstance(step, Step):
            steps.append(step)
        elif isinstance(step, Mapping):
            clean = to_jsonable(step)
            if isinstance(clean, Mapping):
                clean = legacy_step(clean)
            _check_steps(clean, f"{key}[{i}]", 0)
            steps.append(clean)
        else:
            raise ValidationError(
                f"`{key}[{i}]` must be a step dict (a JSON object), got {type(step).__name__}",
                field=f"{key}[{i}]",
            )
    return tuple(steps)


def _check_steps(step: Any, path: str, depth: int) -> None:
    """A hand-written step must be of the contract's types, as the collector checks it."""
    if depth > 32:
        raise ValidationError(f"`{path}` nests steps deeper than 32 levels", field=path)
    problem = step_problem(step, path)
    if problem is not None:
        raise ValidationError(f"`{problem[0]}` must be {problem[1]}", field=problem[0])
    for j, child in enumerate(step.get("steps") or ()):
        _check_steps(child, f"{path}.steps[{j}]", depth + 1)


def _roles(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # the public SDKs' READMEs pass one role as a string
        return (value,)
    if isinstance(value, bytes) or not isinstance(value, Sequence):
        raise _fail(key, "user_roles", value)
    if not all(isinstance(r, str) for r in value):
        raise _fail(key, "user_roles", value)
    return tuple(value)


def _object(name: str) -> Callable[[str, Any], Any]:
    def convert(key: str, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise _fail(key, name, value)
        return to_jsonable(value)

    return convert


def _timestamp(key: str, value: Any) -> _dt.datetime:
    if not isinstance(value, _dt.datetime):
        raise _fail(key, "timestamp", value)
    value = value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
    try:
        utc = value.astimezone(_dt.timezone.utc)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not 1970 <= utc.year <= 9999:
        raise _fail(key, "timestamp", value, "between the years 1970 and 9999, UTC")
    return utc  # type: ignore[no-any-return]


def _mapping_table(key: str, value: Any) -> Any:
    return to_jsonable(value) if isinstance(value, Mapping) else value


_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "metadata": _object("metadata"),
    "user_metadata": _object("user_metadata"),
    "token_usage": _token_usage,
    "error": _error_info,
    "response_time": _response_time,
    "step_data": _steps,
    "user_roles": _roles,
    "timestamp": _timestamp,
    "mapping_table": _mapping_table,
}


def step_as_log(step: Any) -> dict[str, Any]:
    """The record the public SDKs' ``log_step(step)`` sends: the step's question and answer as
    the prompt and response, its model, ``token`` and time as the record's, the step itself as
    its one step. Never raises: a step that is not a dict is refused by validation, by name."""
    if not isinstance(step, Mapping):
        return {"step_data": [step]}
    clean = legacy_step(to_jsonable(step))
    out: dict[str, Any] = {
        "user_prompt": clean.get("user_question", ""),
        "response": clean.get("prompt_response", ""),
        "step_data": [clean],
    }
    for key, name in (("llm_model", "llm_model"), ("token", "token_count"), ("response_time", "response_time")):
        if key in clean:
            out[name] = clean[key]
    return out


def merge_defaults(
    defaults: Mapping[str, tuple[str, Any]], given: Mapping[str, tuple[str, Any]]
) -> dict[str, tuple[str, Any]]:
    """Session or context defaults under a record's own fields; metadata dicts merge key by key."""
    return merge_into(dict(defaults), given)


def merge_into(merged: dict[str, tuple[str, Any]], given: Mapping[str, tuple[str, Any]]) -> dict[str, tuple[str, Any]]:
    """:func:`merge_defaults` into ``merged`` itself (one dict for a record's every layer)."""
    for name, pair in given.items():
        base = merged.get(name)
        if base is None:
            merged[name] = pair
        elif name == "step_data":
            for key, steps in (base, pair):
                if not isinstance(steps, (list, tuple)):
                    raise ValidationError(f"`{key}` must be a list of steps, got {type(steps).__name__}", field=key)
            merged[name] = (pair[0], [*base[1], *pair[1]])
        elif name in _MERGED and isinstance(pair[1], Mapping):
            merged[name] = (pair[0], {**base[1], **pair[1]})
        else:
            merged[name] = pair
    return merged


_MERGED = frozenset({"metadata", "user_metadata", "step_data"})


def compose(
    given: Mapping[str, tuple[str, Any]], defaults: Optional[Mapping[str, tuple[str, Any]]] = None,
    steps: Sequence[Step] = (), measured_ms: Optional[float] = None, *, fresh: bool = False,
) -> dict[str, tuple[str, Any]]:
    """One record's fields: ``defaults`` (the context's and session's) under the call's own
    ``given``, then the ``steps`` timed for it; ``measured_ms`` is the ``response_time`` unless
    given. ``fresh``: ``given`` is a dict of our own, to fill in place."""
    if defaults:
        fields = merge_into(dict(defaults), given)
    else:
        fields = given if fresh and isinstance(given, dict) else dict(given)
    if steps:
        if "step_data" in fields:
            merge_into(fields, {"step_data": ("step_data", list(steps))})
        else:  # the list is the session's to give (a draft copies it anyway)
            fields["step_data"] = ("step_data", steps if isinstance(steps, list) else list(steps))
    if measured_ms is not None:
        fields.setdefault("response_time", ("response_time", measured_ms))
    return fields


def message_text(content: Any) -> str:
    """The text of one chat message's content: a string, or the text of its parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = []
        for part in content:
            part = as_dict(part)
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    return ""


def as_messages(key: str, value: Any) -> list[dict[str, Any]]:
    """Chat messages (dicts or SDK objects) as ``[{"role", "content"}]``; a string is one user message."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, (bytes, Mapping)) or not isinstance(value, Sequence):
        raise _fail(key, "messages", value)
    out = []
    for i, message in enumerate(value):
        message = as_dict(message)
        if not isinstance(message, Mapping) or "role" not in message and "content" not in message:
            raise ValidationError(
                f"`{key}[{i}]` must be a chat message with `role` and `content`, got {type(message).__name__}",
                field=f"{key}[{i}]",
            )
        out.append({"role": message.get("role", "user"), "content": message_text(message.get("content"))})
    return out


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str | None:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return None


def apply_normalized(fields: dict[str, tuple[str, Any]], result: Normalized, *, key: str = "response") -> None:
    """Fill what a provider response tells (text, model, tokens, finish reason, tool calls)
    under whatever the caller gave explicitly."""
    fields["response"] = (key, result.text)
    if result.model and "llm_model" not in fields:
        fields["llm_model"] = ("llm_model", result.model)
    if result.has_usage and "token_usage" not in fields and "token_count" not in fields:
        fields["token_usage"] = ("token_usage", {
            "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.total_tokens,
        })
    meta_key, meta = fields.get("metadata", ("metadata", {}))
    if isinstance(meta, Mapping):
        given = meta.get("llm")
        llm = {**llm_metadata(result), **given} if isinstance(given, Mapping) else llm_metadata(result)
        if given is None or isinstance(given, Mapping):
            fields["metadata"] = (meta_key, {**meta, "llm": llm})


def _adapt_inputs(fields: dict[str, tuple[str, Any]]) -> None:
    """Provider response objects and chat messages become plain fields."""
    response = fields.get("response")
    if response is not None and not isinstance(response[1], str):
        key, value = response
        try:
            result = adapt(value)
        except LookupError:
            raise ValidationError(
                f"`{key}` must be a string or a provider response (OpenAI, Anthropic, Gemini, Bedrock, Cohere, "
                f"Mistral, Ollama or any OpenAI-compatible dict); got {type(value).__name__}",
                field=key,
            ) from None
        apply_normalized(fields, result, key=key)
    messages = fields.pop("messages", None)
    if messages is not None:
        listed = as_messages(*messages)
        if "user_prompt" not in fields:
            prompt = last_user_text(listed)
            if prompt is not None:
                fields["user_prompt"] = (messages[0], prompt)


def build_record(fields: Mapping[str, tuple[str, Any]]) -> LogRecord:
    """Validate normalized fields (from :func:`normalize`) into a :class:`LogRecord`."""
    fields = dict(fields)
    _adapt_inputs(fields)
    values: dict[str, Any] = {}
    for name, (key, value) in fields.items():
        convert = _CONVERTERS.get(name)
        values[name] = convert(key, value) if convert else value
    for required in ("user_prompt", "response"):
        if required not in values:
            alias = BY_NAME[required].aliases[0]
            raise ValidationError(
                f"`{required}` is required: pass {required}=... (or {alias}=...), {BY_NAME[required].hint}",
                field=required,
            )
    if "error" in values and "status" not in values:
        values["status"] = "error"
    usage = values.get("token_usage")
    if usage is not None:
        count = values.setdefault("token_count", usage.total_tokens)
        if count != usage.total_tokens:
            key = fields["token_count"][0]
            raise ValidationError(
                f"`{key}` ({count!r}) differs from token_usage total_tokens ({usage.total_tokens}); "
                "pass one, or make them equal",
                field=key,
            )
    try:
        return LogRecord.create(**values)
    except InvalidField as exc:  # the caller's own key and value in the message, not ours
        key, given = fields[exc.name] if exc.name in fields else (exc.name, values[exc.name])
        raise _fail(key, exc.name, given) from None
