"""The collector's routes as an OpenAPI 3.0 document, served at ``GET /openapi.json`` (a copy is
kept in ``docs/openapi.json``; a test keeps the two equal)."""

from __future__ import annotations

from typing import Any

from .._config import ROUTE

__all__ = ["document"]

_ERROR = {"type": "object", "required": ["error"],
          "properties": {"error": {"type": "string"}, "field": {"type": "string"}}}
_RECORD = {
    "type": "object",
    "description": "The contract's body (docs/fields.md); unknown keys are kept in extras.",
    "required": ["user_prompt", "ai_response", "org_id"],
    "properties": {
        "user_prompt": {"type": "string"}, "ai_response": {"type": "string"},
        "org_id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "mode": {"type": "string", "enum": ["prod", "dev"]},
        "metaData": {"type": "object"}, "user_meta_data": {"type": "object"},
        "session_id": {"type": "string"}, "user_id": {"type": "string"}, "llm_model": {"type": "string"},
        "token_count": {"type": "integer", "minimum": 0, "maximum": 9223372036854775807},
        "response_time": {"oneOf": [{"type": "number", "minimum": 0}, {"type": "string"}]},
        "step_data": {"type": "array", "items": {"type": "object"}},
        "event_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    },
    "additionalProperties": True,
}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): {"description": "refused", "content": {"application/json": {"schema": _ERROR}}}
            for code in codes}


def _ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}}


def document() -> dict[str, Any]:
    stored = {"type": "object", "required": ["message"],
              "properties": {"message": {"type": "string"}, "event_id": {"type": "string"}}}
    result = {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "integer"}, "event_id": {"type": "string", "nullable": True},
        "error": {"type": "string"}, "field": {"type": "string", "nullable": True}, "message": {"type": "string"}}}
    body = {"required": True, "content": {"application/json": {"schema": _RECORD}}}
    batch = {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["records"],
        "properties": {"records": {"type": "array", "items": _RECORD, "maxItems": 1000}}}}}}
    def q(name: str, schema: dict[str, Any], about: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "schema": schema, "description": about}

    text = {"type": "string"}
    when = {"type": "string", "format": "date-time"}
    filters = [
        q("q", text, "full-text search over prompts and answers (every word must occur)"),
        q("model", text, "llm_model equals"), q("user_id", text, "user_id equals"),
        q("status", {"type": "string", "enum": ["ok", "error"]}, "record status"),
        q("since", when, "timestamp at or after (RFC 3339)"), q("until", when, "timestamp at or before (RFC 3339)"),
        q("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "rows per page (default 50)"),
        q("cursor", text, "next_cursor of the previous page"),
    ]
    paged = {"type": "string", "nullable": True, "description": "pass as cursor for the next page; null at the end"}
    refused = "an unknown or invalid query parameter is refused with 400, naming it in `param`"
    return {
        "openapi": "3.0.3",
        "info": {"title": "HuggingPlace local collector", "version": "2"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            ROUTE: {"post": {"summary": "Store one record", "requestBody": body,
                             "responses": {**_ok(stored), **_errors(400, 401, 403, 408, 413, 422)}}},
            ROUTE + "/batch": {"post": {
                "summary": "Store many records; one result per record, in order", "requestBody": batch,
                "responses": {**_ok({"type": "object", "required": ["results"], "properties": {
                    "results": {"type": "array", "items": result}}}), **_errors(400, 401, 408, 413)}}},
            "/v2/sessions": {"get": {
                "summary": "Sessions of the key's org: those holding a record that matches the filters",
                "description": refused, "parameters": [
                    *filters, q("sort", {"type": "string", "enum": ["recent", "latency", "tokens"]},
                                "newest first (default), or by mean latency or total tokens, descending")],
                "responses": {**_ok({"type": "object", "required": ["sessions", "next_cursor"],
                                     "properties": {"sessions": {"type": "array", "items": {"type": "object"}},
                                                    "next_cursor": paged}}), **_errors(400, 401)}}},
            "/v2/records": {"get": {
                "summary": "Every record of the key's org, with or without a session, newest first",
                "description": refused, "parameters": [*filters, q("session_id", text, "session_id equals")],
                "responses": {**_ok({"type": "object", "required": ["records", "next_cursor"],
                                     "properties": {"records": {"type": "array", "items": {"type": "object"}},
                                                    "next_cursor": paged}}), **_errors(400, 401)}}},
            "/v2/overview": {"get": {
                "summary": "Records per minute, error rate, latency p50/p95 and tokens per model over a window",
                "parameters": [q("window", {"type": "string", "enum": ["1h", "24h", "7d"]}, "default 1h")],
                "responses": {**_ok({"type": "object", "required": ["records", "buckets", "models"]}),
                              **_errors(400, 401)}}},
            "/v2/sessions/{session_id}": {"get": {
                "summary": "The records of one session", "parameters": [
                    {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {**_ok({"type": "object", "required": ["records"]}), **_errors(401, 404)}}},
            "/v2/records/{event_id}": {"get": {
                "summary": "One record", "parameters": [
                    {"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {**_ok({"type": "object"}), **_errors(401, 404)}}},
            "/health": {"get": {"summary": "Liveness", "security": [],
                                "responses": _ok({"type": "object", "required": ["status"]})}},
        },
    }
