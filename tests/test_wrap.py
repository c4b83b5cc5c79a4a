"""hp.wrap() with the real openai and anthropic libraries against a local fake provider,
checked end to end in the local collector's SQLite file."""

from __future__ import annotations

import asyncio
import gc
import json
import secrets
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from huggingplace import AsyncHuggingPlace, HuggingPlace

from .conftest import LiveCollector
from .fake_provider import FakeProvider
from .servers import closed_port


@pytest.fixture(autouse=True)
def collect_garbage() -> Iterator[None]:
    """Run finalizers (provider clients, abandoned streams) at the end of each test, not at a
    random later moment: CPython 3.11.7 raises "AST constructor recursion depth mismatch" when
    a finalizer runs while pytest compiles a module (fixed upstream in 3.11.8)."""
    yield
    gc.collect()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


def tag() -> str:
    return "t-" + secrets.token_hex(4)


def rows(c: LiveCollector, marker: str) -> list[dict[str, Any]]:
    db = c.db()
    found = db.execute(
        "SELECT * FROM chat LEFT JOIN prompt_details ON prompt_details.chat_id = chat.id "
        "WHERE user_prompt LIKE ? ORDER BY chat.id", (f"%{marker}%",)
    ).fetchall()
    out = []
    for r in found:
        d = dict(r)
        d["meta"] = json.loads(d["metadata"]) if d.get("metadata") else {}
        d["err"] = json.loads(d["error"]) if d.get("error") else None
        out.append(d)
    db.close()
    return out


def oa(fake: FakeProvider, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test-fake", base_url=fake.openai_url, max_retries=0, **kw)


def an(fake: FakeProvider) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=fake.anthropic_url, max_retries=0)


# ---- OpenAI ------------------------------------------------------------------------------------

def test_openai_chat_completion_is_logged(collector: LiveCollector, fake: FakeProvider) -> None:
    t = tag()
    with HuggingPlace(**collector.options()) as hp:
        client = hp.wrap(oa(fake))
        assert isinstance(client, openai.OpenAI)
        resp = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": t}],
            metadata={"team": "search"},
        )
    assert resp.choices[0].message.content.endswith(t)
    assert fake.requests[-1]["body"]["metadata"] == {"team": "search"}  # the provider's own argument, untouched
    (row,) = rows(collector, t)
    assert row["user_prompt"] == t and row["ai_response"] == resp.choices[0].message.content
    assert row["llm_model"] == "gpt-4o-2026-01-01" and row["token_count"] == 18
    assert (row["prompt_tokens"], row["completion_tokens"]) == (11, 7)
    assert row["meta"]["llm"]["cached_tokens"] == 3 and row["meta"]["llm"]["finish_reason"] == "stop"
    assert row["response_time"] > 0 and row["status"] == "ok"


def test_openai_stream_asks_for_usage_and_hides_it(collector: LiveCollector, fake: FakeProvider) -> None:
    t = tag()
    with HuggingPlace(**collector.options()) as hp:
        client = hp.wrap(oa(fake))
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": t}],
                                                     stream=True))
        assert fake.requests[-1]["body"]["stream_options"] == {"include_usage": True}
        assert all(c.choices for c in chunks)  # the usage chunk we asked for is not shown
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        asked = list(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": t}],
                                                    stream=True, stream_options={"include_usage": True}))
        assert asked[-1].usage is not None and not asked[-1].choices  # the caller asked: they see it
    first, second = rows(collector, t)
    assert first["ai_response"] == text and first["token_count"] == 18
    assert first["meta"]["llm"]["time_to_first_token_ms"] > 0
    assert second["token_count"] == 18


def test_openai_failure_is_logged_and_reraised_unchanged(collector: LiveCollector, fake: FakeProvider) -> None:
    t = tag()
    with HuggingPlace(**collector.options()) as hp:
        client = hp.wrap(oa(fake))
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="fail-400", messages=[{"role": "user", "content": t}])
    assert type(info.value) is openai.BadRequestError
    (row,) = rows(collector, t)
    assert row["status"] == "error" and row["err"]["type"] == "BadRequestError"
    assert row["ai_response"] == "" and row["llm_model"] == "fail-400"


