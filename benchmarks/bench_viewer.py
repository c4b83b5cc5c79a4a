"""The viewer at size: every page's server time with 100,000 records in the database, and what
20 open live viewers cost ingestion.

    python benchmarks/bench_viewer.py [--records 100000] [--viewers 20]

The database is built straight through the collector's store (as if ingested), then
``huggingplace serve`` runs on it in its own process. Page times are the server's own
``Server-Timing`` header (median and worst of 5 loads). Ingestion is batches of 500 records
posted to the batch route, first with nobody following, then with N followers of the live stream
(in another process); the figure is the ratio of records per second. Everything is removed at
the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import requests

KEY, ORG = "hp_bench_viewer_key", "org-bench"
WORDS = ["refund", "shipping", "weather", "invoice", "password", "account", "order", "delivery", "express", "tracking"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def record(i: int, now: dt.datetime, sessions: int) -> dict[str, object]:
    from huggingplace._serialize import format_timestamp

    when = now - dt.timedelta(seconds=random.uniform(0, 7 * 86400))
    words = " ".join(random.choices(WORDS, k=8))
    steps = [{"step_name": "retrieve", "status": "ok", "time_ms": random.uniform(5, 50)},
             {"step_name": "generate", "status": "ok", "time_ms": random.uniform(100, 900),
              "steps": [{"step_name": "call-model", "status": "ok", "time_ms": random.uniform(90, 800)}]}]
    return {
        "event_id": uuid.uuid4().hex, "org_id": ORG, "mode": "prod", "user_prompt": f"question {i}: {words}",
        "ai_response": f"answer {i}: {words}", "session_id": f"s-{i % sessions}" if i % 10 else None,
        "user_id": f"u-{i % 500}", "llm_model": random.choice(["gpt-4o", "gpt-4o-mini", "claude-3-5"]),
        "status": "error" if i % 37 == 0 else "ok", "timestamp": format_timestamp(when),
        "token_count": 100 + i % 400, "token_usage": {"prompt_tokens": 60, "completion_tokens": 40 + i % 400,
                                                      "total_tokens": 100 + i % 400},
        "response_time": random.uniform(100, 2000), "metaData": {"app": "bench"}, "step_data": steps,
    }


def build(db: str, n: int) -> None:
    from huggingplace.collector._store import Store

    store = Store(db)
    store.add_key(KEY, ORG)
    now = dt.datetime.now(dt.timezone.utc)
    for start in range(0, n, 5000):
        store.insert_many([record(i, now, n // 8) for i in range(start, min(n, start + 5000))])
    store.close()


def serve(db: str, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "huggingplace", "serve", "--db", db, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(("See what you logged", "viewer off")):
            break
    return proc


def page_times(url: str) -> list[tuple[str, float, float]]:
    http = requests.Session()
    http.post(url + "/login", data={"key": KEY}, allow_redirects=False, timeout=30)
    api = {"Authorization": f"Bearer {KEY}"}
    some = requests.get(url + "/v2/records", params={"limit": "1"}, headers=api, timeout=30).json()["records"][0]
    session = requests.get(url + "/v2/sessions", params={"limit": "1"}, headers=api, timeout=30).json()["sessions"][0]
    pages = [
        "/", "/?q=refund+tracking", "/?sort=latency", "/?sort=tokens", "/?model=gpt-4o&status=error",
        "/?user_id=u-7", "/records", "/records?q=invoice", f"/sessions/{session['session_id']}",
        f"/records/{some['event_id']}", "/overview", "/overview?window=24h", "/overview?window=7d",
        "/v2/sessions", "/v2/records?q=weather",
    ]
    out = []
    for path in pages:
        durations = []
        for _ in range(5):
            answer = http.get(url + path, headers=api if path.startswith("/v2") else {}, timeout=60)
            assert answer.status_code == 200, (path, answer.status_code)
            durations.append(float(re.search(r"dur=([\d.]+)", answer.headers["Server-Timing"]).group(1)))
        out.append((path, statistics.median(durations), max(durations)))
    return out


FOLLOWERS = """
import asyncio, sys, aiohttp
async def main(url, n, key):
    async with aiohttp.ClientSession() as http:
        async def follow():
            async with http.get(url + "/v2/stream", headers={"Authorization": "Bearer " + key}) as r:
                async for _ in r.content:
                    pass
        print("following", flush=True)
        await asyncio.gather(*(follow() for _ in range(n)))
asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


def ingest(url: str, batches: int) -> float:
    now = dt.datetime.now(dt.timezone.utc)
    bodies = [json.dumps({"records": [record(i, now, 1000) for i in range(b * 500, (b + 1) * 500)]})
              for b in range(batches)]
    http = requests.Session()
    started = time.perf_counter()
    for body in bodies:
        answer = http.post(url + "/v2/chatgpt/store_generated_response/batch", data=body, timeout=120,
                           headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        assert answer.status_code == 200
    return batches * 500 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="huggingplace-bench-viewer-")
    db = os.path.join(folder, "viewer.db")
    proc = followers = None
    try:
        started = time.perf_counter()
        build(db, args.records)
        print(f"built {args.records} records in {time.perf_counter() - started:.1f} s "
              f"({os.path.getsize(db) / 1e6:.0f} MB)")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = serve(db, port)
        print(f"\nserver time per page with {args.records} records (median / worst of 5, ms):")
        worst = 0.0
        for path, median, most in page_times(url):
            worst = max(worst, most)
            print(f"  {path:45s} {median:7.1f} {most:7.1f}")
        print(f"  slowest page: {worst:.1f} ms (goal: under 100 ms)")
        ingest(url, 2)  # warm up
        alone = statistics.median(ingest(url, args.batches) for _ in range(3))
        followers = subprocess.Popen([sys.executable, "-c", FOLLOWERS, url, str(args.viewers), KEY],
                                     stdout=subprocess.PIPE, text=True)
        assert followers.stdout is not None and followers.stdout.readline().strip() == "following"
        time.sleep(1.0)
        followed = statistics.median(ingest(url, args.batches) for _ in range(3))
        print(f"\ningestion: {alone:,.0f} records/s alone, {followed:,.0f} records/s with {args.viewers} live "
              f"viewers: {followed / alone:.2f}x (goal: at least 0.90x)")
    finally:
        for p in (followers, proc):
            if p is not None:
                p.terminate()
                p.wait(10)
                if p.stdout:
                    p.stdout.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
