"""The collector's HTTP routes on ``aiohttp.web``.

SQLite work runs on one dedicated thread, so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Optional, TypeVar

from aiohttp import web

from .._config import ROUTE
from .._models import utcnow
from .._serialize import format_timestamp
from .._wire import BATCH_HEADER
from ._ingest import LIMITS, IngestError, normalize_record, parse_body
from ._live import Follower, Hub, sse, summary
from ._logins import Logins
from ._query import FILTERS, QueryError, parse_query
from ._store import Store

__all__ = ["create_app", "BATCH_ROUTE", "STORE_KEY", "HUB_KEY", "LOGINS_KEY", "request_org", "db"]

logger = logging.getLogger("huggingplace.collector")

BATCH_ROUTE = ROUTE + "/batch"
STORE_KEY: web.AppKey[Store] = web.AppKey("store", Store)
HUB_KEY: web.AppKey[Hub] = web.AppKey("hub", Hub)
LOGINS_KEY: web.AppKey[Logins] = web.AppKey("logins", Logins)  # viewer cookie tokens and one-time links
COOKIE = "hp_viewer"
KEEPALIVE_SECONDS = 15.0
_EXECUTOR: web.AppKey[ThreadPoolExecutor] = web.AppKey("executor", ThreadPoolExecutor)
T = TypeVar("T")


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status, headers={BATCH_HEADER: BATCH_ROUTE})


async def db(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` on the store's own thread (SQLite never blocks the loop)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[_EXECUTOR], fn, *args)


_db = db


async def request_org(request: web.Request) -> Optional[str]:
    """The org of the request: its Bearer key, else the viewer's login cookie; None when neither."""
    if request.headers.get("Authorization"):
        return await _org(request)
    token = request.cookies.get(COOKIE)
    login = request.app[LOGINS_KEY].get(token) if token else None
    if login is None:
        return None
    if login.key_hash is not None and await _db(request, request.app[STORE_KEY].org_for_hash, login.key_hash) is None:
        request.app[LOGINS_KEY].end(token or "")  # its key was revoked: so is the login
        return None
    return login.org


async def _reader_org(request: web.Request) -> str:
    org = await request_org(request)
    if org is None:
        return await _org(request)  # raises the 401 that says what to send
    return org


