"""A local fake of the OpenAI and Anthropic HTTP APIs (JSON and server-sent events), so the real
`openai` and `anthropic` client libraries can be tested end to end on loopback."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any, Optional

from aiohttp import ClientConnectionResetError, web

from .servers import AppThread


def _last_user(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            return str(c)
    return ""


GREETING = "Hello! How can I help you today?"
TOOL = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}


class FakeProvider(AppThread):
    """Answers ``Hello #<n>: <last user message>``. Models: ``fail-500`` / ``fail-400`` fail;
    ``fail-midway`` streams two chunks then an error event; ``greeter`` answers every prompt
    with the same greeting (a deterministic bot); ``tool-call`` calls :data:`TOOL`."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self._n = itertools.count(1)

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answer(self, prompt: str) -> str:
        return f"Hello #{next(self._n)}: {prompt}"

    async def _receive(self, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = await request.json()
        self.requests.append({"path": request.path, "body": body, "headers": dict(request.headers)})
        return body

    @staticmethod
    def _failure(model: str) -> Optional[web.Response]:
        if model == "fail-500":
            return web.json_response({"error": {"message": "the model crashed", "type": "server_error"}}, status=500)
        if model == "fail-400":
            return web.json_response({"error": {"message": "bad request", "type": "invalid_request_error"}},
                                     status=400)
        return None

    def _text(self, body: dict[str, Any], prompt: str) -> str:
        return GREETING if body.get("model") == "greeter" else self._answer(prompt)

    async def _sse(self, request: web.Request, events: list[tuple[Optional[str], Any]],
                   error: Optional[tuple[Optional[str], Any]] = None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if error is not None:  # fail-midway: two chunks, then the provider's error event
            events = [*events[:2], error]
        try:
            for event, data in events:
                payload = data if isinstance(data, str) else json.dumps(data)
                text = (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"
                await response.write(text.encode())
                await asyncio.sleep(0.002)
            await response.write_eof()
        except (ConnectionResetError, ClientConnectionResetError):  # the caller closed the stream early
            pass
        return response

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._receive(request)
        failed = self._failure(body.get("model", ""))
        if failed:
            return failed
        answer = self._text(body, _last_user(body.get("messages", [])))
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
                 "prompt_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 2}}
        base = {"id": f"chatcmpl-{len(self.requests)}", "created": 1, "model": body["model"] + "-2026-01-01"}
        tool = body["model"] == "tool-call"
        calls = [{"id": "call_1", "type": "function",
                  "function": {"name": TOOL["name"], "arguments": json.dumps(TOOL["arguments"])}}]
        finish = "tool_calls" if tool else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if tool else answer}
            if tool:
                message["tool_calls"] = calls
            return web.json_response({**base, "object": "chat.completion", "choices": [{
                "index": 0, "message": message, "finish_reason": finish}], "usage": usage})
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[tuple[Optional[str], Any]] = [
            (None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
        if tool:
            arguments = calls[0]["function"]["arguments"]
            for i, piece in enumerate((arguments[:10], arguments[10:])):
                delta = {"index": 0, "function": {"arguments": piece}}
                if i == 0:
                    delta.update(id="call_1", type="function", function={"name": TOOL["name"], "arguments": piece})
                events.append((None, {**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [delta]}}]}))
        else:
            for i, word in enumerate(answer.split(" ")):
                events.append((None, {**chunk, "choices": [{"index": 0,
                                                            "delta": {"content": (" " if i else "") + word}}]}))
        events.append((None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append((None, {**chunk, "choices": [], "usage": usage}))
        events.append((None, "[DONE]"))
        error = (None, {"error": {"message": "overloaded mid-stream", "type": "server_error"}})
        return await self._sse(request, events, error if body["model"] == "fail-midway" else None)

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await self._receive(request)
        failed = self._failure(body.get("model", ""))
        if failed:
            return failed
        raw = body.get("input")
        prompt = raw if isinstance(raw, str) else _last_user(raw or [])
        answer = self._text(body, prompt)
        n = len(self.requests)
        full = {
            "id": f"resp_{n}", "object": "response", "created_at": 1, "model": body["model"] + "-2026-01-01",
            "status": "completed",
            "output": [{"type": "message", "id": f"msg_{n}", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": answer, "annotations": []}]}],
            "usage": {"input_tokens": 9, "output_tokens": 5, "total_tokens": 14,
                      "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 2}},
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        }
        if not body.get("stream"):
            return web.json_response(full)
        created = {**full, "status": "in_progress", "output": [], "usage": None}
        events: list[tuple[Optional[str], Any]] = [
            ("response.created", {"type": "response.created", "sequence_number": 0, "response": created})]
        for i, word in enumerate(answer.split(" ")):
            events.append(("response.output_text.delta", {
                "type": "response.output_text.delta", "sequence_number": i + 1, "item_id": f"msg_{n}",
                "output_index": 0, "content_index": 0, "delta": (" " if i else "") + word, "logprobs": [],
            }))
        events.append(("response.completed", {"type": "response.completed", "sequence_number": 99, "response": full}))
        error = ("error", {"type": "error", "code": "server_error", "message": "overloaded mid-stream",
                           "param": None, "sequence_number": 3})
        return await self._sse(request, events, error if body["model"] == "fail-midway" else None)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._receive(request)
        failed = self._failure(body.get("model", ""))
        if failed:
            return failed
        answer = self._text(body, _last_user(body.get("messages", [])))
        tool = body["model"] == "tool-call"
        content: list[dict[str, Any]] = [{"type": "text", "text": answer}]
        if tool:
            content = [{"type": "tool_use", "id": "toolu_1", "name": TOOL["name"], "input": TOOL["arguments"]}]
        message = {"id": f"msg_{len(self.requests)}", "type": "message", "role": "assistant",
                   "model": body["model"] + "-20260101", "content": content,
                   "stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None,
                   "usage": {"input_tokens": 13, "output_tokens": 6, "cache_read_input_tokens": 4}}
        if not body.get("stream"):
            return web.json_response(message)
        start = {**message, "content": [], "stop_reason": None,
                 "usage": {"input_tokens": 13, "output_tokens": 1, "cache_read_input_tokens": 4}}
        block = {**content[0], "input": {}} if tool else {"type": "text", "text": ""}
        events: list[tuple[Optional[str], Any]] = [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
        ]
        arguments = json.dumps(TOOL["arguments"])
        pieces = [arguments[:10], arguments[10:]] if tool else [(" " if i else "") + w
                                                                for i, w in enumerate(answer.split(" "))]
        for piece in pieces:
            delta = {"type": "input_json_delta", "partial_json": piece} if tool else {"type": "text_delta",
                                                                                      "text": piece}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": message["stop_reason"],
                                                                  "stop_sequence": None},
                               "usage": {"output_tokens": 6}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        error = ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "overloaded mid-stream"}})
        return await self._sse(request, events, error if body["model"] == "fail-midway" else None)

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.chat)  # Azure
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_post("/v1/messages", self.messages)
        return app
