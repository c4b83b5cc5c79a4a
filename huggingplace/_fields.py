"""The field table: each keyword a caller may pass, its camelCase aliases, and its wire name.

This is the single place that knows ``metadata`` travels as ``metaData`` and ``response`` as
``ai_response``; ``_mapping.py`` reads it to accept input, ``_wire.py`` to write the payload.
"""

from __future__ import annotations

from typing import NamedTuple


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
    Field("response_time", "response_time", ("responseTime",), "a number of milliseconds >= 0"),
    Field("step_data", "step_data", ("stepData",), "a list of step dicts"),
    Field("user_uuid", "user_uuid", ("userUuid",), "a string"),
    Field("org_uuid", "org_uuid", ("orgUuid",), "a string"),
    Field("user_roles", "user_roles", ("userRoles",), "a list of strings"),
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