async def _org(request: web.Request) -> str:
    """The org of the request's key; raises a JSON 401 that never repeats the key."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "missing `Authorization: Bearer <api key>` header"}),
            content_type="application/json",
        )
    org = await _db(request, request.app[STORE_KEY].org_for_key, key.strip())
    if org is None:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "unknown API key (check HUGGINGPLACE_API_KEY)"}), content_type="application/json"
        )
    return org


async def _json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > LIMITS["body_bytes"]:
        raise _TooLarge(request.content_length)
    try:
        raw = await asyncio.wait_for(request.read(), LIMITS["body_seconds"])
    except asyncio.TimeoutError:
        raise IngestError(408, f"the body did not arrive within {LIMITS['body_seconds']} s") from None
    except web.HTTPRequestEntityTooLarge:
        raise _TooLarge(None) from None
    except Exception as exc:  # a body that does not arrive or unzip: the client's, not ours
        raise IngestError(400, f"the body could not be read ({type(exc).__name__}); check Content-Encoding") from None
    return parse_body(raw)


class _TooLarge(Exception):
    def __init__(self, size: Optional[int]) -> None:
        super().__init__(size)
        self.size = size

    def response(self) -> web.Response:
        size = f"{self.size} bytes" if self.size is not None else "the body"
        return _error(413, f"{size} exceeds the limit of {LIMITS['body_bytes']} bytes", limit=LIMITS["body_bytes"])


def _check_org(record: dict[str, Any], org: str) -> None:
    if record["org_id"] != org:
        raise IngestError(403, f"this API key does not belong to org_id {record['org_id']!r}", "org_id")


async def store_one(request: web.Request) -> web.Response:
    org = await _org(request)
    try:
        body = await _json_body(request)
        record = normalize_record(body, idempotency_key=request.headers.get("Idempotency-Key"))
        _check_org(record, org)
    except _TooLarge as exc:
        return exc.response()
    except IngestError as exc:
        return _error(exc.status, exc.message, **({"field": exc.field} if exc.field else {}))
    created = await _db(request, request.app[STORE_KEY].insert, record)
    if created:
        _publish(request, org, [record])
    return web.json_response(
        {"message": "stored" if created else "already stored", "event_id": record["event_id"]},
        status=200,
        headers={BATCH_HEADER: BATCH_ROUTE},
    )


async def store_batch(request: web.Request) -> web.Response:
    """Many records in one request: ``{"records": [...]}``; one result per record, in order."""
    org = await _org(request)
    try:
        body = await _json_body(request)
    except _TooLarge as exc:
        return exc.response()
    except IngestError as exc:
        return _error(exc.status, exc.message)
    records = body.get("records") if isinstance(body, dict) else body
    if not isinstance(records, list):
        return _error(400, "the body must be {\"records\": [record, ...]}")
    if len(records) > LIMITS["batch_records"]:
        return _error(413, f"{len(records)} records exceed the batch limit of {LIMITS['batch_records']}")
    results: list[dict[str, Any]] = []
    good: list[tuple[int, dict[str, Any]]] = []
    for i, raw in enumerate(records):
        try:
            record = normalize_record(raw)
            _check_org(record, org)
        except IngestError as exc:
            given = raw.get("event_id") if isinstance(raw, dict) else None
            results.append({"status": exc.status, "error": exc.message, "field": exc.field,
                            "event_id": given if isinstance(given, str) else None})
            continue
        results.append({})
        good.append((i, record))
    store = request.app[STORE_KEY]
    try:
        created: list[Optional[bool]] = list(await _db(request, store.insert_many, [r for _, r in good]))
    except Exception:  # one record the store cannot take must not cost the others: one by one
        created = []
        for _, record in good:
            try:
                created.append(await _db(request, store.insert, record))
            except Exception as exc:
                logger.warning("record %s could not be stored: %s", record["event_id"], type(exc).__name__)
                created.append(None)
    _publish(request, org, [r for (_, r), new in zip(good, created) if new])
    for (i, record), was_new in zip(good, created):
        if was_new is None:
            results[i] = {"status": 422, "event_id": record["event_id"], "error": "the record could not be stored"}
            continue
        message = "stored" if was_new else "already stored"
        results[i] = {"status": 200, "event_id": record["event_id"], "message": message}
    return web.json_response({"results": results}, headers={BATCH_HEADER: BATCH_ROUTE})


def _publish(request: web.Request, org: str, records: list[dict[str, Any]]) -> None:
    """Tell followers (the viewer, ``huggingplace tail``) about new records; free without them."""
    hub = request.app[HUB_KEY]
    if hub:
        hub.publish(org, [summary(r) for r in records])


def _query(request: web.Request, allowed: tuple[str, ...]) -> Any:
    try:
        return parse_query(request.query, allowed)
    except QueryError as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": str(exc), "param": exc.param}),
                                 content_type="application/json") from None


SESSION_PARAMS = (*FILTERS, "sort", "limit", "cursor")
RECORD_PARAMS = (*FILTERS, "session_id", "limit", "cursor")


async def list_sessions(request: web.Request) -> web.Response:
    """The org's sessions: filters, sorts, cursor paging (``next_cursor`` until the last page)."""
    org = await _reader_org(request)
    query = _query(request, SESSION_PARAMS)
    sessions, cursor = await _db(request, request.app[STORE_KEY].sessions_page, org, query)
    return web.json_response({"sessions": sessions, "limit": query.limit, "next_cursor": cursor})


async def list_records(request: web.Request) -> web.Response:
    """Every record of the org, with or without a session, newest first."""
    org = await _reader_org(request)
    query = _query(request, RECORD_PARAMS)
    records, cursor = await _db(request, request.app[STORE_KEY].records_page, org, query)
    return web.json_response({"records": records, "limit": query.limit, "next_cursor": cursor})


