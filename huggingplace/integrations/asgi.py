"""Close HuggingPlace clients when an ASGI app's lifespan shuts down (after the last request)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Awaitable, Callable, MutableMapping

__all__ = ["FlushOnShutdown"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class FlushOnShutdown:
    """``app = FlushOnShutdown(app, hp)``: when the server stops, once the app's own shutdown has
    run, every given client (sync or async) is closed, sending what it holds within its exit
    deadline. Everything else passes through untouched."""

    def __init__(self, app: ASGIApp, *clients: Any) -> None:
        self.app = app
        self.clients = clients

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope.get("type") != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_after_close(message: Message) -> None:
            if message.get("type") == "lifespan.shutdown.complete":
                await self._close()
            await send(message)

        await self.app(scope, receive, send_after_close)

    async def _close(self) -> None:
        for client in self.clients:
            if inspect.iscoroutinefunction(client.close):
                await client.close()
            else:  # a sync client: its close waits in a thread, never on the loop
                await asyncio.to_thread(client.close)
