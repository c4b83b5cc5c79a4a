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
    page = [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 200}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}]
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
            "/v2/sessions": {"get": {"summary": "Sessions of the key's org, newest first", "parameters": page,
                                     "responses": {**_ok({"type": "object", "required": ["sessions"]}),
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
