"""How bytes reach the endpoint. The clients only call ``send`` and ``close``.

- :class:`RequestsTransport`: the sync client's default, one pooled ``requests.Session``.
- :class:`AiohttpTransport`: the async client's default, one ``aiohttp.ClientSession``.
- :class:`MemoryTransport`: answers from a function in-process, for your own unit tests (the
  function takes a :class:`Request` and returns a :class:`Response`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._wire import Request, Response
from .base import AsyncTransport, Transport
from .memory import MemoryTransport

if TYPE_CHECKING:  # pragma: no cover
    from .aio import AiohttpTransport
    from .http import RequestsTransport

__all__ = ["AiohttpTransport", "AsyncTransport", "MemoryTransport", "Request", "RequestsTransport", "Response",
           "Transport"]


def __getattr__(name: str) -> Any:
    """``requests`` and ``aiohttp`` load when their transport is first used, not at import."""
    if name == "AiohttpTransport":
        from .aio import AiohttpTransport

        return AiohttpTransport
    if name == "RequestsTransport":
        from .http import RequestsTransport

        return RequestsTransport
    raise AttributeError(name)
