"""Caller input to validated records: aliases, refusals that name the field, no mutation."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huggingplace import HuggingPlace, MemoryTransport, ValidationError
from huggingplace._config import resolve_options
from huggingplace._fields import BY_NAME, FIELDS
from huggingplace._wire import to_payload

from .strategies import WRONG_TYPES, valid_fields

OPTIONS = resolve_options(api_key="k" * 10, org_id=7, base_url="http://127.0.0.1:9")


def _client() -> tuple[HuggingPlace, MemoryTransport]:
    transport = MemoryTransport()
    return HuggingPlace(api_key="k" * 10, org_id=7, base_url="http://127.0.0.1:9", transport=transport), transport


def test_every_alias_reaches_its_wire_name() -> None:
    """Each snake_case keyword and each camelCase alias lands under the contract's wire name."""
    samples: dict[str, Any] = {
        "user_prompt": "q", "response": "a", "metadata": {"k": 1}, "user_metadata": {"e": "x"},
        "user_id": "u", "session_id": "s", "file_name": "f.csv", "llm_model": "m", "token_count": 5,
        "token_usage": {"prompt_tokens": 2, "completion_tokens": 3}, "response_time": 12.5,
        "step_data": [{"step_name": "x"}], "user_uuid": "uu", "org_uuid": "ou", "user_roles": ["admin"],
        "llm_model2": "m2", "mapping_table": {"t": "c"}, "message_id": "mid", "status": "error",
        "error": {"type": "E", "message": "boom"}, "event_id": "a" * 32,
        "timestamp": dt.datetime(2026, 11, 22, 8, 15, 0, 123456, tzinfo=dt.timezone.utc),
    }
    for field in FIELDS:
        if not field.wire:  # input only (messages): covered in test_providers
            continue
        for spelling in (field.name, *field.aliases):
            hp, transport = _client()
            kwargs = {"user_prompt": "q", "response": "a"}
            kwargs = {k: v for k, v in kwargs.items() if k != field.name}
            kwargs[spelling] = samples[field.name]
            hp.log(**kwargs)
            body = transport.payloads[0]
            assert field.wire in body, (spelling, field.wire)


def test_the_seed_example_maps_exactly() -> None:
    """seeds/003's example: userPrompt, response, metadata, userMetadata -> its payload."""
    hp, transport = _client()
    hp.log({
        "userPrompt": "What's the weather?", "response": "It's sunny today.",
        "metadata": {"sessionId": "123"}, "userMetadata": {"email": "user@example.com"},
    })
    body = transport.payloads[0]
    assert body["user_prompt"] == "What's the weather?"
    assert body["ai_response"] == "It's sunny today."
    assert body["metaData"] == {"sessionId": "123"}
    assert body["user_meta_data"] == {"email": "user@example.com"}
    assert body["org_id"] == 7 and body["mode"] == "prod"


def test_kwargs_override_the_positional_dict() -> None:
    hp, transport = _client()
    hp.log({"userPrompt": "old", "response": "a"}, user_prompt="new")
    assert transport.payloads[0]["user_prompt"] == "new"


def test_unknown_field_suggests_the_nearest_name() -> None:
    """`user_promt` -> did you mean `user_prompt`?, raised before any request."""
    hp, transport = _client()
    with pytest.raises(ValidationError, match="did you mean `user_prompt`") as info:
        hp.log(user_promt="x", response="y")
    assert info.value.field == "user_promt"
    assert transport.requests == []


def test_same_field_twice_with_different_values_is_refused_naming_both() -> None:
    hp, transport = _client()
    with pytest.raises(ValidationError, match="`user_prompt` and `userPrompt` are the same field") as info:
        hp.log(user_prompt="a", userPrompt="b", response="c")
    assert info.value.field == "userPrompt" and transport.requests == []


@pytest.mark.parametrize(("a", "b", "value"), [
    ("response", "ai_response", "same text"),
    ("metadata", "metaData", {"k": 1}),
    ("user_metadata", "userMetadata", {"email": "e"}),
])
def test_same_field_twice_with_the_same_value_is_one_value(a: str, b: str, value: object) -> None:
    """The public SDKs' READMEs pass `response` beside `ai_response` with the same text."""
    hp, transport = _client()
    hp.log({"user_prompt": "q", "response": "r", a: value, b: value} if a != "response" else
           {"user_prompt": "q", a: value, b: value})
    wire = BY_NAME[a].wire
    assert transport.payloads[0][wire] == (value if a != "metadata" else {**value})
    assert b not in transport.payloads[0] or b == wire


@pytest.mark.parametrize("missing", ["user_prompt", "response"])
def test_required_fields(missing: str) -> None:
    hp, transport = _client()
    fields = {"user_prompt": "q", "response": "a"}
    del fields[missing]
    with pytest.raises(ValidationError, match=f"`{missing}` is required"):
        hp.log(**fields)
    assert transport.requests == []


