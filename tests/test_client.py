"""Both clients over real HTTP on loopback: every status row, retries, timeouts, the event loop."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from typing import Any

import attrs
import pytest

from huggingplace import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncHuggingPlace,
    AuthenticationError,
    BadRequestError,
    HuggingPlace,
    HuggingPlaceError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ValidationError,
)

from .conftest import KEY, LiveCollector
from .servers import ScriptedServer, SilentServer, closed_port

KINDS = ["sync", "async"]


def _fast(client: Any, **policy: Any) -> Any:
    """Shrink the backoff so retry tests take milliseconds; the policy logic is unchanged."""
    client._policy = attrs.evolve(client._policy, initial=0.01, maximum=0.02, **policy)
    return client


def send(kind: str, base_url: str, *, fields: dict[str, Any] | None = None, **options: Any) -> Any:
    """One log() through a fresh client of either kind; returns the result or raises."""
    fields = fields or {"user_prompt": "q", "response": "a"}
    options = {"api_key": KEY, "org_id": "org-a", "base_url": base_url, **options}
    if kind == "sync":
        with _fast(HuggingPlace(**options)) as hp:
            return hp.log(**fields)

    async def main() -> Any:
        async with _fast(AsyncHuggingPlace(**options)) as hp:
            return await hp.log(**fields)

    return asyncio.run(main())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [200, 201, 202])
def test_any_2xx_is_stored(kind: str, status: int) -> None:
    """201 is success (the public SDKs' log() counts it as failure)."""
    with ScriptedServer([(status, {}, {"message": "ok"})]) as server:
        result = send(kind, server.url)
    assert result.status_code == status
    assert len(server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "status, error",
    [
        (400, BadRequestError),
        (422, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (413, RequestTooLargeError),
    ],
)
def test_refusals_are_not_retried(kind: str, status: int, error: type[APIStatusError]) -> None:
    """Each non-transient status raises its own exception after exactly one request."""
    with ScriptedServer([(status, {}, {"error": f"refused with {status}"})]) as server:
        with pytest.raises(error) as info:
            send(kind, server.url)
    assert info.value.status_code == status
    assert f"refused with {status}" in info.value.message
    assert len(server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_with_the_same_event_id(kind: str, status: int) -> None:
    """Two transient failures, then 200: stored, and every attempt carried the same event_id."""
    script = [(status, {}, {"error": "busy"}), (status, {}, {"error": "busy"}), (200, {}, {"message": "stored"})]
    with ScriptedServer(script) as server:
        result = send(kind, server.url)
    assert result.status_code == 200
    assert len(server.requests) == 3
    keys = {headers["Idempotency-Key"] for _, headers, _ in server.requests}
    ids = {body["event_id"] for body in server.bodies}
    assert keys == ids == {result.event_id}


@pytest.mark.parametrize("kind", KINDS)
def test_spent_retries_raise_the_last_error(kind: str) -> None:
    with ScriptedServer([(429, {}, {"error": "slow down"})]) as server:
        with pytest.raises(RateLimitError, match="slow down"):
            send(kind, server.url, max_retries=2)
    assert len(server.requests) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_retry_after_seconds_is_honoured(kind: str) -> None:
    """No request comes before the server's Retry-After."""
    script = [(503, {"Retry-After": "0.4"}, {}), (200, {}, {})]
    with ScriptedServer(script) as server:
        send(kind, server.url)
    first, second = server.requests[0][0], server.requests[1][0]
    assert second - first >= 0.4


@pytest.mark.parametrize("kind", KINDS)
def test_retry_after_http_date_is_honoured(kind: str) -> None:
    when = email.utils.formatdate(time.time() + 1.2, usegmt=True)  # whole seconds: up to 1.2 s away
    with ScriptedServer([(429, {"Retry-After": when}, {}), (200, {}, {})]) as server:
        send(kind, server.url)
    assert server.requests[1][0] - server.requests[0][0] >= 0.15


@pytest.mark.parametrize("kind", KINDS)
def test_connection_refused_is_retried_then_raised(kind: str) -> None:
    with pytest.raises(APIConnectionError, match="could not reach"):
        send(kind, f"http://127.0.0.1:{closed_port()}", max_retries=1)


@pytest.mark.parametrize("kind", KINDS)
def test_timeout_is_honoured(kind: str) -> None:
    """A server that never answers raises APITimeoutError (the public SDK waits forever)."""
    with SilentServer() as server:
        with pytest.raises(APITimeoutError, match="within 0.3 s"):
            send(kind, server.url, timeout=0.3, max_retries=0)


@pytest.mark.parametrize("kind", KINDS)
def test_validation_happens_before_the_network(kind: str) -> None:
    with ScriptedServer() as server:
        with pytest.raises(ValidationError, match="token_count"):
            send(kind, server.url, fields={"user_prompt": "q", "response": "a", "token_count": -1})
    assert server.requests == []


@pytest.mark.parametrize("kind", KINDS)
def test_users_never_see_transport_exceptions(kind: str) -> None:
    """Every failure is a HuggingPlaceError; requests/aiohttp errors are only the __cause__."""
    with pytest.raises(HuggingPlaceError) as info:
        send(kind, f"http://127.0.0.1:{closed_port()}", max_retries=0)
    assert type(info.value).__module__.startswith("huggingplace")
    assert info.value.__cause__ is not None


def test_async_log_never_blocks_the_event_loop() -> None:
    """While log() waits on a slow endpoint, other tasks keep running (the public SDK stalls the loop)."""

    async def main() -> tuple[int, int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        with ScriptedServer(delay=0.5) as server:
            async with AsyncHuggingPlace(api_key=KEY, org_id="o", base_url=server.url) as hp:
                task = asyncio.create_task(ticker())
                await hp.log(user_prompt="q", response="a")
                done.set()
                await task
            return ticks, len(server.requests)

    ticks, requests = asyncio.run(main())
    assert requests == 1
    assert ticks >= 10  # a blocking client would let the ticker run once or not at all


def test_async_client_survives_two_event_loops() -> None:
    """asyncio.run twice with one client: a fresh aiohttp session per loop, no 'attached to another loop'."""
    with ScriptedServer() as server:
        hp = AsyncHuggingPlace(api_key=KEY, org_id="o", base_url=server.url)
        asyncio.run(hp.log(user_prompt="q1", response="a"))
        asyncio.run(hp.log(user_prompt="q2", response="a"))

        async def close() -> None:
            await hp.close()

        asyncio.run(close())
    assert [b["user_prompt"] for b in server.bodies] == ["q1", "q2"]


@pytest.mark.parametrize("kind", KINDS)
def test_stats_count_sent_retried_failed(kind: str) -> None:
    script = [(503, {}, {}), (200, {}, {}), (401, {}, {"error": "no"})]
    with ScriptedServer(script) as server:
        options = {"api_key": KEY, "org_id": "o", "base_url": server.url}
        if kind == "sync":
            hp = _fast(HuggingPlace(**options))
            hp.log(user_prompt="q", response="a")
            with pytest.raises(AuthenticationError):
                hp.log(user_prompt="q", response="a")
            stats = hp.stats()
            hp.close()
        else:

            async def main() -> Any:
                async with _fast(AsyncHuggingPlace(**options)) as ahp:
                    await ahp.log(user_prompt="q", response="a")
                    with pytest.raises(AuthenticationError):
                        await ahp.log(user_prompt="q", response="a")
                    return ahp.stats()

            stats = asyncio.run(main())
    assert (stats.sent, stats.retried, stats.failed) == (1, 1, 1)


def test_closed_client_refuses_to_log() -> None:
    with ScriptedServer() as server:
        hp = HuggingPlace(api_key=KEY, org_id="o", base_url=server.url)
        hp.close()
        hp.close()  # idempotent
        with pytest.raises(HuggingPlaceError, match="closed"):
            hp.log(user_prompt="q", response="a")
    assert server.requests == []


@pytest.mark.parametrize("kind", KINDS)
def test_the_key_never_reaches_logs_or_errors(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """With DEBUG logging on everywhere, through retries and failures, the key is never written."""
    caplog.set_level(logging.DEBUG)
    script = [(503, {}, {"error": f"upstream echoed {KEY}"}), (401, {}, {"message": f"bad key {KEY}"})]
    with ScriptedServer(script) as server:
        with pytest.raises(AuthenticationError) as info:
            send(kind, server.url)
    assert KEY not in caplog.text
    assert KEY not in str(info.value) and KEY not in repr(info.value) and KEY not in info.value.message
    assert server.requests[0][1]["Authorization"] == f"Bearer {KEY}"  # it was sent, where it belongs


def test_client_repr_hides_the_key() -> None:
    hp = HuggingPlace(api_key=KEY, org_id="o")
    assert KEY not in repr(hp) and KEY not in repr(hp.options) and KEY not in str(vars(hp).get("_options"))
    hp.close()


def test_closing_a_client_closes_the_connections_it_opened(collector: LiveCollector) -> None:
    """Both clients own their default transport: closing them leaves no unclosed session,
    connector or socket for the interpreter to complain about at exit (-W always::ResourceWarning shows
    every ResourceWarning); a transport you pass stays open, it is yours."""
    import subprocess
    import sys

    code = f"""
import asyncio
from huggingplace import AsyncHuggingPlace, HuggingPlace, MemoryTransport
options = dict(api_key={collector.key!r}, org_id={collector.org!r}, base_url={collector.url!r})

async def main():
    async with AsyncHuggingPlace(**options) as hp:
        await hp.log(user_prompt="q", response="a")
    hp = AsyncHuggingPlace(**options)
    await hp.log(user_prompt="q", response="a")
    await hp.close()

asyncio.run(main())
with HuggingPlace(**options) as hp:
    hp.log(user_prompt="q", response="a")
mine = MemoryTransport()
HuggingPlace(transport=mine, **options).close()
assert not getattr(mine, "closed", False)
print("ok")
"""
    done = subprocess.run([sys.executable, "-W", "always::ResourceWarning", "-c", code], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
    assert done.stderr == ""


def test_sessions_traces_and_wrap_reach_the_client_only_through_its_recorder() -> None:
    """No import cycle and no private reach: ``_session``, ``_wrap`` and ``_recorder`` never
    import the client module nor touch a client's private members."""
    import ast
    import gc
    import re
    from pathlib import Path

    import huggingplace

    package = Path(huggingplace.__file__).parent
    for module in ("_session", "_wrap", "_recorder"):
        source = (package / f"{module}.py").read_text()
        gc.collect()  # CPython 3.11.7 fails an ast.parse that a finalizer interrupts (fixed in 3.11.8)
        gc.disable()
        try:
            tree = ast.parse(source)
        finally:
            gc.enable()
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert "_client" not in imported, module
        assert not re.search(r"\b(?:hp|client|self\._client)\._[a-z]", source), module
