"""What leaves the process under each privacy setting, checked on the payloads sent."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huggingplace import ConfigurationError, HuggingPlace, MemoryTransport, ValidationError
from huggingplace.collector import Collector

from .background_helpers import bg_client
from .conftest import KEY
from .servers import closed_port

OPENAI_KEY = "sk-proj-4fJ9a8Qw2LzX7bN1cV5mK3tR6yH0uE8iO2pA"


def client(**options: Any) -> tuple[HuggingPlace, MemoryTransport]:
    t = MemoryTransport()
    return HuggingPlace(api_key=KEY, org_id="o", base_url="http://127.0.0.1:9", transport=t, **options), t


def test_secrets_are_redacted_by_default_everywhere_content_goes() -> None:
    hp, t = client()
    with hp.start_session("s") as s:
        with s.step("tool", user_question=f"use {OPENAI_KEY}", metadata={"auth": f"Bearer {OPENAI_KEY}"}):
            pass
        s.log(user_prompt=f"my key is {OPENAI_KEY}", response=f"echo {OPENAI_KEY}",
              metadata={"nested": [{"k": OPENAI_KEY}]}, user_metadata={"token": OPENAI_KEY},
              error={"type": "E", "message": f"failed with {OPENAI_KEY}"})
    sent = t.requests[0].body.decode()
    assert OPENAI_KEY not in sent
    body = json.loads(sent)
    assert body["user_prompt"] == "my key is [REDACTED:openai_key]"
    assert body["metaData"]["nested"][0]["k"] == "[REDACTED:openai_key]"
    assert body["step_data"][0]["user_question"] == "use [REDACTED:openai_key]"
    assert body["error"]["message"] == "failed with [REDACTED:openai_key]"


def test_pii_policy_and_none() -> None:
    hp, t = client(redact="pii")
    hp.log(user_prompt="mail me at jane@example.com", response="ok", user_metadata={"phone": "+1 415-555-0132"})
    body = t.payloads[0]
    assert body["user_prompt"] == "mail me at [REDACTED:email]"
    assert body["user_meta_data"] == {"phone": "[REDACTED:phone]"}
    hp, t = client(redact="none")
    hp.log(user_prompt=OPENAI_KEY, response="a")
    assert t.payloads[0]["user_prompt"] == OPENAI_KEY


def test_redaction_callables_and_lists() -> None:
    hp, t = client(redact=["secrets", lambda s: s.replace("ACME", "[REDACTED:customer]")])
    hp.log(user_prompt=f"ACME uses {OPENAI_KEY}", response="a")
    assert t.payloads[0]["user_prompt"] == "[REDACTED:customer] uses [REDACTED:openai_key]"


def test_capture_content_false_keeps_only_measurements() -> None:
    hp, t = client(capture_content=False)
    with hp.start_session("s") as s:
        with s.step("gen", user_question="secret question", prompt_response="secret answer", input_tokens=5):
            pass
        s.log(user_prompt="secret question", response="secret answer", llm_model="gpt-4o",
              token_usage={"prompt_tokens": 5, "completion_tokens": 7})
    body = t.payloads[0]
    assert "secret" not in json.dumps(body)
    assert (body["user_prompt"], body["ai_response"]) == ("", "")
    assert body["llm_model"] == "gpt-4o" and body["token_count"] == 12 and body["response_time"] >= 0
    assert body["step_data"][0]["input_tokens"] == 5 and body["step_data"][0]["time_ms"] >= 0
    assert body["metaData"]["content_captured"] is False


def test_before_send_can_change_or_drop() -> None:
    def hook(record: dict[str, Any]) -> dict[str, Any] | None:
        if record["user_prompt"] == "drop me":
            return None
        record["metaData"] = {**record.get("metaData", {}), "reviewed": True}
        return record

    hp, t = client(before_send=hook)
    kept = hp.log(user_prompt="keep me", response="a")
    dropped = hp.log(user_prompt="drop me", response="a")
    assert kept.status_code == 200 and dropped.dropped == "before_send" and dropped.status_code is None
    assert [p["user_prompt"] for p in t.payloads] == ["keep me"]
    assert t.payloads[0]["metaData"]["reviewed"] is True
    assert hp.stats().dropped == {"before_send": 1}


@pytest.mark.parametrize("option", ["redact", "before_send"])
def test_a_raising_hook_fails_closed(option: str, caplog: pytest.LogCaptureFixture) -> None:
    """Content is replaced, timing and tokens are kept, the error is counted and logged once."""

    def boom(value: Any) -> Any:
        raise RuntimeError("hook bug")

    hp, t = client(**{option: boom})
    for _ in range(2):
        hp.log(user_prompt="private", response="private", token_count=9, response_time=12.5, session_id="s",
               user_metadata={"email": "x"}, metadata={"k": "private"})
    body = t.payloads[0]
    assert "private" not in json.dumps(body)
    assert body["user_prompt"] == body["ai_response"] == "[REDACTED:redaction_failed]"
    assert body["token_count"] == 9 and body["response_time"] == 12.5 and body["session_id"] == "s"
    assert body["metaData"] == {"redaction_failed": "redaction" if option == "redact" else "before_send",
                                "sessionId": "s"}
    assert hp.stats().redaction_failures == 2
    assert caplog.text.count("raised RuntimeError") == 1  # logged once, by type
    assert "hook bug" not in caplog.text  # an exception's message may quote what it was given


def test_background_redaction_runs_on_the_worker(tmp_path: Path) -> None:
    threads: list[str] = []

    def spy(text: str) -> str:
        threads.append(threading.current_thread().name)
        return text

    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool", redact=spy)
        hp.log(user_prompt="q", response="a")
        hp.flush(10)
        hp.close()
    assert threads and set(threads) == {"huggingplace-worker"}


def test_sampling_keeps_or_drops_whole_sessions() -> None:
    hp, t = client(sample_rate=0.5)
    for n in range(200):
        for turn in range(3):
            hp.log(user_prompt=f"{n}-{turn}", response="a", session_id=f"session-{n}")
    kept_sessions: dict[str, int] = {}
    for p in t.payloads:
        kept_sessions[p["session_id"]] = kept_sessions.get(p["session_id"], 0) + 1
    assert set(kept_sessions.values()) == {3}  # all of a session or none
    assert 60 <= len(kept_sessions) <= 140
    assert hp.stats().dropped["sampled"] == 600 - len(t.payloads)
    again, t2 = client(sample_rate=0.5)
    for n in range(200):
        again.log(user_prompt="x", response="a", session_id=f"session-{n}")
    assert {p["session_id"] for p in t2.payloads} == set(kept_sessions)  # deterministic across processes


def test_sample_rate_zero_drops_everything_counted() -> None:
    hp, t = client(sample_rate=0)
    result = hp.log(user_prompt="q", response="a")
    assert result.dropped == "sampled" and t.requests == [] and hp.stats().dropped == {"sampled": 1}


def test_background_sampling_decides_in_log_as_the_foreground_does(tmp_path: Path) -> None:
    """Background log() validates later, but samples at once: ``dropped="sampled"`` comes back
    from log(), and the same sessions are kept as in the foreground."""
    fg, t = client(sample_rate=0.5)
    bg = bg_client(f"http://127.0.0.1:{closed_port()}", tmp_path / "spool", sample_rate=0.5)
    results = {}
    for n in range(100):
        fg.log(user_prompt="x", response="a", session_id=f"session-{n}")
        results[f"session-{n}"] = bg.log(user_prompt="x", response="a", session_id=f"session-{n}")
    kept = {p["session_id"] for p in t.payloads}
    assert {s for s, r in results.items() if r.queued} == kept
    assert all(r.dropped == "sampled" for s, r in results.items() if s not in kept)
    assert bg.stats().dropped["sampled"] == 100 - len(kept)
    bg.close(0.5)


def test_disabled_client_is_a_silent_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUGGINGPLACE_ENABLED", "false")
    t = MemoryTransport()
    hp = HuggingPlace(transport=t)  # no key, no org: fine when disabled
    result = hp.log(user_prompt="q", response="a")
    with hp.start_session("s") as s:
        with s.step("x"):
            pass
        s.log(user_prompt="q", response="a")

    @hp.trace("t")
    def f(q: str) -> str:
        return "r"

    assert f("q") == "r"
    assert result.dropped == "disabled" and t.requests == []
    assert HuggingPlace(enabled=True, api_key=KEY, org_id="o", transport=t).log(user_prompt="q", response="a")
    assert len(t.requests) == 1  # the explicit argument wins over the environment


def test_privacy_options_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUGGINGPLACE_REDACT", "pii")
    monkeypatch.setenv("HUGGINGPLACE_CAPTURE_CONTENT", "false")
    hp, t = client()
    hp.log(user_prompt="jane@example.com", response="a", metadata={"e": "jane@example.com"})
    body = t.payloads[0]
    assert body["user_prompt"] == "" and body["metaData"]["e"] == "[REDACTED:email]"
    hp2, t2 = client(capture_content=True, redact="none")
    hp2.log(user_prompt="jane@example.com", response="a")
    assert t2.payloads[0]["user_prompt"] == "jane@example.com"
    monkeypatch.setenv("HUGGINGPLACE_SAMPLE_RATE", "2")
    with pytest.raises(ConfigurationError, match="HUGGINGPLACE_SAMPLE_RATE"):
        client()


def test_oversized_fields_are_truncated_to_valid_json() -> None:
    hp, t = client()
    hp.log(user_prompt="q", response="x" * 1_048_576, metadata={"keep": 1})
    body = json.loads(t.requests[0].body)
    assert len(body["ai_response"]) == 256 * 1024 and body["ai_response"].endswith("…[truncated]")
    assert body["metaData"]["truncated"] == {"ai_response": 1_048_576} and body["metaData"]["keep"] == 1


def test_whole_record_cap_and_depth_cap() -> None:
    hp, t = client(max_record_bytes=50_000, max_metadata_depth=3)
    deep: Any = "leaf"
    for _ in range(10):
        deep = {"d": deep}
    hp.log(user_prompt="q" * 40_000, response="a" * 40_000, session_id="s", metadata={"deep": deep})
    raw = t.requests[0].body
    body = json.loads(raw)
    assert len(raw) <= 50_000
    assert body["metaData"]["sessionId"] == "s" and body["metaData"]["truncated"]
    hp.log(user_prompt="q", response="a", metadata={"deep": deep})
    meta = t.payloads[1]["metaData"]
    assert meta["deep"]["d"]["d"] == "<max depth>"


def test_one_huge_record_never_sinks_a_batch(tmp_path: Path) -> None:
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool")
        ids = [hp.log(user_prompt="q", response="a").event_id for _ in range(5)]
        ids.append(hp.log(user_prompt="q", response="z" * 20_000_000).event_id)
        ids += [hp.log(user_prompt="q", response="a").event_id for _ in range(5)]
        hp.flush(20)
        hp.close()
        import sqlite3

        with sqlite3.connect(c.db_path) as conn:
            stored = {r[0] for r in conn.execute("SELECT event_id FROM chat")}
    assert stored == set(ids)


# ---- fuzzing log() ------------------------------------------------------------------------------

anything = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), st.binary(max_size=10),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.floats()), max_size=3),
)
field_names = st.sampled_from([
    "user_prompt", "userPrompt", "response", "aiResponse", "metadata", "metaData", "user_metadata", "userMetadata",
    "user_id", "session_id", "file_name", "llm_model", "token_count", "token_usage", "response_time", "step_data",
    "user_uuid", "org_uuid", "user_roles", "llm_model2", "mapping_table", "message_id", "status", "error",
    "event_id", "timestamp", "user_promt", "respones", "x",
])
kwargs_strategy = st.dictionaries(field_names, anything, max_size=8)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kwargs_strategy)
def test_fuzz_sync_log_raises_only_validation_error(kwargs: dict[str, Any]) -> None:
    hp, t = client()
    try:
        result = hp.log(**kwargs)
    except ValidationError:
        assert t.requests == []
        return
    assert result.status_code == 200
    json.loads(t.requests[0].body)


@pytest.fixture(scope="module")
def background_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    hp = bg_client(f"http://127.0.0.1:{closed_port()}", tmp_path_factory.mktemp("fuzz") / "spool",
                   max_retries=0)
    yield hp
    hp.close(1.0)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(kwargs=kwargs_strategy)
def test_fuzz_background_log_never_raises(background_client: Any, kwargs: dict[str, Any]) -> None:
    result = background_client.log(**kwargs)
    assert result.queued or result.error


def test_fuzz_leaves_no_unhandled_worker_errors(background_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="huggingplace"):
        background_client.flush(2.0)
    assert "stopped unexpectedly" not in caplog.text
