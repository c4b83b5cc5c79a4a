"""Provider adapters on recorded responses (dicts and the real SDKs' objects), stream
accumulation, the registry and its plugins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from huggingplace import ConfigurationError, HuggingPlace, MemoryTransport, ValidationError
from huggingplace.providers import Normalized, Registry, adapt
from huggingplace.providers._anthropic import MessagesStream
from huggingplace.providers._openai import ChatStream, ResponsesStream

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "provider_responses.json").read_text())


@pytest.mark.parametrize(
    "name, provider, text, model, prompt, completion, total, finish",
    [
        ("gemini", "gemini", "Paris is the capital.", "gemini-2.5-flash", 8, 5, 15, "STOP"),
        ("gemini_snake", "gemini", "hi", "gemini-2.0-pro", 3, 2, 5, "STOP"),
        ("bedrock_converse", "bedrock", "Bonjour", None, 12, 4, 16, "tool_use"),
        ("cohere_v2", "cohere", "Hello from Command", None, 70, 3, 73, "COMPLETE"),
        ("cohere_v1", "cohere", "Old API answer", None, 5, 3, 8, "COMPLETE"),
        ("mistral", "mistral", "Mistral says hi", "mistral-large-latest", 9, 4, 13, "stop"),
        ("litellm", "openai-compatible", "from litellm", "ollama/llama3", 2, 3, 5, "stop"),
        ("vllm_completion", "openai", "plain completion", "meta-llama/Llama-3-8B", 4, 16, 20, "length"),
        ("ollama_chat", "ollama", "ollama native", "llama3.2", 26, 8, 34, "stop"),
        ("openai_tools", "openai", "", "gpt-4o-mini", 20, 10, 30, "tool_calls"),
        ("openai_no_usage", "openai", "no usage here", "gpt-4o", 0, 0, 0, "stop"),
    ],
)
def test_recorded_responses(name: str, provider: str, text: str, model: str | None, prompt: int,
                            completion: int, total: int, finish: str) -> None:
    n = adapt(FIXTURES[name])
    assert (n.provider, n.text, n.model) == (provider, text, model)
    counts = (n.prompt_tokens, n.completion_tokens, n.total_tokens, n.finish_reason)
    assert counts == (prompt, completion, total, finish)
    assert all(isinstance(v, int) for v in (n.cached_tokens, n.reasoning_tokens))


def test_tool_calls_and_detail_tokens() -> None:
    tools = adapt(FIXTURES["openai_tools"])
    assert tools.tool_calls == ({"id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},)
    assert tools.reasoning_tokens == 4
    gem = adapt(FIXTURES["gemini"])
    assert (gem.cached_tokens, gem.reasoning_tokens) == (1, 2)
    bedrock = adapt(FIXTURES["bedrock_converse"])
    assert bedrock.tool_calls[0]["name"] == "translate"


def test_real_sdk_objects() -> None:
    """The openai and anthropic packages' own response classes, not just dicts."""
    from anthropic.types import Message
    from openai.types.chat import ChatCompletion
    from openai.types.responses import Response

    chat = ChatCompletion.model_validate(FIXTURES["mistral"] | {"model": "gpt-4o"})
    assert adapt(chat).text == "Mistral says hi" and adapt(chat).provider == "openai"
    msg = Message.model_validate({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "end_turn",
        "content": [{"type": "text", "text": "from claude"}],
        "usage": {"input_tokens": 10, "output_tokens": 2, "cache_read_input_tokens": 5},
    })
    n = adapt(msg)
    assert (n.text, n.prompt_tokens, n.cached_tokens, n.total_tokens) == ("from claude", 15, 5, 17)
    resp = Response.model_validate({
        "id": "resp_1", "object": "response", "created_at": 1, "model": "gpt-4.1", "status": "completed",
        "output": [{"type": "message", "id": "m", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "responses api", "annotations": []}]}],
        "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5,
                  "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}},
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    })
    assert adapt(resp).text == "responses api" and adapt(resp).provider == "openai"


