"""The two transport interfaces: one ``send`` per request, errors already mapped to ours."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .._wire import Request, Response


@runtime_checkable
class Transport(Protocol):
    """Sends one request and returns the answer, raising only ``APIConnectionError`` /
    ``APITimeoutError`` when no HTTP answer came."""

    def send(self, request: Request, *, timeout: float) -> Response: ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncTransport(Protocol):
    """The async twin of :class:`Transport`; it must never block the event loop."""

    async def send_async(self, request: Request, *, timeout: float) -> Response: ...

    async def aclose(self) -> None: ...
