"""Sessions, timed steps and traces in both clients."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import pytest

from huggingplace import AsyncHuggingPlace, HuggingPlace, MemoryTransport, ValidationError

from .conftest import KEY


def _sync() -> tuple[HuggingPlace, MemoryTransport]:
    t = MemoryTransport()
    return HuggingPlace(api_key=KEY, org_id="o", base_url="http://127.0.0.1:9", transport=t), t


def _async() -> tuple[AsyncHuggingPlace, MemoryTransport]:
    t = MemoryTransport()
    return AsyncHuggingPlace(api_key=KEY, org_id="o", base_url="http://127.0.0.1:9", transport=t), t


def test_session_defaults_steps_and_nesting() -> None:
    """The issue's session snippet: defaults merge, steps nest, time is measured."""
    hp, t = _sync()
    with hp.start_session("session-123", metadata={"app": "sql-bot"}) as s:
        with s.step("retrieve", type="retrieval") as st:
            st.update(metadata={"k": 3})
        with s.step("generate", type="llm"):
            with s.step("call-model"):
                pass
        s.log(user_prompt="q", response="a", llm_model="gpt-4o", metadata={"turn": 1})
    body = t.payloads[0]
    assert body["session_id"] == "session-123"
    assert body["metaData"] == {"app": "sql-bot", "turn": 1, "sessionId": "session-123"}
    steps = body["step_data"]
    assert [s["step_name"] for s in steps] == ["retrieve", "generate"]
    assert steps[0]["type"] == "retrieval" and steps[0]["metadata"] == {"k": 3}
    assert [c["step_name"] for c in steps[1]["steps"]] == ["call-model"]
    assert steps[1]["time_ms"] >= steps[1]["steps"][0]["time_ms"]
    assert body["response_time"] >= steps[0]["time_ms"] + steps[1]["time_ms"] - 0.01


def _timed_block(hp: Any) -> None:
    with hp.start_session("s-1") as s:
        with s.step("plain", type="retrieval"):  # a timer alone: captured as four values
            time.sleep(0.02)
        with s.step("detailed", llm_model="gpt-4o") as st:  # fields of its own: captured whole
            st.update(metadata={"k": [1, 2]}, input_tokens=3)
        with s.step("parent"):
            with s.step("child", type="tool"):
                pass
        with pytest.raises(KeyError):
            with s.step("failing"):
                raise KeyError("gone")
        s.log(user_prompt="q", response="a")


def _without_times(step: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in step.items() if k not in ("started_at", "ended_at", "time_ms")}
    if "steps" in out:
        out["steps"] = [_without_times(child) for child in out["steps"]]
    return out


def test_steps_read_the_same_in_the_background_as_in_the_foreground(tmp_path: Any) -> None:
    """A background session's timers travel as four values each when that is all they hold, in
    full otherwise; either way the body's steps are the foreground's, and their UTC times,
    from one clock reading per record, agree with their own durations and with each other."""
    fg, fg_t = _sync()
    _timed_block(fg)
    bg_t = MemoryTransport()
    bg = HuggingPlace(api_key=KEY, org_id="o", base_url="http://127.0.0.1:9", transport=bg_t, background=True,
                      spool_dir=str(tmp_path))
    _timed_block(bg)
    assert bg.flush(10).complete and bg.stats().sent == 1
    bg.close()
    here, there = fg_t.payloads[0]["step_data"], bg_t.payloads[0]["step_data"]
    assert [_without_times(s) for s in there] == [_without_times(s) for s in here]
    assert [s["step_name"] for s in there] == ["plain", "detailed", "parent", "failing"]
    assert there[1]["metadata"] == {"k": [1, 2]} and there[3]["status"] == "error"
    def at(step: dict[str, Any], key: str) -> datetime:
        return datetime.fromisoformat(step[key].replace("Z", "+00:00"))  # milliseconds, on the wire

    for steps in (here, there):
        assert steps[0]["time_ms"] >= 20
        for step in [*steps, steps[2]["steps"][0]]:
            elapsed = (at(step, "ended_at") - at(step, "started_at")).total_seconds() * 1000
            assert elapsed == pytest.approx(step["time_ms"], abs=1.01)
        starts = [at(s, "started_at") for s in steps]
        assert starts == sorted(starts) and starts[2] <= at(steps[2]["steps"][0], "started_at")
        assert at(steps[0], "ended_at") <= starts[1]


