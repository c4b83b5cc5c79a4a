"""A :class:`LogRecord` to the contract's JSON body and headers; an HTTP answer to a result or error.

Pure: builds bytes and reads status codes, never opens a socket. Both clients, the background
worker and the tests share it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._config import Options
from ._exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    HuggingPlaceError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
)
from ._fields import BY_NAME
from ._models import ErrorInfo, LogRecord, LogResult, Step, TokenUsage
from ._retry import parse_retry_after
from ._serialize import dumps, format_timestamp, to_jsonable
from ._version import __version__

__all__ = [
    "Request", "Response", "to_payload", "step_to_wire", "build_request", "encode", "parse_response",
    "BATCH_HEADER", "READ_HEADERS", "batch_body", "batch_errors", "request_for_body", "requests_to",
]

#: the response header by which an endpoint advertises a batch route (the local collector does)
BATCH_HEADER = "HuggingPlace-Batch-Route"
#: the response headers the SDK reads (lower-cased); a transport may keep only these
READ_HEADERS = ("retry-after", BATCH_HEADER.lower())

SDK = {"name": "huggingplace-python", "version": __version__}
USER_AGENT = f"huggingplace-python/{__version__}"


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()} if headers else {}


@attrs.frozen
class Request:
    """One POST ready to send. ``event_id`` is also the ``Idempotency-Key`` header."""

    url: str
    headers: Mapping[str, str] = attrs.field(repr=False)  # holds the API key
    body: bytes = attrs.field(repr=False)
    event_id: str


@attrs.frozen
class Response:
    """What a transport got back, reduced to what the SDK reads; header names lower-cased."""

    status_code: int
    headers: Mapping[str, str] = attrs.field(converter=_lower_keys)
    body: bytes = b""


def _error(info: ErrorInfo) -> dict[str, str]:
    return {"type": info.type, "message": info.message}


def step_to_wire(step: Step) -> dict[str, Any]:
    """A timed step as the contract's step object; absent values are left out."""
    out: dict[str, Any] = {"step_name": step.name, "status": step.status}
    if step.type is not None:
        out["type"] = step.type
    out["time_ms"] = round(step.time_ms, 3) if step.time_ms is not None else 0.0
    if step.started_at is not None:
        out["started_at"] = format_timestamp(step.started_at)
    if step.ended_at is not None:
        out["ended_at"] = format_timestamp(step.ended_at)
    if step.error is not None:
        out["error"] = _error(step.error)
    for name in ("user_question", "prompt_response", "llm_model", "token", "input_tokens", "output_tokens"):
        value = getattr(step, name)
        if value is not None:
            out[name] = value
    if step.metadata:
        out["metadata"] = to_jsonable(step.metadata)
    out["steps"] = [step_to_wire(child) for child in step.steps]
    return out


