"""End to end: both clients against the real collector over loopback HTTP, checked in SQLite."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import threading
from typing import Any

import pytest
import requests

from huggingplace import (
    AsyncHuggingPlace,
    AuthenticationError,
    BadRequestError,
    HuggingPlace,
    NotFoundError,
    PermissionDeniedError,
    RequestTooLargeError,
)
from huggingplace.collector._ingest import LIMITS

from .conftest import LiveCollector

ROUTE = "/v2/chatgpt/store_generated_response"


def _post(c: LiveCollector, body: Any, key: str | None = None, **headers: str) -> requests.Response:
    return requests.post(
        c.url + ROUTE,
        data=body if isinstance(body, (bytes, str)) else json.dumps(body),
        headers={"Authorization": f"Bearer {key or c.key}", "Content-Type": "application/json", **headers},
        timeout=10,
    )


def _get(c: LiveCollector, path: str, key: str | None = None) -> requests.Response:
    return requests.get(c.url + path, headers={"Authorization": f"Bearer {key or c.key}"}, timeout=10)


def test_every_contract_field_lands_in_its_column(collector: LiveCollector, session_id: str) -> None:
    """One record with every field, read back from SQLite's chat / prompt_details / steps tables."""
    with HuggingPlace(**collector.options(mode="dev")) as hp:
        with hp.start_session(session_id) as s:
            with s.step("retrieve", type="retrieval") as st:
                st.update(metadata={"k": 3})
            result = s.log(
                user_prompt="Generate SQL for sales", response="SELECT 1", user_id="u-1", file_name="sales.csv",
                llm_model="gpt-4o", llm_model2="gpt-4o-mini", token_usage={"prompt_tokens": 10, "completion_tokens": 5},
                response_time=1234.5, user_uuid="uu-1", org_uuid="ou-1", user_roles=["admin", "analyst"],
                mapping_table={"sales": "fact_sales"}, message_id="m-1", metadata={"recommendationId": "r-9"},
                user_metadata={"email": "user@example.com"}, error={"type": "Partial", "message": "truncated"},
                status="error",
            )
    db = collector.db()
    chat = db.execute("SELECT * FROM chat WHERE event_id = ?", (result.event_id,)).fetchone()
    assert chat["org_id"] == "org-a" and chat["mode"] == "dev" and chat["session_id"] == session_id
    assert (chat["user_prompt"], chat["ai_response"]) == ("Generate SQL for sales", "SELECT 1")
    assert (chat["user_id"], chat["file_name"], chat["llm_model"], chat["llm_model2"]) == (
        "u-1", "sales.csv", "gpt-4o", "gpt-4o-mini",
    )
    assert (chat["user_uuid"], chat["org_uuid"], chat["message_id"]) == ("uu-1", "ou-1", "m-1")
    assert json.loads(chat["user_roles"]) == ["admin", "analyst"]
    assert json.loads(chat["mapping_table"]) == {"sales": "fact_sales"}
    assert json.loads(chat["user_meta_data"]) == {"email": "user@example.com"}
    assert chat["status"] == "error" and json.loads(chat["error"]) == {"type": "Partial", "message": "truncated"}
    assert json.loads(chat["sdk"])["name"] == "huggingplace-python"
    assert chat["timestamp"].endswith("Z")
    details = db.execute("SELECT * FROM prompt_details WHERE chat_id = ?", (chat["id"],)).fetchone()
    counts = ("token_count", "prompt_tokens", "completion_tokens", "total_tokens")
    assert tuple(details[c] for c in counts) == (15, 10, 5, 15)
    assert details["response_time"] == 1234.5
    assert json.loads(details["metadata"]) == {"recommendationId": "r-9", "sessionId": session_id}
    step = db.execute("SELECT * FROM steps WHERE chat_id = ?", (chat["id"],)).fetchone()
    assert (step["step_name"], step["type"], step["status"]) == ("retrieve", "retrieval", "ok")
    assert step["time_ms"] >= 0 and json.loads(step["data"]) == {"metadata": {"k": 3}}


