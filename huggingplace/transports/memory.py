"""An in-process transport for unit tests: a function answers every request."""

from __future__ import annotations

import json
from typing import Any, Callable

from .._wire import Request, Response

Handler = Callable[[Request], Response]


def _stored(request: Request) -> Response:
    return Response(200, {"content-type": "application/json"}, b'{"message":"stored"}')


class MemoryTransport:
    """Serves both clients: ``send`` and ``send_async`` call ``handler`` (default: answer 200).

    Every request is kept in ``requests``; ``payloads`` gives their decoded JSON bodies.
    A handler may raise ``APIConnectionError`` / ``APITimeoutError`` to simulate no answer.
    """

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler = handler or _stored
        self.requests: list[Request] = []

    @property
    def payloads(self) -> list[Any]:
        return [json.loads(r.body) for r in self.requests]

    def send(self, request: Request, *, timeout: float) -> Response:
        self.requests.append(request)
        return self.handler(request)

    async def send_async(self, request: Request, *, timeout: float) -> Response:
        return self.send(request, timeout=timeout)

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
