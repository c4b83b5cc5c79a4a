"""Anthropic Messages: responses, and stream events (``messages.create(stream=True)`` and the
``messages.stream()`` helper)."""

from __future__ import annotations

import json
from typing import Any

from ._base import Normalized, count


def _blocks(content: Any) -> tuple[str, list[dict[str, Any]]]:
    texts, calls = [], []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            arguments = json.dumps(block.get("input"))
            calls.append({"id": block.get("id"), "name": block.get("name"), "arguments": arguments})
    return "".join(texts), calls


class Messages:
    name = "anthropic"

    def matches(self, data: dict[str, Any]) -> bool:
        return data.get("type") == "message" and isinstance(data.get("content"), list)

    def normalize(self, data: dict[str, Any]) -> Normalized:
        text, calls = _blocks(data.get("content"))
        usage = data.get("usage") or {}
        prompt = count(usage.get("input_tokens"))
        cache_read = count(usage.get("cache_read_input_tokens"))
        cache_write = count(usage.get("cache_creation_input_tokens"))
        return Normalized(
            text=text, model=data.get("model"), provider="anthropic",
            prompt_tokens=prompt + cache_read + cache_write, completion_tokens=count(usage.get("output_tokens")),
            cached_tokens=cache_read, finish_reason=data.get("stop_reason"), tool_calls=calls,
            response_id=data.get("id"),
        )


class MessagesStream:
    """message_start / content_block_* / message_delta events folded into one message."""

    def __init__(self) -> None:
        self.message: dict[str, Any] = {"type": "message", "content": [], "usage": {}}
        self.partial_json: dict[int, str] = {}

    def add(self, event: dict[str, Any]) -> bool:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            start = dict(event["message"])
            content, usage = list(start.get("content") or []), dict(start.get("usage") or {})
            self.message = {**start, "content": content, "usage": usage}
        elif kind == "content_block_start":
            block = dict(event.get("content_block") or {})
            self.message["content"].append(block)
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            index = event.get("index", len(self.message["content"]) - 1)
            if not self.message["content"]:
                self.message["content"].append({"type": "text", "text": ""})
            block = self.message["content"][min(index, len(self.message["content"]) - 1)]
            if delta.get("type") == "text_delta":
                block["text"] = (block.get("text") or "") + (delta.get("text") or "")
                return bool(delta.get("text"))
            if delta.get("type") == "input_json_delta":
                self.partial_json[index] = self.partial_json.get(index, "") + (delta.get("partial_json") or "")
                return True
        elif kind == "content_block_stop":
            index = event.get("index", -1)
            if index in self.partial_json:
                try:
                    self.message["content"][index]["input"] = json.loads(self.partial_json[index] or "{}")
                except (ValueError, IndexError):
                    pass
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            self.message["stop_reason"] = delta.get("stop_reason") or self.message.get("stop_reason")
            usage = event.get("usage") or {}
            for key, value in usage.items():
                if value is not None:
                    self.message["usage"][key] = value
        return False

    def result(self) -> Normalized:
        return Messages().normalize(self.message)

