"""The public HuggingPlace SDKs' documented examples, through both paths, read back from SQLite:

- posted as the public SDK puts them on the wire, into ``huggingplace serve``;
- passed as they are (only ``await`` dropped) to our ``log()``, ``log_step()`` and ``session.log()``.

Both must be stored, and stored alike.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest
import requests

from huggingplace import AsyncHuggingPlace, HuggingPlace
from huggingplace._fields import step_status_class
from huggingplace.collector._store import Store

from .conftest import LiveCollector
from .public_sdk import EXAMPLES, Example, wire_body

ROUTE = "/v2/chatgpt/store_generated_response"
COLUMNS = ("user_prompt", "ai_response", "session_id", "llm_model", "llm_model2", "user_uuid", "org_uuid",
           "file_name", "message_id", "mapping_table", "user_roles", "token_count", "response_time")


def stored(collector: LiveCollector, event_id: str) -> dict[str, Any]:
    store = Store(collector.db_path)
    try:
        record = store.record(collector.org, event_id)
    finally:
        store.close()
    assert record is not None, f"{event_id} is not in {collector.db_path}"
    return record


def marked(example: Example) -> Example:
    """The example with a unique session, so two runs never read each other's records."""
    fields = dict(example.fields)
    if example.call == "session":
        return Example(example.name, example.sdk, example.call, fields,
                       session_id=f"{example.session_id}-{secrets.token_hex(4)}", expect=example.expect)
    return Example(example.name, example.sdk, example.call, fields, expect=example.expect)


def through_the_wire(collector: LiveCollector, example: Example) -> dict[str, Any]:
    answer = requests.post(collector.url + ROUTE, data=json.dumps(wire_body(example, collector.org)), timeout=10,
                           headers={"Authorization": f"Bearer {collector.key}", "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text  # the public SDKs count anything else as failure
    return stored(collector, answer.json()["event_id"])


def through_our_sdk(collector: LiveCollector, example: Example) -> dict[str, Any]:
    with HuggingPlace(**collector.options()) as hp:
        if example.call == "log_step":
            result = hp.log_step(example.fields)
        elif example.call == "session":
            result = hp.start_session(example.session_id).log(example.fields)
        else:
            result = hp.log(example.fields)
    assert result.status_code == 200, result
    return stored(collector, result.event_id)


def the_same_in_both(example: Example, record: dict[str, Any]) -> None:
    for column, value in example.expect.items():
        assert record[column] == value, column
    if example.call == "session":
        assert record["session_id"] == example.session_id
    meta = example.fields.get("metaData") or example.fields.get("metadata") or {}
    assert {k: record["metaData"].get(k) for k in meta} == meta  # metadata and metaData both land
    steps = example.fields.get("step_data") or ([example.fields] if example.call == "log_step" else [])
    assert [s["step_name"] for s in record["step_data"]] == [s["step_name"] for s in steps]
    for step in record["step_data"]:
        assert step["status"] == "completed" and step_status_class(step["status"]) == "ok"
        assert "userQuestion" not in step and "responseTime" not in step
        assert isinstance(step.get("response_time", 0.0), float)


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_the_public_sdks_body_is_stored(collector: LiveCollector, example: Example) -> None:
    example = marked(example)
    record = through_the_wire(collector, example)
    the_same_in_both(example, record)


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_the_users_dict_passed_to_our_sdk_is_stored_alike(collector: LiveCollector, example: Example) -> None:
    example = marked(example)
    ours = through_our_sdk(collector, example)
    the_same_in_both(example, ours)
    theirs = through_the_wire(collector, example)
    for column in COLUMNS:
        assert ours[column] == theirs[column], column
    assert ours["step_data"] == theirs["step_data"]


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.call == "session"], ids=str)
def test_the_async_client_takes_the_same_dicts(collector: LiveCollector, example: Example) -> None:
    example = marked(example)

    async def main() -> tuple[Any, Any]:
        async with AsyncHuggingPlace(**collector.options()) as hp:
            result = await hp.start_session(example.session_id).log(example.fields)
            step = await hp.log_step(EXAMPLES[3].fields, session_id=example.session_id)
        return result, step

    result, step = asyncio.run(main())
    the_same_in_both(example, stored(collector, result.event_id))
    assert stored(collector, step.event_id)["user_prompt"] == "Process weather data"


def test_camel_case_keys_beside_their_wire_names_are_kept_as_extras(collector: LiveCollector) -> None:
    """The JavaScript SDK's sessions send `metaData: {}` beside the caller's `metadata`: merged,
    and the alias also kept as sent; an alias with no wire key is renamed, not kept twice."""
    body = {"userPrompt": "q", "ai_response": "a", "response": "a", "metaData": {"a": 1}, "metadata": {"b": 2},
            "userRoles": "admin", "org_id": collector.org}
    answer = requests.post(collector.url + ROUTE, json=body, timeout=10,
                           headers={"Authorization": f"Bearer {collector.key}"})
    assert answer.status_code == 200, answer.text
    record = stored(collector, answer.json()["event_id"])
    assert record["user_prompt"] == "q" and record["user_roles"] == ["admin"]
    assert record["metaData"] == {"a": 1, "b": 2}
    assert record["extras"] == {"response": "a", "metadata": {"b": 2}}


def test_different_values_for_one_field_are_kept_not_chosen(collector: LiveCollector) -> None:
    body = {"user_prompt": "q", "ai_response": "a", "response": "b", "org_id": collector.org}
    answer = requests.post(collector.url + ROUTE, json=body, timeout=10,
                           headers={"Authorization": f"Bearer {collector.key}"})
    record = stored(collector, answer.json()["event_id"])
    assert record["ai_response"] == "a" and record["extras"] == {"response": "b"}


def test_our_sdk_and_the_collector_agree_on_a_completed_hand_made_step(collector: LiveCollector) -> None:
    with HuggingPlace(**collector.options()) as hp:
        result = hp.log(user_prompt="q", response="a", step_data=[{"step_name": "s", "status": "completed"}])
    assert result.status_code == 200
    assert stored(collector, result.event_id)["step_data"][0]["status"] == "completed"