def test_openai_responses_api(collector: LiveCollector, fake: FakeProvider) -> None:
    t = tag()
    with HuggingPlace(**collector.options()) as hp:
        client = hp.wrap(oa(fake))
        first = client.responses.create(model="gpt-4.1", input=t, instructions="be kind")
        events = list(client.responses.create(model="gpt-4.1", input=f"{t} again", stream=True,
                                              previous_response_id=first.id))
    assert events[-1].type == "response.completed"
    one, two = rows(collector, t)
    assert one["ai_response"] == first.output_text and one["token_count"] == 14
    assert one["meta"]["llm"]["reasoning_tokens"] == 2
    assert two["ai_response"] == events[-1].response.output_text
    assert one["session_id"] == two["session_id"]  # chained by previous_response_id


def test_async_openai_with_async_client(collector: LiveCollector, fake: FakeProvider) -> None:
    t = tag()

    async def main() -> str:
        async with AsyncHuggingPlace(**collector.options()) as hp:
            client = hp.wrap(openai.AsyncOpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
            resp = await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": t}])
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": t + " s"}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(model="fail-500", messages=[{"role": "user", "content": t}])
            await client.close()
            return resp.choices[0].message.content + "|" + text

    joined = asyncio.run(main())
    plain, streamed, failed = rows(collector, t)
    assert plain["ai_response"] + "|" + streamed["ai_response"] == joined
    assert streamed["token_count"] == 18 and failed["status"] == "error"


def test_azure_openai(collector: LiveCollector, fake: FakeProvider) -> None:
    t = tag()
    with HuggingPlace(**collector.options()) as hp:
        client = hp.wrap(openai.AzureOpenAI(api_key="az-test", api_version="2024-10-21", max_retries=0,
                                            azure_endpoint=f"http://127.0.0.1:{fake.port}"))
        assert isinstance(client, openai.AzureOpenAI)
        resp = client.chat.completions.create(model="my-gpt4o-deployment", messages=[{"role": "user", "content": t}])
    assert fake.requests[-1]["path"] == "/openai/deployments/my-gpt4o-deployment/chat/completions"
    (row,) = rows(collector, t)
    assert row["ai_response"] == resp.choices[0].message.content and row["token_count"] == 18


def test_untracked_parts_behave_as_the_original(collector: LiveCollector, fake: FakeProvider) -> None:
    t = tag()
    with HuggingPlace(**collector.options()) as hp:
        original = oa(fake)
        client = hp.wrap(original)
        assert client.api_key == original.api_key and client.models is not None
        assert type(client.models) is type(original.models)
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o",
                                                               messages=[{"role": "user", "content": t}])
        assert raw.http_response.status_code == 200 and raw.parse().choices[0].message.content.endswith(t)
        faster = client.with_options(timeout=5.0)
        assert isinstance(faster, openai.OpenAI)
        faster.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": t + " opts"}])
    assert [r["user_prompt"] for r in rows(collector, t)] == [t + " opts"]  # with_options stays tracked


def test_a_logging_failure_never_changes_the_call(fake: FakeProvider) -> None:
    """The endpoint is down: the wrapped call returns exactly what it would have."""
    with HuggingPlace(api_key="k" * 12, org_id="o", base_url=f"http://127.0.0.1:{closed_port()}",
                      max_retries=0) as hp:
        client = hp.wrap(oa(fake))
        resp = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        assert resp.choices[0].message.content.startswith("Hello")
        assert hp.stats().failed == 1


def test_a_bug_in_record_building_never_changes_the_call(
    monkeypatch: pytest.MonkeyPatch, collector: LiveCollector, fake: FakeProvider,
    internal_errors: list[tuple[str, BaseException]],
) -> None:
    from huggingplace import _wrap

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(_wrap._Call, "prompt", broken)
    with HuggingPlace(**collector.options()) as hp:
        client = hp.wrap(oa(fake))
        resp = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "y"}])
        assert resp.choices[0].message.content.startswith("Hello")
        assert hp.stats().dropped == {"wrapper_error": 1}
    assert [str(e) for _, e in internal_errors] == ["adapter bug"]  # seen by the suite, not by the app
    internal_errors.clear()


