"""The sync client's wire through `responses`: exact request bytes and every status row."""

from __future__ import annotations

import json

import attrs
import pytest
import requests
import responses

from huggingplace import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    HuggingPlace,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
)

from .conftest import KEY

URL = "https://api.huggingplace.com/v2/chatgpt/store_generated_response"


@pytest.fixture
def hp() -> HuggingPlace:
    client = HuggingPlace(api_key=KEY, org_id=42)
    client._policy = attrs.evolve(client._policy, initial=0.001, maximum=0.002)
    return client


@responses.activate
def test_default_url_and_body(hp: HuggingPlace) -> None:
    responses.post(URL, json={"message": "stored"})
    result = hp.log(userPrompt="q", response="a", llmModel="gpt-4o", tokenCount=42)
    call = responses.calls[0].request
    body = json.loads(call.body)
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    assert call.headers["Idempotency-Key"] == body["event_id"] == result.event_id
    assert body["llm_model"] == "gpt-4o" and body["token_count"] == 42 and body["org_id"] == 42


@pytest.mark.parametrize(
    "status, error",
    [
        (400, BadRequestError), (422, BadRequestError), (401, AuthenticationError),
        (403, PermissionDeniedError), (404, NotFoundError), (413, RequestTooLargeError),
    ],
)
@responses.activate
def test_refusal_rows(hp: HuggingPlace, status: int, error: type[Exception]) -> None:
    responses.post(URL, json={"error": "nope"}, status=status)
    with pytest.raises(error):
        hp.log(user_prompt="q", response="a")
    assert len(responses.calls) == 1


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
@responses.activate
def test_transient_rows(hp: HuggingPlace, status: int) -> None:
    responses.post(URL, json={"error": "busy"}, status=status)
    with pytest.raises((InternalServerError, RateLimitError)):
        hp.log(user_prompt="q", response="a")
    assert len(responses.calls) == 4  # 1 + max_retries
    assert len({c.request.headers["Idempotency-Key"] for c in responses.calls}) == 1


@responses.activate
def test_connection_and_timeout_errors_are_mapped(hp: HuggingPlace) -> None:
    responses.post(URL, body=requests.ConnectionError("refused"))
    with pytest.raises(APIConnectionError):
        hp.log(user_prompt="q", response="a")
    responses.replace(responses.POST, URL, body=requests.ReadTimeout("slow"))
    with pytest.raises(APITimeoutError):
        hp.log(user_prompt="q", response="a")


@responses.activate
def test_non_json_success_body_is_fine(hp: HuggingPlace) -> None:
    """The public SDK crashes printing a non-JSON 200 body; here it is simply kept."""
    responses.post(URL, body="OK", status=200)
    assert hp.log(user_prompt="q", response="a").body == "OK"
