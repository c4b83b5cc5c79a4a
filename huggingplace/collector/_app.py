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
from .._wire import BATCH_HEADER
from ._ingest import LIMITS, IngestError, normalize_record, parse_body
from ._store import Store

__all__ = ["create_app", "BATCH_ROUTE", "STORE_KEY"]

logger = logging.getLogger("huggingplace.collector")

BATCH_ROUTE = ROUTE + "/batch"
STORE_KEY: web.AppKey[Store] = web.AppKey("store", Store)
_EXECUTOR: web.AppKey[ThreadPoolExecutor] = web.AppKey("executor", ThreadPoolExecutor)
T = TypeVar("T")


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status, headers={BATCH_HEADER: BATCH_ROUTE})


async def _db(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[_EXECUTOR], fn, *args)


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
    for (i, record), was_new in zip(good, created):
        if was_new is None:
            results[i] = {"status": 422, "event_id": record["event_id"], "error": "the record could not be stored"}
            continue
        message = "stored" if was_new else "already stored"
        results[i] = {"status": 200, "event_id": record["event_id"], "message": message}
    return web.json_response({"results": results}, headers={BATCH_HEADER: BATCH_ROUTE})


def _page(request: web.Request, name: str, default: int, most: int) -> int:
    raw = request.query.get(name, str(default))
    if not (raw.isascii() and raw.isdigit()) or int(raw) > most:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"`{name}` must be a whole number from 0 to {most}"}),
            content_type="application/json",
        )
    return int(raw)


async def list_sessions(request: web.Request) -> web.Response:
    org = await _org(request)
    limit = _page(request, "limit", 20, 200)
    offset = _page(request, "offset", 0, 10**9)
    sessions = await _db(request, lambda: request.app[STORE_KEY].sessions(org, limit=limit, offset=offset))
    return web.json_response({"sessions": sessions, "limit": limit, "offset": offset})


async def session_records(request: web.Request) -> web.Response:
    org = await _org(request)
    session_id = request.match_info["session_id"]
    records = await _db(request, request.app[STORE_KEY].session_records, org, session_id)
    if not records:
        return _error(404, f"no session {session_id!r} in this org")
    return web.json_response({"session_id": session_id, "records": records})


async def one_record(request: web.Request) -> web.Response:
    org = await _org(request)
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
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error is a JSON body naming the problem, including aiohttp's own 404/405."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        return _error(exc.status, exc.reason if exc.status != 404 else f"no route {request.method} {request.path}")
    except IngestError as exc:
        return _error(exc.status, exc.message, **({"field": exc.field} if exc.field else {}))


def create_app(store: Store) -> web.Application:
    app = web.Application(client_max_size=LIMITS["body_bytes"] + 1024, middlewares=[_json_errors])
    app[STORE_KEY] = store
    app[_EXECUTOR] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="huggingplace-collector-db")
    app.router.add_post(ROUTE, store_one)
    app.router.add_post(BATCH_ROUTE, store_batch)
    app.router.add_get("/v2/sessions", list_sessions)
    app.router.add_get("/v2/sessions/{session_id}", session_records)
    app.router.add_get("/v2/records/{event_id}", one_record)
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi)

    async def _shutdown(app: web.Application) -> None:
        app[_EXECUTOR].shutdown(wait=True)

    app.on_cleanup.append(_shutdown)
    return app
