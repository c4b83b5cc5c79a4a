"""OpenAI Chat Completions and Responses, and every OpenAI-compatible server (Azure, Mistral,
LiteLLM, vLLM, Ollama's /v1, Together, Groq...): objects, dicts and stream chunks."""

from __future__ import annotations

from typing import Any, Optional

from ._base import Normalized, count, dig


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for call in calls or []:
        if isinstance(call, dict):
            fn = call.get("function") or {}
            out.append({"id": call.get("id"), "name": fn.get("name"), "arguments": fn.get("arguments")})
    return out


class ChatCompletions:
    """``chat.completions.create`` results (and legacy ``completions``)."""

    name = "openai"

    def matches(self, data: dict[str, Any]) -> bool:
        kind = str(data.get("object") or "")
        known = kind == "text_completion" or kind.startswith("chat.completion")
        return isinstance(data.get("choices"), list) and known

    def normalize(self, data: dict[str, Any]) -> Normalized:
        choice = dig(data, "choices", 0) or {}
        message = choice.get("message") or {}
        legacy = choice.get("text")
        text = _content_text(message.get("content")) or (legacy if isinstance(legacy, str) else "")
        usage = data.get("usage") or {}
        return Normalized(
            text=text or "",
            model=data.get("model"),
            provider=_provider_of(data),
            prompt_tokens=count(usage.get("prompt_tokens")),
            completion_tokens=count(usage.get("completion_tokens")),
            total_tokens=count(usage.get("total_tokens"))
            or count(usage.get("prompt_tokens")) + count(usage.get("completion_tokens")),
            cached_tokens=count(dig(usage, "prompt_tokens_details", "cached_tokens")),
            reasoning_tokens=count(dig(usage, "completion_tokens_details", "reasoning_tokens")),
            finish_reason=choice.get("finish_reason"),
            tool_calls=_tool_calls(message.get("tool_calls")),
            response_id=data.get("id"),
        )


def _provider_of(data: dict[str, Any]) -> str:
    model = str(data.get("model") or "")
    if model.startswith(("mistral", "open-mistral", "codestral", "ministral", "pixtral")):
        return "mistral"
    return "openai"


class ChatStream:
    """Chat Completions stream chunks, tool calls merged by index, usage from the last chunk."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.model: Optional[str] = None
        self.finish: Optional[str] = None
        self.usage: dict[str, Any] = {}
        self.calls: dict[int, dict[str, Any]] = {}
        self.id: Optional[str] = None

    def add(self, chunk: dict[str, Any]) -> bool:
        self.model = chunk.get("model") or self.model
        self.id = chunk.get("id") or self.id
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        content = False
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                self.text.append(delta["content"])
                content = True
            for call in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(call.get("index", 0), {"id": None, "name": None, "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["name"] = fn.get("name") or slot["name"]
                slot["arguments"] += fn.get("arguments") or ""
                content = True
            self.finish = choice.get("finish_reason") or self.finish
        return content

    def result(self) -> Normalized:
        u = self.usage
        return Normalized(
            text="".join(self.text), model=self.model, provider=_provider_of({"model": self.model}),
            prompt_tokens=count(u.get("prompt_tokens")), completion_tokens=count(u.get("completion_tokens")),
            total_tokens=count(u.get("total_tokens")),
            cached_tokens=count(dig(u, "prompt_tokens_details", "cached_tokens")),
            reasoning_tokens=count(dig(u, "completion_tokens_details", "reasoning_tokens")),
            finish_reason=self.finish, tool_calls=[self.calls[i] for i in sorted(self.calls)], response_id=self.id,
        )


class Responses:
    """``responses.create`` results: ``output`` items, ``usage.input_tokens``."""

    name = "openai-responses"

    def matches(self, data: dict[str, Any]) -> bool:
        return data.get("object") == "response" or (isinstance(data.get("output"), list) and "usage" in data
                                                    and "input_tokens" in (data.get("usage") or {}))

    def normalize(self, data: dict[str, Any]) -> Normalized:
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for item in data.get("output") or []:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "message":
                for part in item.get("content") or []:
                    if isinstance(part, dict) and part.get("type") in ("output_text", "text"):
                        texts.append(part.get("text") or "")
            elif item.get("type") == "function_call":
                calls.append({"id": item.get("call_id"), "name": item.get("name"), "arguments": item.get("arguments")})
        usage = data.get("usage") or {}
        incomplete = dig(data, "incomplete_details", "reason")
        output_text = data.get("output_text")
        return Normalized(
            text="".join(texts) or (output_text if isinstance(output_text, str) else ""),
            model=data.get("model"), provider="openai",
            prompt_tokens=count(usage.get("input_tokens")), completion_tokens=count(usage.get("output_tokens")),
            total_tokens=count(usage.get("total_tokens")),
            cached_tokens=count(dig(usage, "input_tokens_details", "cached_tokens")),
            reasoning_tokens=count(dig(usage, "output_tokens_details", "reasoning_tokens")),
            finish_reason=incomplete or data.get("status"), tool_calls=calls, response_id=data.get("id"),
        )


class ResponsesStream:
    """Responses stream events; the final ``response.completed`` carries the whole response."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.final: Optional[dict[str, Any]] = None
        self.model: Optional[str] = None

    def add(self, event: dict[str, Any]) -> bool:
        kind = event.get("type", "")
        if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            self.text.append(event["delta"])
            return bool(event["delta"])
        if kind in ("response.completed", "response.incomplete", "response.failed") and isinstance(
            event.get("response"), dict
        ):
            self.final = event["response"]
        if kind == "response.created":
            self.model = dig(event, "response", "model")
        return False

    def result(self) -> Normalized:
        if self.final is not None:
            done = Responses().normalize(self.final)
            return done if done.text else Normalized(**{**_fields(done), "text": "".join(self.text)})
        return Normalized(text="".join(self.text), model=self.model, provider="openai")


def _fields(n: Normalized) -> dict[str, Any]:
    import attrs

    return attrs.asdict(n, recurse=False)


class OpenAICompatible:
    """Any dict shaped like a chat completion, even without ``object`` (LiteLLM, vLLM, Ollama /v1)."""

    name = "openai-compatible"

    def matches(self, data: dict[str, Any]) -> bool:
        first = dig(data, "choices", 0)
        return isinstance(first, dict) and ("message" in first or "text" in first)

    def normalize(self, data: dict[str, Any]) -> Normalized:
        n = ChatCompletions().normalize(data)
        return Normalized(**{**_fields(n), "provider": "openai-compatible" if n.provider == "openai" else n.provider})
