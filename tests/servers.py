"""Real loopback HTTP servers for tests: a scripted endpoint and a socket that never answers."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any, Callable, Optional

from aiohttp import web

Reply = tuple[int, dict[str, str], Any]  # status, headers, JSON body (or bytes)


class AppThread:
    """An aiohttp application served on a loopback port from its own thread and loop."""

    def __init__(self, port: int = 0) -> None:
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._ready = threading.Event()
        self.port = port  # 0: any free one

    def make_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        runner = web.AppRunner(self.make_app(), access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        self.loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def __enter__(self) -> Any:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class ScriptedServer(AppThread):
    """An aiohttp server in a thread that answers the contract's route from a script.

    ``script`` is a list of replies used in order (the last one repeats) or a function of the
    request number. Each request is kept in ``requests`` as ``(time, headers, json body)``.
    ``delay`` seconds are slept (asynchronously) before each answer; ``most_in_flight`` says how
    many requests it held at once.
    """

    def __init__(self, script: list[Reply] | Callable[[int], Reply] | None = None, delay: float = 0.0,
                 port: int = 0) -> None:
        super().__init__(port)
        self.script = script or [(200, {}, {"message": "stored"})]
        self.delay = delay
        self.requests: list[tuple[float, dict[str, str], Any]] = []
        self.paths: list[str] = []
        self.answered: list[int] = []  # request numbers whose answer was written
        self.in_flight = 0  # requests read and not yet answered
        self.most_in_flight = 0  # the most at once
        self.arrived_with: list[int] = []  # per request: how many were in flight as it arrived

    def _reply(self, n: int) -> Reply:
        if callable(self.script):
            return self.script(n)
        return self.script[min(n, len(self.script) - 1)]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        n = len(self.requests)
        self.requests.append((time.monotonic(), dict(request.headers), body))
        self.paths.append(request.path)
        self.arrived_with.append(self.in_flight)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        status, headers, payload = self._reply(n)
        if callable(payload):
            payload = payload(body)
        self.answered.append(n)
        if isinstance(payload, bytes):
            return web.Response(status=status, headers=headers, body=payload)
        return web.json_response(payload, status=status, headers=headers)

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    @property
    def bodies(self) -> list[Any]:
        return [b for _, _, b in self.requests]

    def stored_ids(self) -> set[str]:
        """event_ids of every record answered with a 2xx (single or batch route)."""
        ids: set[str] = set()
        for n in list(self.answered):
            status = self._reply(n)[0]
            body = self.requests[n][2]
            if not 200 <= status < 300 or not isinstance(body, dict):
                continue
            records = body.get("records", [body])
            ids.update(r["event_id"] for r in records if isinstance(r, dict) and "event_id" in r)
        return ids


class ResettingServer(ScriptedServer):
    """Stores a record, then drops the connection before answering, the first time it sees it;
    answers 200 the next time. ``stored`` counts how often each event_id was stored."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[str, int] = {}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        event_id = body["event_id"]
        first = event_id not in self.stored
        self.stored[event_id] = 1  # idempotent: a repeat is not stored twice
        self.requests.append((time.monotonic(), dict(request.headers), body))
        if first:
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("reset after storing")
        return web.json_response({"message": "already stored"})


class SilentServer:
    """Accepts TCP connections and never answers: a real timeout, not a simulated one."""

    def __enter__(self) -> SilentServer:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)
            except OSError:
                continue

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def closed_port() -> int:
    """A loopback port with nothing listening (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