async def overview(request: web.Request) -> web.Response:
    org = await _reader_org(request)
    query = _query(request, ("window",))
    now = format_timestamp(utcnow())
    return web.json_response(await _db(request, request.app[STORE_KEY].overview, org, query.window, now))


async def stream(request: web.Request) -> web.StreamResponse:
    """New records as server-sent events (``event: record``), optionally one session's or only
    errors; a comment every 15 s keeps proxies from closing it."""
    org = await _reader_org(request)
    unknown = sorted(set(request.query) - {"session_id", "errors"})
    if unknown:
        return _error(400, f"unknown query parameter(s) {', '.join(unknown)}; this route takes: session_id, errors",
                      param=unknown[0])
    follower = Follower(org, request.query.get("session_id") or None, request.query.get("errors") in ("1", "true"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    hub = request.app[HUB_KEY]
    hub.followers.add(follower)
    reported = 0
    try:
        await response.write(b": following\n\n")
        while True:
            try:
                count, chunk = await asyncio.wait_for(follower.queue.get(), KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if not count:
                break
            if follower.lost > reported:
                await response.write(sse("lost", {"records": follower.lost - reported}))
                reported = follower.lost
            await response.write(chunk)
    except ConnectionResetError:  # the follower went away
        pass
    finally:
        hub.followers.discard(follower)
    return response


async def session_records(request: web.Request) -> web.Response:
    org = await _reader_org(request)
    _query(request, ())
    session_id = request.match_info["session_id"]
    records = await _db(request, request.app[STORE_KEY].session_records, org, session_id)
    if not records:
        return _error(404, f"no session {session_id!r} in this org")
    return web.json_response({"session_id": session_id, "records": records})


async def one_record(request: web.Request) -> web.Response:
    org = await _reader_org(request)
    _query(request, ())
    event_id = request.match_info["event_id"]
    record = await _db(request, request.app[STORE_KEY].record, org, event_id)
    if record is None:
        return _error(404, f"no record {event_id!r} in this org")
    return web.json_response(record)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    from ._openapi import document

    return web.json_response(document())


@web.middleware
async def _server_timing(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """``Server-Timing: app;dur=<ms>`` on every answer that is not a stream (the viewer benchmark
    reads it)."""
    started = asyncio.get_running_loop().time()
    response = await handler(request)
    if not response.prepared:
        response.headers["Server-Timing"] = f"app;dur={(asyncio.get_running_loop().time() - started) * 1000:.2f}"
    return response


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error is a JSON body naming the problem, including aiohttp's own 404/405."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:  # JSON already, or a redirect
            raise
        return _error(exc.status, exc.reason if exc.status != 404 else f"no route {request.method} {request.path}")
    except IngestError as exc:
        return _error(exc.status, exc.message, **({"field": exc.field} if exc.field else {}))


def create_app(store: Store) -> web.Application:
    app = web.Application(client_max_size=LIMITS["body_bytes"] + 1024, middlewares=[_server_timing, _json_errors])
    app[STORE_KEY] = store
    app[HUB_KEY] = Hub()
    app[LOGINS_KEY] = Logins()
    app[_EXECUTOR] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="huggingplace-collector-db")
    app.router.add_post(ROUTE, store_one)
    app.router.add_post(BATCH_ROUTE, store_batch)
    app.router.add_get("/v2/sessions", list_sessions)
    app.router.add_get("/v2/sessions/{session_id}", session_records)
    app.router.add_get("/v2/records", list_records)
    app.router.add_get("/v2/records/{event_id}", one_record)
    app.router.add_get("/v2/overview", overview)
    app.router.add_get("/v2/stream", stream)
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi)

    async def _end_streams(app: web.Application) -> None:
        for follower in list(app[HUB_KEY].followers):
            follower.end()

    async def _shutdown(app: web.Application) -> None:
        app[_EXECUTOR].shutdown(wait=True)

    app.on_shutdown.append(_end_streams)
    app.on_cleanup.append(_shutdown)
    from . import viewer

    viewer.install(app)
    return app