def test_response_time_in_the_public_sdks_words_is_sent_as_milliseconds() -> None:
    hp, transport = _client()
    hp.log(user_prompt="q", response="a", responseTime="1 min 2.30 sec")
    assert transport.payloads[0]["response_time"] == 62300.0


@pytest.mark.parametrize("value", ["fast", "1.5", "2 sec", ""])
def test_response_time_as_another_string_explains_the_fix(value: str) -> None:
    hp, transport = _client()
    with pytest.raises(ValidationError, match="milliseconds as a number") as info:
        hp.log(user_prompt="q", response="a", responseTime=value)
    assert info.value.field == "responseTime"
    assert transport.requests == []


def test_a_response_time_past_a_floats_range_is_refused_by_name() -> None:
    """An int too large for a float (10**400 ms) is a ValidationError naming the caller's key,
    not an OverflowError from the conversion (Hypothesis found it in the sender's round trip)."""
    hp, transport = _client()
    with pytest.raises(ValidationError, match="too large for a number of milliseconds") as info:
        hp.log(user_prompt="q", response="a", responseTime=10**400)
    assert info.value.field == "responseTime"
    assert transport.requests == []
    hp.log(user_prompt="q", response="a", response_time=10**300)  # large, but a float holds it
    assert transport.payloads[0]["response_time"] == 1e300


def test_response_time_from_timedelta() -> None:
    hp, transport = _client()
    hp.log(user_prompt="q", response="a", response_time=dt.timedelta(seconds=1.5))
    assert transport.payloads[0]["response_time"] == 1500.0