def test_abandoned_and_closed_streams_are_still_logged(collector: LiveCollector, fake: FakeProvider) -> None:
    t = tag()
    with HuggingPlace(**collector.options()) as hp:
        client = hp.wrap(oa(fake))
        stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": t + " a"}],
                                                stream=True)
        next(stream), next(stream)
        del stream
        gc.collect()
        closed = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": t + " b"}],
                                                stream=True)
        next(closed)
        closed.close()
    abandoned, closed_row = rows(collector, t)
    assert abandoned["ai_response"] == "Hello" and abandoned["status"] == "error"  # what arrived, cut short
    assert abandoned["err"]["type"] == "IncompleteStream" and abandoned["meta"]["llm"]["end"] == "abandoned"
    assert closed_row["user_prompt"] == t + " b" and closed_row["meta"]["llm"]["end"] == "closed"
    assert closed_row["meta"]["llm"]["completed"] is False and closed_row["meta"]["llm"]["chunks"] == 1


# ---- every kind of call, every field -------------------------------------------------------------

OPENAI_USAGE = {"prompt": 11, "completion": 7, "total": 18, "cached_tokens": 3, "reasoning_tokens": 2}
RESPONSES_USAGE = {"prompt": 9, "completion": 5, "total": 14, "reasoning_tokens": 2}
ANTHROPIC_USAGE = {"prompt": 17, "completion": 6, "total": 23, "cached_tokens": 4}  # 13 + 4 read from cache


def _openai_call(client: Any, kind: str, prompt: str) -> Any:
    """One call of ``kind`` on a (sync) wrapped client; returns what the caller saw."""
    messages = [{"role": "user", "content": prompt}]
    if kind == "chat":
        r = client.chat.completions.create(model="gpt-4o", messages=messages, user="u-1")
        return {"id": r.id, "model": r.model, "text": r.choices[0].message.content}
    if kind == "chat-stream":
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=messages, stream=True, user="u-1"))
        return {"id": chunks[0].id, "model": chunks[0].model,
                "text": "".join(c.choices[0].delta.content or "" for c in chunks)}
    if kind == "responses":
        r = client.responses.create(model="gpt-4.1", input=prompt, user="u-1")
        return {"id": r.id, "model": r.model, "text": r.output_text}
    events = list(client.responses.create(model="gpt-4.1", input=prompt, stream=True, user="u-1"))
    final = events[-1].response
    return {"id": final.id, "model": final.model, "text": final.output_text}


async def _openai_call_async(client: Any, kind: str, prompt: str) -> Any:
    messages = [{"role": "user", "content": prompt}]
    if kind == "chat":
        r = await client.chat.completions.create(model="gpt-4o", messages=messages, user="u-1")
        return {"id": r.id, "model": r.model, "text": r.choices[0].message.content}
    if kind == "chat-stream":
        stream = await client.chat.completions.create(model="gpt-4o", messages=messages, stream=True, user="u-1")
        chunks = [c async for c in stream]
        return {"id": chunks[0].id, "model": chunks[0].model,
                "text": "".join(c.choices[0].delta.content or "" for c in chunks)}
    if kind == "responses":
        r = await client.responses.create(model="gpt-4.1", input=prompt, user="u-1")
        return {"id": r.id, "model": r.model, "text": r.output_text}
    stream = await client.responses.create(model="gpt-4.1", input=prompt, stream=True, user="u-1")
    events = [e async for e in stream]
    final = events[-1].response
    return {"id": final.id, "model": final.model, "text": final.output_text}


def _anthropic_call(client: Any, kind: str, prompt: str) -> Any:
    args: dict[str, Any] = {"model": "claude-test", "max_tokens": 50, "messages": [{"role": "user", "content": prompt}],
                            "metadata": {"user_id": "u-1"}}
    if kind == "messages":
        m = client.messages.create(**args)
        return {"id": m.id, "model": m.model, "text": m.content[0].text}
    if kind == "messages-stream":
        events = list(client.messages.create(**args, stream=True))
        start = events[0].message
        return {"id": start.id, "model": start.model,
                "text": "".join(e.delta.text for e in events if e.type == "content_block_delta")}
    with client.messages.stream(**args) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    return {"id": final.id, "model": final.model, "text": text}