def test_nested_steps_round_trip(collector: LiveCollector, session_id: str) -> None:
    with HuggingPlace(**collector.options()) as hp:
        s = hp.start_session(session_id)
        with s.step("generate", type="llm"):
            with s.step("call-model"):
                with s.step("tokenize"):
                    pass
            with pytest.raises(ZeroDivisionError):
                with s.step("post-process"):
                    1 / 0  # noqa: B018
        result = s.log(user_prompt="q", response="a")
    record = _get(collector, f"/v2/records/{result.event_id}").json()
    (generate,) = record["step_data"]
    assert [c["step_name"] for c in generate["steps"]] == ["call-model", "post-process"]
    assert generate["steps"][0]["steps"][0]["step_name"] == "tokenize"
    assert generate["steps"][1]["status"] == "error"
    assert generate["steps"][1]["error"]["type"] == "ZeroDivisionError"
    db = collector.db()
    rows = db.execute(
        "SELECT s.step_name, p.step_name AS parent FROM steps s LEFT JOIN steps p ON s.parent_id = p.id "
        "JOIN chat c ON s.chat_id = c.id WHERE c.event_id = ? ORDER BY s.id", (result.event_id,)
    ).fetchall()
    assert [(r["step_name"], r["parent"]) for r in rows] == [
        ("generate", None), ("call-model", "generate"), ("tokenize", "call-model"), ("post-process", "generate"),
    ]


def test_a_repeated_event_id_is_stored_once(collector: LiveCollector) -> None:
    event_id = secrets.token_hex(16)
    with HuggingPlace(**collector.options()) as hp:
        first = hp.log(user_prompt="q", response="a", event_id=event_id)
        second = hp.log(user_prompt="q", response="a", event_id=event_id)
    assert first.body["message"] == "stored" and second.body["message"] == "already stored"
    count = collector.db().execute("SELECT COUNT(*) FROM chat WHERE event_id = ?", (event_id,)).fetchone()[0]
    assert count == 1


def test_async_client_end_to_end(collector: LiveCollector, session_id: str) -> None:
    async def main() -> list[str]:
        async with AsyncHuggingPlace(**collector.options()) as hp:
            async with hp.start_session(session_id) as s:
                ids = []
                for i in range(3):
                    with s.step("generate"):
                        await asyncio.sleep(0)
                    ids.append((await s.log(user_prompt=f"q{i}", response=f"a{i}")).event_id)
                return ids

    ids = asyncio.run(main())
    records = _get(collector, f"/v2/sessions/{session_id}").json()["records"]
    assert [r["event_id"] for r in records] == ids
    assert [r["user_prompt"] for r in records] == ["q0", "q1", "q2"]


def test_org_isolation(collector: LiveCollector, session_id: str) -> None:
    """A key for org A cannot write as org B (403) nor read org B's records."""
    with HuggingPlace(**collector.options(org_id="org-b")) as hp:
        with pytest.raises(PermissionDeniedError, match="org_id"):
            hp.log(user_prompt="q", response="a")
    with HuggingPlace(**collector.options(api_key=collector.other_key, org_id="org-b")) as hp:
        result = hp.log(user_prompt="secret of b", response="a", session_id=session_id)
    assert _get(collector, f"/v2/records/{result.event_id}").status_code == 404
    assert _get(collector, f"/v2/records/{result.event_id}", key=collector.other_key).json()["user_prompt"] == (
        "secret of b"
    )
    sessions_a = _get(collector, "/v2/sessions?limit=200").json()["sessions"]
    assert session_id not in [s["session_id"] for s in sessions_a]


def test_error_statuses_reach_the_client_as_exceptions(collector: LiveCollector) -> None:
    with HuggingPlace(**collector.options(api_key="hp_wrong_key")) as hp:
        with pytest.raises(AuthenticationError):
            hp.log(user_prompt="q", response="a")
    with HuggingPlace(**collector.options(base_url=collector.url + "/nowhere")) as hp:
        with pytest.raises(NotFoundError, match="nowhere"):
            hp.log(user_prompt="q", response="a")
    with HuggingPlace(**collector.options(max_field_chars=10**9, max_record_bytes=10**10)) as hp:
        with pytest.raises(BadRequestError, match="limit is 1024") as info:
            hp.log(user_prompt="q", response="a", llm_model="m" * 2000)
        assert info.value.status_code == 422
        big = "x" * (LIMITS["body_bytes"] + 10)
        with pytest.raises(RequestTooLargeError) as too_large:
            hp.log(user_prompt=big, response="a")
        assert too_large.value.status_code == 413 and too_large.value.size > LIMITS["body_bytes"]