def test_token_usage_fills_token_count() -> None:
    hp, transport = _client()
    hp.log(user_prompt="q", response="a", tokenUsage={"promptTokens": 3, "completion_tokens": 4})
    body = transport.payloads[0]
    assert body["token_usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert body["token_count"] == 7


def test_token_count_must_match_usage_total() -> None:
    hp, _ = _client()
    with pytest.raises(ValidationError, match="differs from token_usage"):
        hp.log(user_prompt="q", response="a", token_count=9, token_usage={"total_tokens": 7})


def test_single_role_string_is_one_role() -> None:
    hp, transport = _client()
    hp.log(user_prompt="q", response="a", userRoles="admin")
    assert transport.payloads[0]["user_roles"] == ["admin"]
    with pytest.raises(ValidationError, match="`user_roles` must be a list of strings") as info:
        hp.log(user_prompt="q", response="a", user_roles=["admin", 3])
    assert info.value.field == "user_roles"


def test_legacy_step_keys_are_sent_under_their_wire_names() -> None:
    """The JavaScript SDK's users write steps in camelCase with "0 min 1.80 sec" times."""
    hp, transport = _client()
    hp.log(user_prompt="q", response="a", step_data=[{
        "step_name": "sql", "status": "completed", "time_ms": 1800, "userQuestion": "uq",
        "promptResponse": "pr", "token": 120, "responseTime": "0 min 1.80 sec", "inputTokens": 40,
        "outputTokens": 80, "llmModel": "gpt-4o", "steps": [{"stepName": "inner", "timeMs": "0 min 0.25 sec"}],
    }])
    step = transport.payloads[0]["step_data"][0]
    assert step == {
        "step_name": "sql", "status": "completed", "time_ms": 1800, "user_question": "uq",
        "prompt_response": "pr", "token": 120, "response_time": 1800.0, "input_tokens": 40,
        "output_tokens": 80, "llm_model": "gpt-4o", "steps": [{"step_name": "inner", "time_ms": 250.0}],
    }


def test_error_marks_status() -> None:
    """Passing an exception as `error` sets status "error" and the {type, message} object."""
    hp, transport = _client()
    hp.log(user_prompt="q", response="", error=TimeoutError("model took too long"))
    body = transport.payloads[0]
    assert body["status"] == "error"
    assert body["error"] == {"type": "TimeoutError", "message": "model took too long"}
    assert body["ai_response"] == ""


def test_callers_dicts_are_never_mutated() -> None:
    """log() copies: the caller's metadata and record dict are untouched."""
    hp, _ = _client()
    record = {"userPrompt": "q", "response": "a", "userMetadata": {"email": "e"}, "metadata": {"k": [1, 2]}}
    before = copy.deepcopy(record)
    with hp.start_session("s-1", metadata={"app": "x"}) as s:
        s.log(record)
    hp.log(record)
    assert record == before


def test_metadata_is_made_json_safe() -> None:
    """Datetimes, sets and odd objects in metadata become JSON, not a crash."""
    hp, transport = _client()
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    hp.log(user_prompt="q", response="a", metadata={"when": when, "tags": {"b", "a"}, 3: "int key"})
    meta = transport.payloads[0]["metaData"]
    assert meta == {"when": "2026-01-02T03:04:05.000Z", "tags": ["a", "b"], "3": "int key"}


@settings(max_examples=150, deadline=None)
@given(valid_fields())
def test_any_valid_input_maps_to_a_contract_payload(fields: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Property: valid keyword sets (any spelling) give a payload that satisfies the contract."""
    spelled, canonical = fields
    hp, transport = _client()
    result = hp.log(**spelled)
    body = transport.payloads[0]
    headers = transport.requests[0].headers
    assert body["event_id"] == headers["Idempotency-Key"] == result.event_id
    assert re.fullmatch(r"[0-9a-f]{32}", body["event_id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["timestamp"])
    assert body["user_prompt"] == canonical["user_prompt"]
    assert body["ai_response"] == canonical["response"]
    assert None not in body.values()
    assert body["status"] == "ok" and body["mode"] == "prod" and body["org_id"] == 7
    if "session_id" in canonical:
        assert body["metaData"]["sessionId"] == (
            canonical.get("metadata", {}).get("sessionId", canonical["session_id"])
        )
    if "token_usage" in canonical:
        assert body["token_count"] == body["token_usage"]["total_tokens"]
    if "response_time" in canonical:
        assert isinstance(body["response_time"], float) and body["response_time"] >= 0
    json.dumps(body, allow_nan=False)  # strict JSON


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(WRONG_TYPES)).flatmap(lambda name: st.tuples(st.just(name), WRONG_TYPES[name])))
def test_any_invalid_field_raises_only_validation_error(case: tuple[str, Any]) -> None:
    """Property: a wrong value in any field raises ValidationError naming it; nothing is sent."""
    name, value = case
    hp, transport = _client()
    fields: dict[str, Any] = {"user_prompt": "q", "response": "a", name: value}
    with pytest.raises(ValidationError) as info:
        hp.log(**fields)
    assert info.value.field is not None and info.value.field.startswith(name)
    assert transport.requests == []


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), st.integers(), min_size=1, max_size=3))
def test_unknown_keys_never_pass_silently(extra: dict[str, int]) -> None:
    """Property: a key outside the field table is a ValidationError, never dropped."""
    from huggingplace._fields import ALIASES

    hp, transport = _client()
    unknown = {k: v for k, v in extra.items() if k not in ALIASES}
    if not unknown:
        return
    with pytest.raises(ValidationError, match="unknown field"):
        hp.log(user_prompt="q", response="a", **unknown)
    assert transport.requests == []


def test_payload_is_pure() -> None:
    """to_payload gives equal output for the same record: nothing hidden in it is random."""
    from huggingplace._mapping import build_record, normalize

    record = build_record(normalize({"user_prompt": "q", "response": "a", "session_id": "s"}))
    assert to_payload(record, OPTIONS) == to_payload(record, OPTIONS)


@pytest.mark.parametrize("field", sorted(__import__("huggingplace._fields", fromlist=["BY_NAME"]).BY_NAME))
def test_an_object_whose_str_and_repr_raise_is_a_validation_error_in_any_field(field: str) -> None:
    """Validators build their messages from the value's repr: when that raises, the caller still
    gets a ValidationError naming the field (or the record is accepted), never another error."""
    from .strategies import _Hostile

    hp = HuggingPlace(api_key="hp_test_key_123456", org_id="org", transport=MemoryTransport())
    fields = {"user_prompt": "q", "response": "a", field: _Hostile()}
    try:
        hp.log(**fields)
    except ValidationError as exc:
        assert exc.field == field


def test_event_ids_are_unique_across_threads_and_a_forked_child() -> None:
    """Ids are drawn ahead in a pool: threads taking from it never share one, and a forked child
    (which inherits the pool) never repeats an id its parent hands out."""
    import os
    import threading

    from huggingplace._models import new_event_id

    new_event_id()  # the pool is full: the child below inherits what the parent will hand out
    taken: list[list[str]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=lambda out=out: out.extend(new_event_id() for _ in range(2_000)))
               for out in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, written back
        os.close(read)
        os.write(write, "".join(new_event_id() for _ in range(300)).encode())
        os._exit(0)
    os.close(write)
    parent = [new_event_id() for _ in range(300)]
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read().decode()
    os.waitpid(pid, 0)
    child = [data[i:i + 32] for i in range(0, len(data), 32)]
    everything = [i for out in taken for i in out] + parent + child
    assert len(child) == 300
    assert len(set(everything)) == len(everything) == 8_600
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in everything)


@pytest.mark.parametrize("key", ["step_data", "stepData"])
def test_steps_timed_in_a_session_and_a_step_data_that_is_no_list_are_refused_by_name(key: str) -> None:
    """A session's timed steps join the call's own ``step_data``; one that is not a list is
    refused naming the caller's key (not a TypeError from inside the merge)."""
    hp, transport = _client()
    with hp.start_session("s") as session:
        with session.step("retrieve"):
            pass
        with pytest.raises(ValidationError, match=f"`{key}` must be a list of steps") as caught:
            session.log(user_prompt="q", response="a", **{key: 5})
    assert caught.value.field == key and transport.payloads == []