async def _anthropic_call_async(client: Any, kind: str, prompt: str) -> Any:
    args: dict[str, Any] = {"model": "claude-test", "max_tokens": 50, "messages": [{"role": "user", "content": prompt}],
                            "metadata": {"user_id": "u-1"}}
    if kind == "messages":
        m = await client.messages.create(**args)
        return {"id": m.id, "model": m.model, "text": m.content[0].text}
    if kind == "messages-stream":
        events = [e async for e in await client.messages.create(**args, stream=True)]
        start = events[0].message
        return {"id": start.id, "model": start.model,
                "text": "".join(e.delta.text for e in events if e.type == "content_block_delta")}
    async with client.messages.stream(**args) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    return {"id": final.id, "model": final.model, "text": text}


KINDS = {  # kind -> (provider, request model, finish reason, usage, streamed)
    "chat": ("openai", "gpt-4o", "stop", OPENAI_USAGE, False),
    "chat-stream": ("openai", "gpt-4o", "stop", OPENAI_USAGE, True),
    "responses": ("openai", "gpt-4.1", "completed", RESPONSES_USAGE, False),
    "responses-stream": ("openai", "gpt-4.1", "completed", RESPONSES_USAGE, True),
    "messages": ("anthropic", "claude-test", "end_turn", ANTHROPIC_USAGE, False),
    "messages-stream": ("anthropic", "claude-test", "end_turn", ANTHROPIC_USAGE, True),
    "messages-helper": ("anthropic", "claude-test", "end_turn", ANTHROPIC_USAGE, True),
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_of_call_records_every_field(collector: LiveCollector, fake: FakeProvider, kind: str,
                                                mode: str) -> None:
    """Provider, request and response model, tokens (cached, reasoning), finish reason, response
    id, time to first token for streams, total time: each checked against what the provider sent."""
    t = tag()
    provider, requested, finish, usage, streamed = KINDS[kind]
    anthropic_kind = provider == "anthropic"
    if mode == "sync":
        with HuggingPlace(**collector.options()) as hp:
            client = hp.wrap(an(fake) if anthropic_kind else oa(fake))
            seen = (_anthropic_call if anthropic_kind else _openai_call)(client, kind, t)
    else:
        async def main() -> Any:
            async with AsyncHuggingPlace(**collector.options()) as hp:
                raw = (anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=fake.anthropic_url, max_retries=0)
                       if anthropic_kind else openai.AsyncOpenAI(api_key="sk-test", base_url=fake.openai_url,
                                                                 max_retries=0))
                client = hp.wrap(raw)
                try:
                    return await (_anthropic_call_async if anthropic_kind else _openai_call_async)(client, kind, t)
                finally:
                    await client.close()

        seen = asyncio.run(main())
    (row,) = rows(collector, t)
    llm = row["meta"]["llm"]
    assert row["user_prompt"] == t and row["ai_response"] == seen["text"] and seen["text"]
    assert row["llm_model"] == seen["model"] != requested and llm["request_model"] == requested
    assert llm["provider"] == provider and llm["response_id"] == seen["id"] and llm["finish_reason"] == finish
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        usage["prompt"], usage["completion"], usage["total"])
    for extra in ("cached_tokens", "reasoning_tokens"):
        assert llm.get(extra) == usage.get(extra), extra
    assert row["status"] == "ok" and row["response_time"] > 0 and row["user_id"] == "u-1"
    if streamed:
        assert llm["stream"] is True and llm["completed"] is True and llm["end"] == "complete"
        assert 0 < llm["time_to_first_token_ms"] <= row["response_time"] and llm["chunks"] >= 3
    else:
        assert "stream" not in llm and "time_to_first_token_ms" not in llm
    assert row["session_id"].startswith("conv_") and row["meta"]["session_derived"] is True


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_tool_calls_are_recorded_streamed_or_not(collector: LiveCollector, fake: FakeProvider, provider: str,
                                                 mode: str) -> None:
    from .fake_provider import TOOL

    t = tag()
    messages = [{"role": "user", "content": t}]

    def call(client: Any, stream: bool) -> Any:
        if provider == "openai":
            return client.chat.completions.create(model="tool-call", messages=messages, stream=stream)
        return client.messages.create(model="tool-call", max_tokens=50, messages=messages, stream=stream)

    if mode == "sync":
        with HuggingPlace(**collector.options()) as hp:
            client = hp.wrap(an(fake) if provider == "anthropic" else oa(fake))
            call(client, False)
            list(call(client, True))
    else:
        async def main() -> None:
            async with AsyncHuggingPlace(**collector.options()) as hp:
                client = hp.wrap(anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=fake.anthropic_url)
                                 if provider == "anthropic" else
                                 openai.AsyncOpenAI(api_key="sk-test", base_url=fake.openai_url))
                await call(client, False)
                [c async for c in await call(client, True)]
                await client.close()

        asyncio.run(main())
    for row in rows(collector, t):
        (tool_call,) = row["meta"]["llm"]["tool_calls"]
        assert tool_call["name"] == TOOL["name"] and json.loads(tool_call["arguments"]) == TOOL["arguments"]
        assert row["meta"]["llm"]["finish_reason"] in ("tool_calls", "tool_use")
    assert len(rows(collector, t)) == 2


