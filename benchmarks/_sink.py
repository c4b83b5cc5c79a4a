"""A fast loopback endpoint with only the contract's route (no batch route): answers 200 to
every POST (after ``argv[2]`` seconds, when given: an endpoint far away) and counts records.
``GET /count`` tells how many arrived, ``POST /down`` and ``POST /up`` switch it between refusing
(503) and storing. Runs in its own process."""

from __future__ import annotations

import asyncio
import sys
import time

from aiohttp import web

state = {"count": 0, "down": False, "first": 0.0, "last": 0.0}


MARKER = b"hp-bench-span"  # the OpenTelemetry peer names its spans so; each occurrence is one record


DELAY = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0  # seconds per answer: an endpoint far away


async def store(request: web.Request) -> web.Response:
    body = await request.read()
    if DELAY:
        await asyncio.sleep(DELAY)
    if state["down"]:
        return web.json_response({"error": "down"}, status=503)
    now = time.time()
    if not state["first"]:
        state["first"] = now
    state["last"] = now
    state["count"] += body.count(MARKER) if request.path == "/v1/traces" else 1
    return web.json_response({"message": "stored"})


async def count(request: web.Request) -> web.Response:
    return web.json_response(state)


async def switch(request: web.Request) -> web.Response:
    state["down"] = request.match_info["how"] == "down"
    if not state["down"]:
        state["first"] = state["last"] = 0.0
    return web.json_response(state)


async def reset(request: web.Request) -> web.Response:
    state.update(count=0, first=0.0, last=0.0)
    return web.json_response(state)


app = web.Application()
app.router.add_post("/v2/chatgpt/store_generated_response", store)
app.router.add_post("/v1/traces", store)  # OTLP/HTTP, for the OpenTelemetry peer
app.router.add_post("/runs/multipart", store)  # LangSmith's batch ingest
app.router.add_post("/runs/batch", store)
app.router.add_get("/info", lambda r: web.json_response({"version": "0.0", "batch_ingest_config": {}}))
app.router.add_get("/count", count)
app.router.add_post("/reset", reset)
app.router.add_post("/switch/{how}", switch)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