def _usage(usage: TokenUsage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _steps_to_wire(steps: Any) -> Any:
    return [step_to_wire(s) if isinstance(s, Step) else s for s in steps] if steps else None


def _table(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


#: how a LogRecord attribute goes on the wire: (attribute, wire name, conversion or None)
_PLAN: tuple[tuple[str, str, Any], ...] = tuple(
    (a.name, BY_NAME[a.name].wire, {
        "token_usage": _usage, "error": _error, "timestamp": format_timestamp,
        "step_data": _steps_to_wire, "user_roles": list, "metadata": dict, "user_metadata": dict,
        "mapping_table": _table,
    }.get(a.name))
    for a in attrs.fields(LogRecord)
)


def to_payload(record: LogRecord, options: Options) -> dict[str, Any]:
    """The JSON object of the contract, with no ``null`` values."""
    body: dict[str, Any] = {}
    for name, wire, convert in _PLAN:
        value = getattr(record, name)
        if value is not None and convert is not None:
            value = convert(value)
        if value is not None:
            body[wire] = value
    if record.session_id is not None:
        meta = body.setdefault("metaData", {})
        meta.setdefault("sessionId", record.session_id)
    body["org_id"] = options.org_id
    body["mode"] = options.mode
    body["sdk"] = dict(SDK)
    return body


def encode(payload: Any) -> bytes:
    """Compact UTF-8 JSON that never fails (see :func:`_serialize.dumps`)."""
    return dumps(payload)


def headers(options: Options, event_id: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {options.api_key}",
        "Content-Type": "application/json",
        "Idempotency-Key": event_id,
        "User-Agent": USER_AGENT,
    }


def build_request(record: LogRecord, options: Options) -> Request:
    return request_for_payload(to_payload(record, options), options)


def request_for_payload(payload: Mapping[str, Any], options: Options) -> Request:
    """A request for a payload already built: same body, same event_id on every attempt."""
    event_id = str(payload.get("event_id", ""))
    return Request(url=options.url, headers=headers(options, event_id), body=encode(payload), event_id=event_id)


def request_for_body(body: bytes, event_id: str, options: Options, url: str | None = None) -> Request:
    """A request for a record already encoded (queued or spooled)."""
    return requests_to(url or options.url, options)(body, event_id)


def requests_to(url: str, options: Options) -> Callable[[bytes, str], Request]:
    """What makes requests to ``url`` for records already encoded, the fixed headers built once
    (the background worker makes thousands)."""
    fixed = headers(options, "")

    def request(body: bytes, event_id: str) -> Request:
        return Request(url, {**fixed, "Idempotency-Key": event_id}, body, event_id)

    return request


def batch_body(bodies: list[bytes]) -> bytes:
    """The batch route's body, ``{"records": [...]}``, joined from records encoded one by one
    (so that one record that cannot be encoded never costs the others)."""
    return b'{"records":[' + b",".join(bodies) + b"]}"


def batch_errors(response: Response, request: Request, event_ids: list[str]) -> list[HuggingPlaceError | None] | None:
    """Per-record outcomes of a batch answer (``{"results": [{"status": ...}, ...]}``): None for
    a stored record, the error the single route would have raised otherwise. Returns None when
    the answer is not such a list (the caller then sends the records one by one)."""
    data = _decode(response.body)
    results = data.get("results") if isinstance(data, Mapping) else None
    if not isinstance(results, list) or len(results) != len(event_ids):
        return None
    out: list[HuggingPlaceError | None] = []
    for event_id, result in zip(event_ids, results):
        status = result.get("status") if isinstance(result, Mapping) else None
        if not isinstance(status, int):
            return None
        if 200 <= status < 300:
            out.append(None)
            continue
        single = Response(status, {}, json.dumps(result).encode())
        try:
            parse_response(single, attrs.evolve(request, event_id=event_id))
        except HuggingPlaceError as exc:
            out.append(exc)
    return out


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        return body.decode("utf-8", "replace")


def _server_message(data: Any, status: int) -> str:
    if isinstance(data, Mapping):
        for key in ("message", "error", "detail", "errors"):
            if data.get(key):
                found = data[key]
                return found if isinstance(found, str) else json.dumps(found, default=str)[:500]
    if isinstance(data, str) and data.strip():
        return data.strip()[:500]
    return f"the endpoint answered HTTP {status} with no message"


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    422: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
    429: RateLimitError,
}
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def parse_response(response: Response, request: Request, *, api_key: str = "") -> LogResult:
    """Any 2xx is success (the public SDKs wrongly require exactly 200); anything else raises."""
    data = _decode(response.body)
    status = response.status_code
    if 200 <= status < 300:
        return LogResult(event_id=request.event_id, status_code=status, body=data)
    message = _server_message(data, status)
    if api_key:
        message = message.replace(api_key, "***")
    if status == 404:
        message = f"{message} (POST {request.url}: check base_url / HUGGINGPLACE_BASE_URL)"
    elif status == 413:
        message = f"{message} (the body was {len(request.body)} bytes)"
    elif status == 401:
        message = f"{message} (check api_key / HUGGINGPLACE_API_KEY)"
    elif status == 403:
        message = f"{message} (the key does not belong to this org_id)"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status in _STATUS_ERRORS:
        cls = _STATUS_ERRORS[status]
    elif status in TRANSIENT_STATUSES:
        cls = InternalServerError
    else:
        cls = APIStatusError
    error = cls(message, status_code=status, url=request.url, body=data, retry_after=retry_after)
    if isinstance(error, RequestTooLargeError):
        error.size = len(request.body)
    raise error
