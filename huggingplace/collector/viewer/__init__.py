"""The viewer: the collector's own web pages at ``/`` (sessions, a session's turns and step
waterfalls, a record, every record, an overview), live through the same event stream as
``huggingplace tail``.

Local-first: no build step, no CDN, no inline script. Templates are Jinja2 with autoescaping,
so whatever a user logged renders as text. It needs the ``viewer`` extra
(``pip install 'huggingplace[viewer]'``); without it the JSON routes still serve and ``/`` says
what to install. Pages are org-scoped by the same keys: a login form (or a one-time link that
``huggingplace serve`` prints on loopback) sets an HttpOnly, SameSite=Strict cookie.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional
from urllib.parse import urlencode

from aiohttp import web

from ..._models import utcnow
from ..._serialize import format_timestamp
from .._app import COOKIE, LOGINS_KEY, RECORD_PARAMS, SESSION_PARAMS, STORE_KEY, db, request_org
from .._logins import LIFETIME
from .._query import SORTS, WINDOWS, Query, QueryError, parse_query
from .._store import hash_key

__all__ = ["install", "available", "mint_login_link"]

HERE = Path(__file__).parent
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
MISSING = "The viewer needs its extra: pip install 'huggingplace[viewer]' (Jinja2, aiohttp-jinja2).\n"


def available() -> bool:
    try:
        import aiohttp_jinja2  # noqa: F401
        import jinja2  # noqa: F401
    except ImportError:
        return False
    return True


def mint_login_link(app: web.Application, org: str) -> str:
    """A path that logs a browser into ``org`` once, within an hour (printed by ``serve`` on
    loopback)."""
    return f"/login/{app[LOGINS_KEY].mint_link(org)}"


@web.middleware
async def _headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    if not response.prepared:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def install(app: web.Application) -> None:
    """Add the viewer's pages to the collector's app (or a page saying what to install)."""
    app.middlewares.append(_headers)
    if not available():
        async def missing(request: web.Request) -> web.Response:
            return web.Response(status=501, text=MISSING)

        app.router.add_get("/", missing)
        return
    import aiohttp_jinja2
    import jinja2

    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined, default_helpers=False,
    )
    env.filters.update(ms=_ms, when=_when, pretty=_pretty, short=_short)
    env.globals.update(SORTS=list(SORTS), WINDOWS=list(WINDOWS), qs=urlencode)
    app.router.add_get("/", sessions_page)
    app.router.add_get("/records", records_page)
    app.router.add_get("/overview", overview_page)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/login/{token}", login_link)
    app.router.add_post("/logout", logout)
    app.router.add_get("/sessions/{session_id:.+}", session_page)
    app.router.add_get("/records/{event_id}", record_page)
    app.router.add_get("/fragments/session/{session_id:.+}", session_row)
    app.router.add_get("/fragments/turn/{event_id}", turn_fragment)
    app.router.add_get("/fragments/record/{event_id}", record_row)
    app.router.add_static("/static/", HERE / "static", append_version=True)


# ---- filters ---------------------------------------------------------------------------------
def _ms(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _when(value: Any) -> str:
    return value.replace("T", " ").replace("Z", "")[:19] if isinstance(value, str) else ""


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _short(value: Any, n: int = 120) -> str:
    text = value if isinstance(value, str) else ""
    return text if len(text) <= n else text[: n - 1] + "…"


# ---- pages -----------------------------------------------------------------------------------
def _render(name: str, request: web.Request, context: dict[str, Any], status: int = 200) -> web.Response:
    import aiohttp_jinja2

    response = aiohttp_jinja2.render_template(name, request, {"path": request.path, **context}, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def _org_or_login(request: web.Request) -> str:
    org = await request_org(request)
    if org is None:
        target = request.path_qs if request.path.startswith("/") else "/"
        raise web.HTTPSeeOther("/login?" + urlencode({"next": target}))
    return org


def _query(request: web.Request, allowed: tuple[str, ...]) -> tuple[Optional[Query], Optional[str]]:
    try:
        return parse_query(request.query, allowed), None
    except QueryError as exc:
        return None, str(exc)


async def _list(request: web.Request, template: str, allowed: tuple[str, ...], rows: str,
                fetch: Callable[[str, Query], tuple[list[dict[str, Any]], Optional[str]]]) -> web.Response:
    """A filtered, cursor-paged list page; a bad parameter is shown on the page (400)."""
    org = await _org_or_login(request)
    query, problem = _query(request, allowed)
    if query is None:
        return _render(template, request, {"org": org, "problem": problem, rows: [], "query": Query(),
                                           "next_cursor": None}, status=400)
    found, cursor = await db(request, fetch, org, query)
    return _render(template, request, {"org": org, "problem": None, rows: found, "query": query,
                                       "next_cursor": cursor})


async def sessions_page(request: web.Request) -> web.Response:
    return await _list(request, "sessions.html", SESSION_PARAMS, "sessions", request.app[STORE_KEY].sessions_page)


async def records_page(request: web.Request) -> web.Response:
    return await _list(request, "records.html", RECORD_PARAMS, "records", request.app[STORE_KEY].records_page)


def _turns(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from ._charts import waterfall

    return [{"record": r, "bars": waterfall(r.get("step_data") or [])} for r in records]


async def session_page(request: web.Request) -> web.Response:
    org = await _org_or_login(request)
    session_id = request.match_info["session_id"]
    store = request.app[STORE_KEY]
    records = await db(request, store.session_records, org, session_id)
    if not records:  # another org's session is as absent as one that never was
        return _render("missing.html", request, {"org": org, "what": f"session {session_id}"}, status=404)
    summary = await db(request, store.session_summary, org, session_id)
    derived = any((r.get("metaData") or {}).get("session_derived") for r in records)
    return _render("session.html", request, {"org": org, "session_id": session_id, "turns": _turns(records),
                                             "summary": summary, "derived": derived})


async def record_page(request: web.Request) -> web.Response:
    org = await _org_or_login(request)
    event_id = request.match_info["event_id"]
    record = await db(request, request.app[STORE_KEY].record, org, event_id)
    if record is None:
        return _render("missing.html", request, {"org": org, "what": f"record {event_id}"}, status=404)
    return _render("record.html", request, {"org": org, "record": record, "item": _turns([record])[0],
                                            "raw": _pretty(record)})


async def overview_page(request: web.Request) -> web.Response:
    from ._charts import columns, hbars, polyline

    org = await _org_or_login(request)
    query, problem = _query(request, ("window",))
    window = query.window if query is not None else "1h"
    data = await db(request, request.app[STORE_KEY].overview, org, window, format_timestamp(utcnow()))
    buckets = data["buckets"]
    rate = columns([(b["at"], b["per_minute"]) for b in buckets])
    errors = polyline([b["errors"] / b["records"] if b["records"] else 0.0 for b in buckets], top=1.0)
    top = max((b["latency_p95"] or 0.0 for b in buckets), default=0.0) or 1.0
    p50 = polyline([b["latency_p50"] for b in buckets], top=top)
    p95 = polyline([b["latency_p95"] for b in buckets], top=top)
    models = hbars([(m["model"], float(m["tokens"])) for m in data["models"]])
    return _render("overview.html", request, {"org": org, "problem": problem, "data": data, "rate": rate,
                                              "errors": errors, "p50": p50, "p95": p95, "latency_top": top,
                                              "models": models, "window": window})


# ---- fragments: what the live stream inserts, drawn by the same macros as the pages ------------
async def _fragment(request: web.Request, template: str, fetch: Callable[[str, str], Any], match: str,
                    shape: Callable[[Any], dict[str, Any]]) -> web.Response:
    org = await _org_or_login(request)
    found = await db(request, fetch, org, request.match_info[match])
    if found is None:  # another org's id is as absent as one that never was
        raise web.HTTPNotFound()
    return _render(template, request, shape(found))


async def session_row(request: web.Request) -> web.Response:
    return await _fragment(request, "fragment_session.html", request.app[STORE_KEY].session_summary, "session_id",
                           lambda found: {"s": found})


async def turn_fragment(request: web.Request) -> web.Response:
    return await _fragment(request, "fragment_turn.html", request.app[STORE_KEY].record, "event_id",
                           lambda found: {"item": _turns([found])[0]})


async def record_row(request: web.Request) -> web.Response:
    return await _fragment(request, "fragment_record.html", request.app[STORE_KEY].record_summary, "event_id",
                           lambda found: {"r": found})


# ---- login -----------------------------------------------------------------------------------
def _safe_next(value: Optional[str]) -> str:
    """Only a path on this server (never ``//host`` or a scheme) is followed after login."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _logged_in(request: web.Request, org: str, key_hash: Optional[str], target: str) -> web.Response:
    token = request.app[LOGINS_KEY].create(org, key_hash)
    response = web.Response(status=303, headers={"Location": _safe_next(target)})
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/", secure=request.secure,
                        max_age=int(LIFETIME))
    return response


async def login_form(request: web.Request) -> web.Response:
    return _render("login.html", request, {"problem": None, "next": _safe_next(request.query.get("next"))})


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    key = str(form.get("key") or "").strip()
    target = _safe_next(str(form.get("next") or "/"))
    org = await db(request, request.app[STORE_KEY].org_for_key, key) if key else None
    if org is None:
        return _render("login.html", request, {"problem": "That key is not known to this collector.",
                                               "next": target}, status=401)
    return _logged_in(request, org, hash_key(key), target)


async def login_link(request: web.Request) -> web.Response:
    org = request.app[LOGINS_KEY].use_link(request.match_info["token"])
    if org is None:
        return _render("login.html", request, {"problem": "That login link was used already, expired (links last "
                                               "an hour) or is unknown; paste a key instead.", "next": "/"},
                       status=401)
    return _logged_in(request, org, None, "/")


async def logout(request: web.Request) -> web.Response:
    token = request.cookies.get(COOKIE)
    if token:
        request.app[LOGINS_KEY].end(token)
    response = web.Response(status=303, headers={"Location": "/login"})
    response.del_cookie(COOKIE, path="/")
    return response