def test_tool_call_arguments_are_capped() -> None:
    from huggingplace.providers._base import TOOL_ARGUMENT_CHARS, Normalized, llm_metadata

    huge = "x" * (TOOL_ARGUMENT_CHARS + 500)
    llm = llm_metadata(Normalized(provider="openai", tool_calls=[{"id": "c", "name": "f", "arguments": huge}]))
    arguments = llm["tool_calls"][0]["arguments"]
    assert arguments.startswith("x" * TOOL_ARGUMENT_CHARS) and arguments.endswith("...[500 more characters]")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_stream_that_fails_midway_is_recorded_and_the_providers_error_raised(
    collector: LiveCollector, fake: FakeProvider, provider: str
) -> None:
    t = tag()
    received = []
    with HuggingPlace(**collector.options()) as hp:
        client = hp.wrap(an(fake) if provider == "anthropic" else oa(fake))
        if provider == "openai":
            stream = client.chat.completions.create(model="fail-midway", messages=[{"role": "user", "content": t}],
                                                    stream=True)
            expected: type[BaseException] = openai.APIError
        else:
            stream = client.messages.create(model="fail-midway", max_tokens=9, stream=True,
                                            messages=[{"role": "user", "content": t}])
            expected = anthropic.APIStatusError
        with pytest.raises(expected) as info:
            for chunk in stream:
                received.append(chunk)
    assert type(info.value).__module__.split(".")[0] == provider  # the provider's own exception
    (row,) = rows(collector, t)
    assert row["status"] == "error" and row["err"]["type"] == type(info.value).__name__
    assert "overloaded mid-stream" in row["err"]["message"]
    assert row["meta"]["llm"]["end"] == "error" and row["meta"]["llm"]["chunks"] == len(received) == 2


def test_abandoned_streams_say_so_sync_and_async(collector: LiveCollector, fake: FakeProvider) -> None:
    """Broken out of after the first text: recorded once, with the text so far, its time, and
    `end`; closed with `await stream.close()` on an async client works and says `closed`."""
    t = tag()

    async def main() -> None:
        async with AsyncHuggingPlace(**collector.options()) as hp:
            client = hp.wrap(openai.AsyncOpenAI(api_key="sk-test", base_url=fake.openai_url))
            stream = await client.chat.completions.create(model="gpt-4o", stream=True,
                                                          messages=[{"role": "user", "content": t + " a"}])
            async for chunk in stream:
                if chunk.choices[0].delta.content:
                    break
            await stream.close()
            stream = await client.chat.completions.create(model="gpt-4o", stream=True,
                                                          messages=[{"role": "user", "content": t + " b"}])
            async for chunk in stream:
                if chunk.choices[0].delta.content:
                    break
            del stream
            gc.collect()
            await asyncio.sleep(0.05)
            await client.close()

    asyncio.run(main())
    closed, abandoned = rows(collector, t)
    for row, end in ((closed, "closed"), (abandoned, "abandoned")):
        assert row["ai_response"] == "Hello" and row["status"] == "error", end
        assert row["err"]["type"] == "IncompleteStream" and row["meta"]["llm"]["end"] == end
        assert row["meta"]["llm"]["completed"] is False and row["response_time"] > 0