def test_collector_refusals_name_the_problem(collector: LiveCollector) -> None:
    assert _post(collector, b"{not json").status_code == 400
    assert "JSON" in _post(collector, b"{not json").json()["error"]
    bad = _post(collector, {"user_prompt": "q", "ai_response": "a", "org_id": "org-a", "token_count": "many"})
    assert bad.status_code == 422 and bad.json()["field"] == "token_count"
    missing = _post(collector, {"ai_response": "a", "org_id": "org-a"})
    assert missing.status_code == 422 and missing.json()["field"] == "user_prompt"
    no_auth = requests.post(collector.url + ROUTE, json={}, timeout=10)
    assert no_auth.status_code == 401 and "Authorization" in no_auth.json()["error"]
    wrong = _post(collector, {"user_prompt": "q"}, key="hp_not_a_key_123")
    assert wrong.status_code == 401 and "hp_not_a_key_123" not in wrong.text
    mismatch = _post(collector, {"user_prompt": "q", "ai_response": "a", "org_id": "org-a"},
                     **{"Idempotency-Key": "b" * 32, "X-Other": "1"})
    assert mismatch.status_code == 200 and mismatch.json()["event_id"] == "b" * 32


def test_public_sdk_payload_is_accepted(collector: LiveCollector) -> None:
    """What Huggingplace/sdk's Python log() sends: integer org_id, nulls, no event_id, extras, a
    "0 min 1.23 sec" response_time; answered 200 (their only success status) and stored."""
    org_key = "hp_public_sdk_key_1234"
    from huggingplace.collector._store import Store

    store = Store(collector.db_path)
    store.add_key(org_key, "7")
    store.close()
    body = {
        "user_prompt": "hi", "ai_response": "hello", "response": "hello", "llm_model": None, "token_count": 18,
        "response_time": "0 min 1.23 sec", "session_id": "pub-1", "metaData": {"feature": "chat"},
        "user_meta_data": {"uid": "u1"}, "userMetadata": {"uid": "u1"}, "org_id": 7, "mode": "dev",
        "step_data": [{"step_name": "retrieve", "time_ms": 12, "llm_model": None, "token": 3}],
        "custom_key": {"kept": True},
    }
    answer = _post(collector, body, key=org_key)
    assert answer.status_code == 200
    record = _get(collector, f"/v2/records/{answer.json()['event_id']}", key=org_key).json()
    assert record["response_time"] == 1230.0
    assert record["llm_model"] is None and record["org_id"] == "7"
    assert record["extras"] == {"response": "hello", "userMetadata": {"uid": "u1"}, "custom_key": {"kept": True}}
    assert record["step_data"][0]["step_name"] == "retrieve" and record["step_data"][0]["token"] == 3


def test_read_routes_paginate_newest_first(collector: LiveCollector) -> None:
    prefix = "page-" + secrets.token_hex(3)
    with HuggingPlace(**collector.options(api_key=collector.other_key, org_id="org-b")) as hp:
        for i in range(5):
            hp.log(user_prompt="q", response="a", session_id=f"{prefix}-{i}",
                   timestamp=dt.datetime(2030, 1, 1, 0, 0, i, tzinfo=dt.timezone.utc))
    page1 = _get(collector, "/v2/sessions?limit=2", key=collector.other_key).json()
    page2 = _get(collector, f"/v2/sessions?limit=2&cursor={page1['next_cursor']}", key=collector.other_key).json()
    assert [s["session_id"] for s in page1["sessions"] + page2["sessions"]] == [
        f"{prefix}-{i}" for i in (4, 3, 2, 1)]
    assert _get(collector, "/v2/sessions?limit=5000").status_code == 400
    assert _get(collector, "/v2/sessions/nope-" + prefix).status_code == 404


def test_concurrent_writers_lose_nothing(collector: LiveCollector, session_id: str) -> None:
    """8 threads x 25 records through one client and its pooled connections: 200 rows."""
    errors: list[BaseException] = []
    with HuggingPlace(**collector.options()) as hp:

        def writer(n: int) -> None:
            try:
                for i in range(25):
                    hp.log(user_prompt=f"{n}-{i}", response="a", session_id=session_id)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    count = collector.db().execute("SELECT COUNT(*) FROM chat WHERE session_id = ?", (session_id,)).fetchone()[0]
    assert count == 200


def test_batch_route_reports_per_record_results(collector: LiveCollector) -> None:
    good = {"user_prompt": "q", "ai_response": "a", "org_id": "org-a", "event_id": secrets.token_hex(16)}
    bad = {"user_prompt": "q", "ai_response": 5, "org_id": "org-a"}
    answer = requests.post(
        collector.url + ROUTE + "/batch", json={"records": [good, bad, good]},
        headers={"Authorization": f"Bearer {collector.key}"}, timeout=10,
    )
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [200, 422, 200]
    assert results[0]["message"] == "stored" and results[2]["message"] == "already stored"
    assert results[1]["field"] == "ai_response"
