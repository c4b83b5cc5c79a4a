"""The contract's body, headers and status table, checked on the pure functions."""

from __future__ import annotations

import json

import pytest

from huggingplace import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ValidationError,
    __version__,
)
from huggingplace._config import resolve_options
from huggingplace._mapping import build_record, normalize
from huggingplace._models import Step
from huggingplace._wire import (
    Request,
    Response,
    build_request,
    parse_response,
    request_for_body,
    requests_to,
    step_to_wire,
)

KEY = "hp_secret_" + "x" * 20
OPTIONS = resolve_options(api_key=KEY, org_id="org-1", base_url="http://127.0.0.1:9", mode="dev")


def _request(**fields: object) -> Request:
    record = build_record(normalize({"user_prompt": "q", "response": "a", **fields}))
    return build_request(record, OPTIONS)


def test_headers_follow_the_contract() -> None:
    request = _request()
    assert request.url == "http://127.0.0.1:9/v2/chatgpt/store_generated_response"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == request.event_id == json.loads(request.body)["event_id"]
    assert request.headers["User-Agent"] == f"huggingplace-python/{__version__}"


def test_requests_to_one_url_share_the_fixed_headers_not_their_own() -> None:
    """The worker's maker builds the fixed headers once; every request it makes is the one
    request_for_body makes, with its own Idempotency-Key and its own headers dict."""
    make = requests_to(OPTIONS.url, OPTIONS)
    first, second = make(b'{"a":1}', "e1"), make(b'{"b":2}', "e2")
    assert first == request_for_body(b'{"a":1}', "e1", OPTIONS)
    assert (first.headers["Idempotency-Key"], second.headers["Idempotency-Key"]) == ("e1", "e2")
    assert first.headers is not second.headers
    first.headers["X-Mine"] = "changed"  # type: ignore[index]
    assert "X-Mine" not in make(b"{}", "e3").headers
    assert second.headers["Authorization"] == f"Bearer {KEY}" and second.url == OPTIONS.url


def test_body_has_sdk_mode_org_and_no_nulls() -> None:
    body = json.loads(_request(llm_model=None).body)
    assert body["sdk"] == {"name": "huggingplace-python", "version": __version__}
    assert body["mode"] == "dev" and body["org_id"] == "org-1"
    assert "llm_model" not in body
    assert None not in body.values()


def test_session_id_is_copied_into_metadata_unless_present() -> None:
    assert json.loads(_request(session_id="s-9").body)["metaData"] == {"sessionId": "s-9"}
    body = json.loads(_request(session_id="s-9", metadata={"sessionId": "mine"}).body)
    assert body["metaData"] == {"sessionId": "mine"} and body["session_id"] == "s-9"


def test_request_repr_hides_the_key() -> None:
    assert KEY not in repr(_request())


def test_step_object_keys() -> None:
    """A timed step carries step_name, status, time_ms, started_at and ended_at; error when it failed."""
    step = Step(name="retrieve", type="retrieval", metadata={"k": 3})
    step.start()
    child = Step(name="rank")
    child.start()
    child.finish(ValueError("bad rank"))
    step.steps.append(child)
    step.finish()
    wire = step_to_wire(step)
    assert set(wire) == {"step_name", "type", "status", "time_ms", "started_at", "ended_at", "metadata", "steps"}
    assert wire["time_ms"] >= 0 and wire["status"] == "ok"
    assert wire["started_at"].endswith("Z") and wire["started_at"] <= wire["ended_at"]
    assert wire["steps"][0]["status"] == "error"
    assert wire["steps"][0]["error"] == {"type": "ValueError", "message": "bad rank"}


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_success(status: int) -> None:
    """The public SDKs count 201 as failure; every 2xx is success here."""
    request = _request()
    result = parse_response(Response(status, {}, b""), request)
    assert result.status_code == status and result.event_id == request.event_id


@pytest.mark.parametrize(
    "status, error, retryable",
    [
        (400, BadRequestError, False),
        (422, BadRequestError, False),
        (401, AuthenticationError, False),
        (403, PermissionDeniedError, False),
        (404, NotFoundError, False),
        (413, RequestTooLargeError, False),
        (408, InternalServerError, True),
        (425, InternalServerError, True),
        (429, RateLimitError, True),
        (500, InternalServerError, True),
        (502, InternalServerError, True),
        (503, InternalServerError, True),
        (504, InternalServerError, True),
        (409, APIStatusError, False),
        (501, APIStatusError, False),
    ],
)
def test_status_table(status: int, error: type[APIStatusError], retryable: bool) -> None:
    """Each status of the contract's table maps to its exception and retry decision."""
    request = _request()
    body = json.dumps({"error": "server says no"}).encode()
    with pytest.raises(error) as info:
        parse_response(Response(status, {}, body), request)
    assert type(info.value) is error
    assert info.value.status_code == status
    assert "server says no" in info.value.message
    assert info.value.retryable is retryable


def test_refusals_are_validation_errors() -> None:
    with pytest.raises(ValidationError):
        parse_response(Response(422, {}, b'{"error": "bad"}'), _request())


def test_404_names_the_url_and_413_the_size() -> None:
    request = _request()
    with pytest.raises(NotFoundError, match="127.0.0.1:9/v2/chatgpt/store_generated_response"):
        parse_response(Response(404, {}, b""), request)
    with pytest.raises(RequestTooLargeError, match=f"{len(request.body)} bytes") as info:
        parse_response(Response(413, {}, b""), request)
    assert info.value.size == len(request.body)


def test_server_echo_of_the_key_is_scrubbed() -> None:
    with pytest.raises(AuthenticationError) as info:
        parse_response(Response(401, {}, json.dumps({"message": f"bad key {KEY}"}).encode()), _request(), api_key=KEY)
    assert KEY not in str(info.value) and KEY not in info.value.message


def test_retry_after_is_read_from_the_answer() -> None:
    with pytest.raises(RateLimitError) as info:
        parse_response(Response(429, {"Retry-After": "7"}, b""), _request())
    assert info.value.retry_after == 7.0


def test_non_json_error_body_becomes_the_message() -> None:
    with pytest.raises(InternalServerError, match="upstream exploded"):
        parse_response(Response(502, {}, b"<html>upstream exploded</html>"), _request())