def test_two_users_opening_with_the_same_words_never_share_a_conversation(
    collector: LiveCollector, fake: FakeProvider
) -> None:
    """A greeting bot answers every "Hi" alike; the user id (from the call, a context or a
    session) and the org keep their conversations apart."""
    t = tag()
    opening = [{"role": "system", "content": f"greeter {t}"}, {"role": "user", "content": f"Hi {t}"}]
    with HuggingPlace(**collector.options()) as hp:
        client = hp.wrap(oa(fake))
        client.chat.completions.create(model="greeter", messages=opening, user="alice")
        client.chat.completions.create(model="greeter", messages=opening, user="bob")
        with hp.context(user_id="carol"):
            client.chat.completions.create(model="greeter", messages=opening)
        client.chat.completions.create(model="greeter", messages=opening, user="alice")  # alice again
    with HuggingPlace(**collector.options(api_key=collector.other_key, org_id=collector.other_org)) as other:
        other.wrap(oa(fake)).chat.completions.create(model="greeter", messages=opening, user="alice")
    db = collector.db()
    found = db.execute("SELECT org_id, user_id, session_id FROM chat WHERE user_prompt = ? ORDER BY id",
                       (f"Hi {t}",)).fetchall()
    db.close()
    assert [(r[0], r[1]) for r in found] == [("org-a", "alice"), ("org-a", "bob"), ("org-a", "carol"),
                                             ("org-a", "alice"), ("org-b", "alice")]
    sessions = [r[2] for r in found]
    assert len(set(sessions[:3])) == 3 and sessions[3] == sessions[0]  # one user's same opening: one id
    assert sessions[4] != sessions[0]  # another org


def test_the_record_fields_table_in_the_docs_is_generated_from_the_registry() -> None:
    from pathlib import Path

    from huggingplace.providers._base import fields_table

    page = (Path(__file__).parents[1] / "docs" / "providers" / "fields.md").read_text(encoding="utf-8")
    assert fields_table() in page, "regenerate: python -m huggingplace.providers > docs table"


# ---- Anthropic ---------------------------------------------------------------------------------

def test_anthropic_create_stream_and_helper(collector: LiveCollector, fake: FakeProvider) -> None:
    t = tag()
    with HuggingPlace(**collector.options()) as hp:
        client = hp.wrap(an(fake))
        assert isinstance(client, anthropic.Anthropic)
        msg = client.messages.create(model="claude-test-model", max_tokens=100, system="be brief",
                                     messages=[{"role": "user", "content": t}], metadata={"user_id": "u-9"})
        assert fake.requests[-1]["body"]["metadata"] == {"user_id": "u-9"}
        events = list(client.messages.create(model="claude-test-model", max_tokens=100, stream=True,
                                             messages=[{"role": "user", "content": t + " s"}]))
        with client.messages.stream(model="claude-test-model", max_tokens=100,
                                    messages=[{"role": "user", "content": t + " h"}]) as s:
            helper_text = "".join(s.text_stream)
    assert events[-1].type == "message_stop"
    created, streamed, helper = rows(collector, t)
    assert created["ai_response"] == msg.content[0].text and created["token_count"] == 23
    assert created["meta"]["llm"]["finish_reason"] == "end_turn"
    assert streamed["ai_response"].startswith("Hello") and streamed["completion_tokens"] == 6
    assert helper["ai_response"] == helper_text and helper["llm_model"] == "claude-test-model-20260101"


def test_async_anthropic(collector: LiveCollector, fake: FakeProvider) -> None:
    t = tag()

    async def main() -> None:
        async with AsyncHuggingPlace(**collector.options()) as hp:
            client = hp.wrap(anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=fake.anthropic_url,
                                                      max_retries=0))
            await client.messages.create(model="claude-test-small", max_tokens=50,
                                         messages=[{"role": "user", "content": t}])
            async with client.messages.stream(model="claude-test-small", max_tokens=50,
                                              messages=[{"role": "user", "content": t + " h"}]) as s:
                async for _ in s.text_stream:
                    pass
            with pytest.raises(anthropic.InternalServerError):
                await client.messages.create(model="fail-500", max_tokens=5, messages=[{"role": "user", "content": t}])
            await client.close()

    asyncio.run(main())
    plain, helper, failed = rows(collector, t)
    assert plain["token_count"] == 23 and helper["ai_response"].startswith("Hello")
    assert failed["status"] == "error" and failed["err"]["type"] == "InternalServerError"