def test_each_log_carries_only_the_steps_since_the_previous_log() -> None:
    hp, t = _sync()
    s = hp.start_session("s")
    with s.step("a"):
        pass
    s.log(user_prompt="1", response="x")
    with s.step("b"):
        pass
    s.log(user_prompt="2", response="y")
    s.log(user_prompt="3", response="z")
    assert [[st["step_name"] for st in p.get("step_data", [])] for p in t.payloads] == [["a"], ["b"], []]


def test_failing_step_is_recorded_and_the_exception_propagates() -> None:
    hp, t = _sync()
    with hp.start_session("s") as s:
        with pytest.raises(KeyError) as info:
            with s.step("lookup", type="tool"):
                raise KeyError("missing")
        s.log(user_prompt="q", response="")
    assert str(info.value) == "'missing'"
    step = t.payloads[0]["step_data"][0]
    assert step["status"] == "error"
    assert step["error"] == {"type": "KeyError", "message": "'missing'"}


def test_log_inside_an_open_step_leaves_it_for_the_next_record() -> None:
    hp, t = _sync()
    s = hp.start_session("s")
    with s.step("outer"):
        s.log(user_prompt="1", response="x")
    s.log(user_prompt="2", response="y")
    assert "step_data" not in t.payloads[0]
    assert t.payloads[1]["step_data"][0]["step_name"] == "outer"