def test_stream_accumulators() -> None:
    chat = ChatStream()
    for chunk in (
        {"model": "gpt-4o", "choices": [{"delta": {"content": "Hel"}}]},
        {"choices": [{"delta": {"content": "lo", "tool_calls": [
            {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{\"a\""}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]},
                      "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}},
    ):
        chat.add(chunk)
    n = chat.result()
    assert (n.text, n.total_tokens, n.finish_reason) == ("Hello", 6, "stop")
    assert n.tool_calls == ({"id": "c1", "name": "f", "arguments": '{"a":1}'},)

    msgs = MessagesStream()
    for event in (
        {"type": "message_start", "message": {"type": "message", "model": "claude", "content": [],
                                              "usage": {"input_tokens": 9, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi there"}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "g",
                                                                      "input": {}}},
        {"type": "content_block_delta", "index": 1,
         "delta": {"type": "input_json_delta", "partial_json": "{\"x\": 2}"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}},
    ):
        msgs.add(event)
    m = msgs.result()
    assert (m.text, m.prompt_tokens, m.completion_tokens, m.finish_reason) == ("Hi there", 9, 7, "tool_use")
    assert json.loads(m.tool_calls[0]["arguments"]) == {"x": 2}

    resp = ResponsesStream()
    resp.add({"type": "response.output_text.delta", "delta": "part"})
    assert resp.result().text == "part"  # a stream cut before response.completed still has its text


def test_log_understands_provider_responses() -> None:
    t = MemoryTransport()
    hp = HuggingPlace(api_key="k" * 12, org_id="o", transport=t)
    hp.log(messages=[{"role": "user", "content": "capital of France?"}], response=FIXTURES["gemini"])
    hp.log(user_prompt="explicit", response=FIXTURES["mistral"], llm_model="my-label", token_count=99)
    hp.log(messages="just a string", response="plain text")
    first, second, third = t.payloads
    assert (first["user_prompt"], first["ai_response"], first["llm_model"], first["token_count"]) == (
        "capital of France?", "Paris is the capital.", "gemini-2.5-flash", 15)
    assert first["metaData"]["llm"]["provider"] == "gemini"
    assert (second["user_prompt"], second["llm_model"], second["token_count"]) == ("explicit", "my-label", 99)
    assert "token_usage" not in second  # what the caller passed wins
    assert (third["user_prompt"], third["ai_response"]) == ("just a string", "plain text")


def test_unknown_response_objects_are_a_clear_error() -> None:
    hp = HuggingPlace(api_key="k" * 12, org_id="o", transport=MemoryTransport())
    with pytest.raises(ValidationError, match="provider response"):
        hp.log(user_prompt="q", response={"something": "else"})


class Echo:
    name = "echo"

    def matches(self, data: dict[str, Any]) -> bool:
        return "echo" in data

    def normalize(self, data: dict[str, Any]) -> Normalized:
        return Normalized(text=data["echo"], provider="echo", prompt_tokens=1, completion_tokens=1)


def test_registry_plugins_and_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    eps = [EntryPoint("echo", "tests.test_providers:Echo", "huggingplace.providers")]
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group=None: eps)
    registry = Registry()
    assert ("echo", "entry point tests.test_providers:Echo") in registry.adapters()
    assert registry.adapt({"echo": "plugged in"}).text == "plugged in"
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register(Echo())
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register(type("Fake", (), {"name": "openai", "matches": lambda s, d: True,
                                            "normalize": lambda s, d: Normalized()})())


def test_providers_cli_lists_the_built_ins() -> None:
    out = subprocess.run([sys.executable, "-m", "huggingplace", "providers"], capture_output=True, text=True,
                         check=True).stdout
    names = [line.split()[0] for line in out.splitlines()]
    assert names[:2] == ["anthropic", "openai-responses"] and names[-1] == "openai-compatible"
    assert {"gemini", "bedrock", "cohere", "ollama", "openai"} <= set(names)