# ---- context and threading ---------------------------------------------------------------------

def test_context_fields_and_track_false(collector: LiveCollector, fake: FakeProvider) -> None:
    t = tag()
    with HuggingPlace(**collector.options()) as hp:
        client = hp.wrap(oa(fake))
        with hp.context(user_id="u-1", session_id=f"chat-{t}", metadata={"tenant": "acme"}):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": t + " in"}])
            hp.log(user_prompt=t + " log", response="a")
            with hp.context(track=False):
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": t + " off"}])
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": t + " out"}])
    found = {r["user_prompt"]: r for r in rows(collector, t)}
    assert set(found) == {t + " in", t + " log", t + " out"}
    for key in (t + " in", t + " log"):
        assert found[key]["user_id"] == "u-1" and found[key]["session_id"] == f"chat-{t}"
        assert found[key]["meta"]["tenant"] == "acme"
    assert found[t + " out"]["user_id"] is None


def test_context_is_correct_across_asyncio_tasks() -> None:
    from huggingplace import MemoryTransport

    t = MemoryTransport()
    hp = AsyncHuggingPlace(api_key="k" * 12, org_id="o", transport=t)

    async def turn(user: str) -> None:
        async with hp.context(user_id=user):
            await asyncio.sleep(0.01)
            await hp.log(user_prompt=user, response="a")

    async def main() -> None:
        await asyncio.gather(*(turn(f"user-{i}") for i in range(10)))

    asyncio.run(main())
    assert all(p["user_prompt"] == p["user_id"] for p in t.payloads) and len(t.payloads) == 10


def test_conversation_threading(collector: LiveCollector, fake: FakeProvider) -> None:
    """One id across turns without passing one; two conversations that open with "Hi" differ;
    an explicit session wins."""
    t = tag()
    with HuggingPlace(**collector.options()) as hp:
        client = hp.wrap(oa(fake))

        def converse(opening: str, turns: int) -> None:
            messages = [{"role": "system", "content": "be kind"}, {"role": "user", "content": opening}]
            for i in range(turns):
                resp = client.chat.completions.create(model="gpt-4o", messages=messages)
                messages += [{"role": "assistant", "content": resp.choices[0].message.content},
                             {"role": "user", "content": f"{t} follow-up {i}"}]

        converse(f"Hi {t}", 3)
        converse(f"Hi {t}", 2)
        with hp.start_session(f"mine-{t}"):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"Hi {t}"}])
    found = rows(collector, t)
    first, second, mine = found[:3], found[3:5], found[5]
    assert len({r["session_id"] for r in first}) == 1 and first[0]["session_id"].startswith("conv_")
    assert len({r["session_id"] for r in second}) == 1
    assert first[0]["session_id"] != second[0]["session_id"]  # same opening message, different conversations
    assert mine["session_id"] == f"mine-{t}"


def test_conversation_id_is_the_same_in_another_process() -> None:
    import subprocess
    import sys

    from huggingplace._threading import conversation_id

    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello #1: Hi"},
                {"role": "user", "content": "more"}]
    here = conversation_id("sys", messages, "ignored on later turns")
    code = ("import json,sys; from huggingplace._threading import conversation_id; "
            "print(conversation_id('sys', json.loads(sys.argv[1]), 'x'))")
    there = subprocess.run([sys.executable, "-c", code, json.dumps(messages)], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert here == there == conversation_id("sys", messages[:1], "Hello #1: Hi")


def test_wrap_refuses_what_it_cannot_track() -> None:
    from huggingplace import ConfigurationError

    hp = HuggingPlace(api_key="k" * 12, org_id="o")
    with pytest.raises(ConfigurationError, match="OpenAI"):
        hp.wrap(object())
    ahp = AsyncHuggingPlace(api_key="k" * 12, org_id="o")
    with pytest.raises(TypeError, match="async provider client"):
        ahp.wrap(openai.OpenAI(api_key="sk-x", base_url="http://127.0.0.1:9/v1"))
