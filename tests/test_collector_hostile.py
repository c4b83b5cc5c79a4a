"""The collector never answers 5xx for what a client sent: every malformed or hostile body gets
a 4xx with the contract's JSON error, and the next request is served. The SDK refuses what the
collector refuses, naming the same field."""

from __future__ import annotations

import gzip
import json
import sqlite3
from typing import Any

import pytest
import requests

from huggingplace import HuggingPlace, MemoryTransport, ValidationError
from huggingplace._config import ROUTE

from .conftest import KEY, LiveCollector


def post(collector: LiveCollector, body: bytes, path: str = ROUTE, **headers: str) -> requests.Response:
    return requests.post(collector.url + path, data=body, timeout=10, headers={
        "Authorization": f"Bearer {KEY}", "Content-Type": "application/json", **headers})


def good(**extra: Any) -> dict[str, Any]:
    return {"user_prompt": "q", "ai_response": "a", "org_id": "org-a", **extra}


def raw(**extra: Any) -> bytes:
    return json.dumps(good(**extra)).encode()


HOSTILE = {
    "nested 10,000 deep": b'{"user_prompt":"q","ai_response":"a","org_id":"org-a","metaData":' + b'{"a":' * 10_000
    + b"1" + b"}" * 10_001,
    "an integer past 64 bits": raw(token_count=2**64),
    "10**400 as an integer": raw()[:-1] + b',"token_count":1' + b"0" * 400 + b"}",
    "1e400 as a response time": raw()[:-1] + b',"response_time":1e400}',
    "a dict where a step's type belongs": raw(step_data=[{"step_name": "s", "type": {"x": 1}}]),
    "a step count past 64 bits": raw(step_data=[{"step_name": "s", "input_tokens": 2**70}]),
    "not JSON": b"{not json",
    "not UTF-8": b'{"user_prompt":"\xff\xfe"}',
    "a JSON array": b"[1, 2]",
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_bodies_get_a_json_4xx_and_the_collector_stays_up(collector: LiveCollector, case: str) -> None:
    answer = post(collector, HOSTILE[case])
    assert 400 <= answer.status_code < 500, answer.text
    assert isinstance(answer.json()["error"], str)
    assert post(collector, raw(event_id="e" * 32)).status_code == 200  # the next request is served


def test_a_gzip_body_that_does_not_unzip_is_a_400(collector: LiveCollector) -> None:
    answer = post(collector, b"\x1f\x8b not gzip at all", **{"Content-Encoding": "gzip"})
    assert answer.status_code == 400 and "error" in answer.json()
    zipped = post(collector, gzip.compress(raw()), **{"Content-Encoding": "gzip"})
    assert zipped.status_code == 200


def test_a_non_ascii_digit_in_a_query_parameter_is_a_400(collector: LiveCollector) -> None:
    answer = requests.get(collector.url + "/v2/sessions", params={"limit": "²"}, timeout=10,
                          headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 400 and "limit" in answer.json()["error"]


def test_escaped_lone_surrogates_are_stored_as_the_sdk_would_send_them(collector: LiveCollector) -> None:
    body = raw(event_id="5" * 32)[:-1] + b',"user_meta_data":{"k":"\\udfff"}}'
    body = body.replace(b'"user_prompt": "q"', b'"user_prompt": "x\\ud800y"')
    assert post(collector, body).status_code == 200
    with collector.db() as db:
        row = db.execute("SELECT user_prompt, user_meta_data FROM chat WHERE event_id=?", ("5" * 32,)).fetchone()
    assert row["user_prompt"] == "x\ufffdy" and json.loads(row["user_meta_data"]) == {"k": "\ufffd"}


def test_one_bad_record_never_sinks_its_batch(collector: LiveCollector) -> None:
    records = [good(event_id=f"{i:032x}", user_prompt=f"batch-{i}") for i in range(5)]
    records[2]["token_count"] = 2**63  # one past the limit
    records[3]["step_data"] = [{"step_name": "s", "type": {"not": "a string"}}]
    records[4]["step_data"] = [{"step_name": "s", "status": "completed"}]  # the public SDKs' word: fine
    answer = post(collector, json.dumps({"records": records}).encode(), path=ROUTE + "/batch")
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [200, 200, 422, 422, 200]
    assert results[2]["field"] == "token_count" and results[3]["field"] == "step_data[0].type"
    with collector.db() as db:
        stored = {r[0] for r in db.execute("SELECT event_id FROM chat WHERE user_prompt LIKE 'batch-%'")}
    assert stored == {f"{i:032x}" for i in (0, 1, 4)}


@pytest.mark.parametrize("fields,field", [
    ({"token_count": 2**63}, "token_count"),
    ({"step_data": [{"step_name": "s", "type": {"x": 1}}]}, "step_data[0].type"),
    ({"step_data": [{"step_name": "s", "steps": [{"step_name": "t", "input_tokens": -1}]}]},
     "step_data[0].steps[0].input_tokens"),
])
def test_the_sdk_refuses_what_the_collector_refuses_naming_the_same_field(
    collector: LiveCollector, fields: dict[str, Any], field: str
) -> None:
    hp = HuggingPlace(api_key=KEY, org_id="org-a", base_url=collector.url, transport=MemoryTransport())
    with pytest.raises(ValidationError) as caught:
        hp.log(user_prompt="q", response="a", **fields)
    assert caught.value.field == field
    wire = good(**fields)
    answer = post(collector, json.dumps(wire).encode())
    assert answer.status_code == 422 and answer.json()["field"] == field


def test_a_step_status_is_any_string_on_both_sides(collector: LiveCollector) -> None:
    hp = HuggingPlace(api_key=KEY, org_id="org-a", base_url=collector.url)
    result = hp.log(user_prompt="status-words", response="a", step_data=[
        {"step_name": "a", "status": "completed"}, {"step_name": "b", "status": "failed"},
        {"step_name": "c", "status": "Skipped"}])
    hp.close()
    with collector.db() as db:
        rows = db.execute("SELECT s.status FROM steps s JOIN chat c ON c.id = s.chat_id WHERE c.event_id=? "
                          "ORDER BY s.position", (result.event_id,)).fetchall()
    assert [r[0] for r in rows] == ["completed", "failed", "Skipped"]  # kept as sent
    from huggingplace._fields import step_status_class

    assert [step_status_class(r[0]) for r in rows] == ["ok", "error", "unknown"]
    assert sqlite3.sqlite_version


def test_a_client_that_dribbles_its_headers_is_cut_off(collector: LiveCollector,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """One byte every 0.2 s: the connection is closed once the head deadline passes, and the
    collector serves the next request."""
    import socket
    import time

    from huggingplace.collector._ingest import LIMITS

    monkeypatch.setitem(LIMITS, "head_seconds", 1)
    host, port = collector.url.removeprefix("http://").split(":")
    head = f"POST {ROUTE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Length: 2\r\n\r\n{{}}"
    start = time.monotonic()
    closed_after = None
    with socket.create_connection((host, int(port)), timeout=10) as s:
        for byte in head.encode():
            try:
                s.sendall(bytes([byte]))
                time.sleep(0.2)
                s.setblocking(False)
                try:
                    if s.recv(1) == b"":
                        closed_after = time.monotonic() - start
                        break
                except BlockingIOError:
                    pass
                finally:
                    s.setblocking(True)
            except OSError:
                closed_after = time.monotonic() - start
                break
    assert closed_after is not None and closed_after < 5  # allow-timing: cut off near its 1 s deadline
    assert post(collector, raw(event_id="d" * 32)).status_code == 200
