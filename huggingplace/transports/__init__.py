"""How bytes reach the endpoint. The clients only call ``send`` and ``close``.

- :class:`RequestsTransport`: the sync client's default, one pooled ``requests.Session``.
- :class:`AiohttpTransport`: the async client's default, one ``aiohttp.ClientSession``.
- :class:`MemoryTransport`: answers from a function in-process, for your own unit tests.
"""

from __future__ import annotations

from .aio import AiohttpTransport
from .base import AsyncTransport, Transport
from .http import RequestsTransport
from .memory import MemoryTransport

__all__ = ["AiohttpTransport", "AsyncTransport", "MemoryTransport", "RequestsTransport", "Transport"]
