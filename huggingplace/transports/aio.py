"""The async transport: one ``aiohttp.ClientSession``, created inside the running event loop.

Its send path never touches a thread pool: host names are resolved on the loop itself, the body
is bytes, and proxy settings were read once. Python shuts every thread pool down before
``atexit`` runs, so this is what lets the background worker deliver at interpreter exit.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from .._exceptions import APIConnectionError, APITimeoutError
from .._wire import READ_HEADERS, Request, Response
from ._env import Proxies

__all__ = ["AiohttpTransport", "InLoopResolver"]


class InLoopResolver(AbstractResolver):
    """``getaddrinfo`` called directly on the loop: it blocks that loop for the lookup (the
    connector caches answers), but needs no executor, so it works during interpreter exit."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        infos = socket.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
        results: list[ResolveResult] = []
        for fam, _, proto, _, address in infos:
            if fam == socket.AF_INET6 and len(address) < 3:
                continue  # IPv6 not supported by this build
            results.append(
                ResolveResult(
                    hostname=host, host=str(address[0]), port=int(address[1]), family=fam, proto=proto,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        if not results:
            raise OSError(f"no address for {host}")
        return results

    async def close(self) -> None:
        return None


class AiohttpTransport:
    """Posts with aiohttp; never blocks the loop on a thread. A session is bound to the loop that
    made it, so a client reused from a new loop (a second ``asyncio.run``) gets a fresh one.
    An answer keeps the headers the SDK reads (``READ_HEADERS``), not every one."""

    def __init__(self, *, limit: int = 10) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxies = Proxies()
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._targets: dict[str, tuple[yarl.URL, dict[str, Any]]] = {}

    def _current(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=self._limit, resolver=InLoopResolver(), ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
            self._loop = loop
        return self._session

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        cached = self._timeouts.get(seconds)
        if cached is None:
            cached = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return cached

    def _target(self, url: str) -> tuple[yarl.URL, dict[str, Any]]:
        """The URL parsed once and its proxy looked up once (the worker posts to one or two
        URLs, thousands of times)."""
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) > 64:
                self._targets.clear()
            proxy = self._proxies.for_url(url)
            target = self._targets[url] = (yarl.URL(url), {"proxy": proxy} if proxy else {})
        return target

    async def send_async(self, request: Request, *, timeout: float) -> Response:
        session = self._session
        if session is None or self._loop is not asyncio.get_running_loop():  # (aclose() forgets it)
            session = self._current()
        url, extra = self._targets.get(request.url) or self._target(request.url)
        try:
            async with session.post(
                url,
                data=request.body,
                headers=request.headers,
                timeout=self._timeouts.get(timeout) or self._timeout(timeout),
                allow_redirects=False,
                **extra,
            ) as answer:
                body = await answer.read()
                got = answer.headers
                kept = {}
                for name in READ_HEADERS:  # (a loop, not a comprehension: no function call per answer)
                    if name in got:
                        kept[name] = got[name]
                return Response(answer.status, kept, body)
        except asyncio.TimeoutError as exc:
            raise APITimeoutError(f"no answer from {request.url} within {timeout:g} s", url=request.url) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise APIConnectionError(
                f"could not reach {request.url}: {type(exc).__name__}", url=request.url
            ) from exc

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()