def test_steps_never_logged_are_counted_and_warned(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing is lost silently: timed steps no log() carried show up in stats and the log."""
    hp, _ = _sync()
    with hp.start_session("s") as s:
        with s.step("orphan"):
            pass
    assert hp.stats().dropped == {"unlogged_steps": 1}
    assert "orphan" in caplog.text


def test_log_inside_a_session_block_carries_the_session() -> None:
    hp, t = _sync()
    with hp.start_session("chat-9", user_id="u-1"):
        hp.log(user_prompt="q", response="a")
    hp.log(user_prompt="q", response="a")
    assert t.payloads[0]["session_id"] == "chat-9" and t.payloads[0]["user_id"] == "u-1"
    assert "session_id" not in t.payloads[1]


def test_session_defaults_are_validated_up_front() -> None:
    hp, _ = _sync()
    with pytest.raises(ValidationError, match="user_idd"):
        hp.start_session("s", user_idd="u")
    with pytest.raises(ValidationError, match="session_id"):
        hp.start_session("")


def test_step_update_validates_fields() -> None:
    hp, _ = _sync()
    s = hp.start_session("s")
    with pytest.raises(ValidationError, match="input_tokens"):
        with s.step("x") as st:
            st.update(input_tokens=-3)
    with pytest.raises(ValidationError, match="did you mean `llm_model`"):
        s.step("x", llm_modle="m")


def test_a_timed_step_is_a_step_built_by_its_constructor() -> None:
    """``Step.timed`` skips the validators on the request's path: it must still set every field
    (a new field without a default there would be missing), and setting a field stays checked."""
    import attrs

    from huggingplace._models import Step

    assert attrs.asdict(Step.timed("retrieve")) == attrs.asdict(Step(name="retrieve"))
    step = Step.timed("retrieve")
    for name, bad in [("type", 3), ("status", "fine"), ("token", True), ("output_tokens", -1), ("llm_model", b"m")]:
        with pytest.raises((TypeError, ValueError), match=name):
            step.set(name, bad)
    step.set("status", "error")
    assert step.status == "error"
    hp, _ = _sync()
    with pytest.raises(ValidationError, match="`status`"):
        hp.start_session("s").step("x", status="maybe")
    with pytest.raises(ValidationError, match="`type`"):
        hp.start_session("s").step("x", type=7)


def test_trace_block() -> None:
    """The issue's trace snippet: one record when the block ends, response_time its duration."""
    hp, t = _sync()
    with hp.trace("answer", user_prompt="q") as tr:
        with tr.step("retrieve"):
            pass
        tr.update(response="a", llm_model="gpt-4o")
    body = t.payloads[0]
    assert body["ai_response"] == "a" and body["llm_model"] == "gpt-4o" and body["status"] == "ok"
    assert body["metaData"]["trace_name"] == "answer"
    assert body["step_data"][0]["step_name"] == "retrieve"
    assert body["response_time"] >= body["step_data"][0]["time_ms"]


def test_trace_block_that_raises_logs_an_error_record() -> None:
    hp, t = _sync()
    with pytest.raises(RuntimeError, match="model down"):
        with hp.trace("answer", user_prompt="q"):
            raise RuntimeError("model down")
    body = t.payloads[0]
    assert body["status"] == "error" and body["ai_response"] == ""
    assert body["error"] == {"type": "RuntimeError", "message": "model down"}


def test_trace_decorator_takes_prompt_and_response() -> None:
    hp, t = _sync()

    @hp.trace("answer")
    def answer(question: str, temperature: float = 0.0) -> str:
        return f"answer to {question}"

    assert answer("why?") == "answer to why?"
    assert answer.__name__ == "answer"
    body = t.payloads[0]
    assert (body["user_prompt"], body["ai_response"]) == ("why?", "answer to why?")


def test_trace_decorator_prompt_arg_and_non_str_result() -> None:
    hp, t = _sync()

    @hp.trace("lookup", prompt_arg="query")
    def lookup(user: str, query: str) -> dict[str, Any]:
        return {"rows": 2}

    lookup("u-1", query="sales")
    assert t.payloads[0]["user_prompt"] == "sales"
    assert t.payloads[0]["ai_response"] == '{"rows": 2}'


def test_bare_trace_decorator() -> None:
    hp, t = _sync()

    @hp.trace
    def shout(text: str) -> str:
        return text.upper()

    assert shout("hi") == "HI"
    assert t.payloads[0]["metaData"]["trace_name"].endswith("shout")


def test_trace_decorator_error_is_logged_and_reraised() -> None:
    hp, t = _sync()

    @hp.trace("answer")
    def broken(question: str) -> str:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        broken("q")
    assert t.payloads[0]["status"] == "error"


def test_trace_delivery_failure_never_breaks_the_traced_call(caplog: pytest.LogCaptureFixture) -> None:
    """An endpoint outage is logged and counted; the decorated function still returns."""
    from huggingplace import APIConnectionError

    def refuse(request: Any) -> Any:
        raise APIConnectionError("refused")

    t = MemoryTransport(refuse)
    hp = HuggingPlace(api_key=KEY, org_id="o", transport=t, max_retries=0)

    @hp.trace("answer")
    def answer(q: str) -> str:
        return "fine"

    with caplog.at_level(logging.WARNING, logger="huggingplace"):
        assert answer("q") == "fine"
    assert hp.stats().failed == 1
    assert "was not stored" in caplog.text


def test_trace_without_a_prompt_raises_when_the_block_succeeds() -> None:
    hp, t = _sync()
    with pytest.raises(ValidationError, match="user_prompt"):
        with hp.trace("x"):
            pass
    assert t.requests == []


def test_trace_inside_a_session_carries_its_id() -> None:
    hp, t = _sync()
    with hp.start_session("s-7"):
        with hp.trace("answer", user_prompt="q"):
            pass
    assert t.payloads[0]["session_id"] == "s-7"


def test_sync_client_can_trace_a_coroutine_without_blocking() -> None:
    hp, t = _sync()

    @hp.trace("answer")
    async def answer(q: str) -> str:
        await asyncio.sleep(0)
        return "a"

    assert asyncio.run(answer("q")) == "a"
    assert t.payloads[0]["user_prompt"] == "q"


# ---- the async client -----------------------------------------------------------------------


def test_async_session_steps_and_trace() -> None:
    """The same snippets with AsyncHuggingPlace: async with, await s.log, @hp.trace on async def."""
    hp, t = _async()

    async def main() -> None:
        async with hp.start_session("a-1", metadata={"app": "x"}) as s:
            with s.step("retrieve", type="retrieval"):
                await asyncio.sleep(0)
            await s.log(user_prompt="q", response="a")

        async with hp.trace("answer", user_prompt="q2") as tr:
            with tr.step("generate"):
                pass
            tr.update(response="a2")

        @hp.trace("answer")
        async def answer(question: str) -> str:
            return "a3"

        assert await answer("q3") == "a3"

        @hp.trace
        async def bare(question: str) -> str:
            return "a4"

        await bare("q4")
        await hp.close()

    asyncio.run(main())
    bodies = t.payloads
    assert bodies[0]["session_id"] == "a-1" and bodies[0]["step_data"][0]["step_name"] == "retrieve"
    assert (bodies[1]["user_prompt"], bodies[1]["ai_response"]) == ("q2", "a2")
    assert (bodies[2]["user_prompt"], bodies[2]["ai_response"]) == ("q3", "a3")
    assert bodies[3]["ai_response"] == "a4"


def test_concurrent_tasks_nest_their_own_steps() -> None:
    """Steps opened in concurrent tasks of one session nest under their own parents."""
    hp, t = _async()

    async def branch(s: Any, name: str) -> None:
        with s.step(name):
            await asyncio.sleep(0.01)
            with s.step(name + "-child"):
                await asyncio.sleep(0.01)

    async def main() -> None:
        s = hp.start_session("c")
        await asyncio.gather(branch(s, "a"), branch(s, "b"))
        await s.log(user_prompt="q", response="r")

    asyncio.run(main())
    steps = {st["step_name"]: [c["step_name"] for c in st["steps"]] for st in t.payloads[0]["step_data"]}
    assert steps == {"a": ["a-child"], "b": ["b-child"]}


def test_async_client_refuses_sync_trace_use() -> None:
    hp, _ = _async()
    with pytest.raises(TypeError, match="async with"):
        with hp.trace("x", user_prompt="q"):
            pass
    with pytest.raises(TypeError, match="async def"):

        @hp.trace("x")
        def plain(q: str) -> str:
            return q


def test_trace_reads_a_provider_response_returned_by_the_function() -> None:
    """A decorated function returning a provider response logs its text, model and tokens."""
    hp, t = _sync()

    @hp.trace("gemini-call")
    def ask(question: str) -> dict[str, Any]:
        return {"candidates": [{"content": {"parts": [{"text": "Blue light scatters."}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 6, "candidatesTokenCount": 3, "totalTokenCount": 9},
                "modelVersion": "gemini-2.5-flash"}

    assert ask("Why is the sky blue?")["modelVersion"] == "gemini-2.5-flash"  # returned unchanged
    body = t.payloads[0]
    assert (body["ai_response"], body["llm_model"], body["token_count"]) == (
        "Blue light scatters.", "gemini-2.5-flash", 9)


def test_an_exception_whose_str_raises_still_propagates_from_a_step_and_is_logged() -> None:
    class Opaque(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    hp, t = _sync()
    with hp.start_session("s-opaque") as s:
        with pytest.raises(Opaque):
            with s.step("call"):
                raise Opaque()
        s.log(user_prompt="q", response="a")
    step = t.payloads[0]["step_data"][0]
    assert step["status"] == "error" and step["error"]["type"] == "Opaque"
    assert step["error"]["message"] == "<Opaque: str() failed>"
