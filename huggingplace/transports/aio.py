"""The async transport: one ``aiohttp.ClientSession``, created inside the running event loop."""

from __future__ import annotations

import asyncio

import aiohttp

from .._exceptions import APIConnectionError, APITimeoutError
from .._wire import Request, Response


class AiohttpTransport:
    """Posts with aiohttp; never blocks the loop. A session is bound to the loop that made it,
    so a client reused from a new loop (a second ``asyncio.run``) gets a fresh one."""

    def __init__(self, *, limit: int = 10) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _current(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=self._limit)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=True)
            self._loop = loop
        return self._session

    async def send_async(self, request: Request, *, timeout: float) -> Response:
        session = self._current()
        try:
            async with session.post(
                request.url,
                data=request.body,
                headers=dict(request.headers),
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as answer:
                body = await answer.read()
                return Response(status_code=answer.status, headers=dict(answer.headers), body=body)
        except asyncio.TimeoutError as exc:
            raise APITimeoutError(f"no answer from {request.url} within {timeout:g} s", url=request.url) from exc
        except aiohttp.ClientError as exc:
            raise APIConnectionError(
                f"could not reach {request.url}: {type(exc).__name__}", url=request.url
            ) from exc

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()
