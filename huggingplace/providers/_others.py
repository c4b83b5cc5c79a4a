"""Google Gemini, AWS Bedrock Converse, Cohere (v1 and v2) and Ollama's native API."""

from __future__ import annotations

from typing import Any

from ._base import Normalized, count, dig


class Gemini:
    name = "gemini"

    def matches(self, data: dict[str, Any]) -> bool:
        return isinstance(data.get("candidates"), list) and (
            "usage_metadata" in data or "usageMetadata" in data or bool(data.get("candidates"))
        )

    def normalize(self, data: dict[str, Any]) -> Normalized:
        candidate = dig(data, "candidates", 0) or {}
        parts = dig(candidate, "content", "parts") or []
        text = "".join(p.get("text") or "" for p in parts if isinstance(p, dict) and not p.get("thought"))
        calls = [
            {"id": None, "name": dig(p, "function_call", "name") or dig(p, "functionCall", "name"),
             "arguments": dig(p, "function_call", "args") or dig(p, "functionCall", "args")}
            for p in parts if isinstance(p, dict) and (p.get("function_call") or p.get("functionCall"))
        ]
        usage = data.get("usage_metadata") or data.get("usageMetadata") or {}

        def u(snake: str, camel: str) -> Any:
            return usage.get(snake, usage.get(camel))

        return Normalized(
            text=text, model=data.get("model_version") or data.get("modelVersion"), provider="gemini",
            prompt_tokens=count(u("prompt_token_count", "promptTokenCount")),
            completion_tokens=count(u("candidates_token_count", "candidatesTokenCount")),
            total_tokens=count(u("total_token_count", "totalTokenCount")),
            cached_tokens=count(u("cached_content_token_count", "cachedContentTokenCount")),
            reasoning_tokens=count(u("thoughts_token_count", "thoughtsTokenCount")),
            finish_reason=str(candidate.get("finish_reason") or candidate.get("finishReason") or "") or None,
            tool_calls=calls, response_id=data.get("response_id") or data.get("responseId"),
        )


class BedrockConverse:
    name = "bedrock"

    def matches(self, data: dict[str, Any]) -> bool:
        return isinstance(dig(data, "output", "message"), dict) and "usage" in data and "stopReason" in data

    def normalize(self, data: dict[str, Any]) -> Normalized:
        content = dig(data, "output", "message", "content") or []
        text = "".join(b.get("text") or "" for b in content if isinstance(b, dict))
        calls = [
            {"id": dig(b, "toolUse", "toolUseId"), "name": dig(b, "toolUse", "name"),
             "arguments": dig(b, "toolUse", "input")}
            for b in content if isinstance(b, dict) and "toolUse" in b
        ]
        usage = data.get("usage") or {}
        return Normalized(
            text=text, model=None, provider="bedrock",
            prompt_tokens=count(usage.get("inputTokens")), completion_tokens=count(usage.get("outputTokens")),
            total_tokens=count(usage.get("totalTokens")), cached_tokens=count(usage.get("cacheReadInputTokens")),
            finish_reason=data.get("stopReason"), tool_calls=calls,
            response_id=dig(data, "ResponseMetadata", "RequestId"),
        )


class Cohere:
    name = "cohere"

    def matches(self, data: dict[str, Any]) -> bool:
        v2 = isinstance(data.get("message"), dict) and "finish_reason" in data and "usage" in data
        v1 = isinstance(data.get("text"), str) and ("generation_id" in data or "meta" in data)
        return v2 or v1

    def normalize(self, data: dict[str, Any]) -> Normalized:
        if isinstance(data.get("message"), dict):  # v2 chat
            content = dig(data, "message", "content") or []
            text = "".join(c.get("text") or "" for c in content if isinstance(c, dict))
            usage = data.get("usage") or {}
            tokens = usage.get("tokens") or usage.get("billed_units") or {}
            calls = [
                {"id": c.get("id"), "name": dig(c, "function", "name"), "arguments": dig(c, "function", "arguments")}
                for c in dig(data, "message", "tool_calls") or [] if isinstance(c, dict)
            ]
            return Normalized(
                text=text, provider="cohere", prompt_tokens=count(tokens.get("input_tokens")),
                completion_tokens=count(tokens.get("output_tokens")), finish_reason=data.get("finish_reason"),
                tool_calls=calls, response_id=data.get("id"),
            )
        billed = dig(data, "meta", "billed_units") or dig(data, "meta", "tokens") or {}
        return Normalized(
            text=data["text"], provider="cohere", prompt_tokens=count(billed.get("input_tokens")),
            completion_tokens=count(billed.get("output_tokens")), finish_reason=data.get("finish_reason"),
            response_id=data.get("generation_id") or data.get("response_id"),
        )


class Ollama:
    """Ollama's native ``/api/chat`` and ``/api/generate``."""

    name = "ollama"

    def matches(self, data: dict[str, Any]) -> bool:
        return "eval_count" in data or ("done" in data and ("message" in data or "response" in data))

    def normalize(self, data: dict[str, Any]) -> Normalized:
        text = dig(data, "message", "content") if isinstance(data.get("message"), dict) else data.get("response")
        return Normalized(
            text=text or "", model=data.get("model"), provider="ollama",
            prompt_tokens=count(data.get("prompt_eval_count")), completion_tokens=count(data.get("eval_count")),
            finish_reason=data.get("done_reason"),
        )
