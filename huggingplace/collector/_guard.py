"""Bounds on slow clients: a connection whose request head has not fully arrived within
``LIMITS["head_seconds"]`` is closed (aiohttp's server has keep-alive and size limits, but no
header-read timeout). Request bodies are bounded where they are read (``_app._json_body``)."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from aiohttp import web

from ._ingest import LIMITS

__all__ = ["GuardedRunner"]


class _HeadDeadline(asyncio.Protocol):
    """Wraps aiohttp's per-connection protocol: everything is handed on; a timer closes the
    connection if the first request head (up to its blank line) is not in by the deadline."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._tail = b""
        self._timer: Optional[asyncio.TimerHandle] = None
        self._transport: Optional[asyncio.BaseTransport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._inner.connection_made(transport)
        self._timer = asyncio.get_running_loop().call_later(float(LIMITS["head_seconds"]), self._expire)

    def _expire(self) -> None:
        if self._timer is not None and self._transport is not None:
            self._transport.close()  # the client is too slow to say what it wants

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if b"\r\n\r\n" in seen:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> Optional[bool]:
        return self._inner.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _GuardedFactory:
    def __init__(self, server: web.Server) -> None:
        self._server = server

    def __call__(self) -> _HeadDeadline:
        return _HeadDeadline(self._server())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class GuardedRunner(web.AppRunner):
    """An ``AppRunner`` whose sites hand every connection through the head deadline."""

    @property
    def server(self) -> Any:
        inner = super().server
        return None if inner is None else _GuardedFactory(inner)
