"""What log() costs the caller, how fast records reach the collector, and memory with the
endpoint down. Prints figures and ratios against hand-rolled baselines measured in the same run.

    python benchmarks/bench_log.py [--records 2000] [--down 100000]

Everything talks to a local collector on 127.0.0.1 (started here, temporary database).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import tracemalloc
from typing import Any, Callable

import attrs
import requests

from huggingplace import HuggingPlace
from huggingplace.collector import Collector

ROUTE = "/v2/chatgpt/store_generated_response"


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    p50 = ordered[len(ordered) // 2] / 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000
    return p50, p99


def timed(n: int, call: Callable[[int], Any]) -> list[int]:
    samples = []
    for i in range(n):
        start = time.perf_counter_ns()
        call(i)
        samples.append(time.perf_counter_ns() - start)
    return samples


def record(i: int) -> dict[str, Any]:
    return {
        "user_prompt": f"What were sales in region {i % 7} last quarter?",
        "response": "Sales were 1.2M, up 4% on the quarter before. " * 4,
        "llm_model": "gpt-4o",
        "token_count": 321,
        "metadata": {"feature": "sql-bot", "turn": i},
    }


def hand_payload(i: int, org: str) -> dict[str, Any]:
    r = record(i)
    return {
        "user_prompt": r["user_prompt"], "ai_response": r["response"], "llm_model": "gpt-4o", "token_count": 321,
        "metaData": r["metadata"], "org_id": org, "mode": "prod",
    }


def count(c: Collector) -> int:
    import sqlite3

    with sqlite3.connect(c.db_path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM chat").fetchone()[0])


def wait_count(c: Collector, target: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while count(c) < target and time.monotonic() < deadline:
        time.sleep(0.01)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="hp-bench-")
    try:
        run(tmp)
    finally:  # the collector's database and the spools written while the endpoint was down
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: str) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--down", type=int, default=100_000)
    args = parser.parse_args()
    n = args.records
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {n} records per run\n")

    with Collector(os.path.join(tmp, "bench.db")) as c:
        assert c.dev_key
        key, org, url = c.dev_key, c.dev_org, c.url
        auth = {"Authorization": f"Bearer {key}"}

        # ---- caller-thread cost of one log() ------------------------------------------------
        print("== caller-thread cost of one call (µs)")
        post = timed(n, lambda i: requests.post(url + ROUTE, json=hand_payload(i, org), headers=auth, timeout=10))
        session = requests.Session()
        keep = timed(n, lambda i: session.post(url + ROUTE, json=hand_payload(i, org), headers=auth, timeout=10))
        fg = HuggingPlace(api_key=key, org_id=org, base_url=url)
        fg_samples = timed(n, lambda i: fg.log(**record(i)))
        fg.close()
        rows: list[tuple[str, list[int]]] = [
            ("hand-rolled requests.post per record", post),
            ("hand-rolled keep-alive requests.Session", keep),
            ("HuggingPlace.log (foreground)", fg_samples),
        ]
        for durable in (False, True):
            bg = HuggingPlace(api_key=key, org_id=org, base_url=url, background=True, durable=durable,
                              spool_dir=os.path.join(tmp, f"spool-{durable}"))
            samples = timed(n, lambda i, bg=bg: bg.log(**record(i)))
            bg.close(30)
            rows.append((f"HuggingPlace.log (background{', durable' if durable else ''})", samples))
        base = percentiles(post)[0]
        for name, samples in rows:
            p50, p99 = percentiles(samples)
            print(f"  {name:45s} p50 {p50:9.1f}  p99 {p99:9.1f}   p50 vs requests.post: {p50 / base:6.3f}x")

        # ---- delivered records per second --------------------------------------------------
        print("\n== delivered to the local collector (records/s, wall clock until stored)")
        t = time.perf_counter()
        for i in range(n):
            requests.post(url + ROUTE, json=hand_payload(i, org), headers=auth, timeout=10)
        post_rate = n / (time.perf_counter() - t)
        print(f"  hand-rolled requests.post per record             : {post_rate:8.0f}/s")
        t = time.perf_counter()
        for i in range(n):
            session.post(url + ROUTE, json=hand_payload(i, org), headers=auth, timeout=10)
        keep_rate = n / (time.perf_counter() - t)
        print(f"  hand-rolled keep-alive requests.Session          : {keep_rate:8.0f}/s   "
              f"vs requests.post: {keep_rate / post_rate:5.2f}x")
        for batch in (False, True):
            hp = HuggingPlace(api_key=key, org_id=org, base_url=url, background=True,
                              spool_dir=os.path.join(tmp, f"spool-rate-{batch}"))
            assert hp._pipeline is not None
            hp._pipeline.config = attrs.evolve(hp._pipeline.config, use_batch_route=batch)
            start_count = count(c)
            t = time.perf_counter()
            for i in range(n):
                hp.log(**record(i))
            hp.flush(120)
            wait_count(c, start_count + n)
            rate = n / (time.perf_counter() - t)
            hp.close()
            route = "batch route" if batch else "single-record route"
            print(f"  HuggingPlace background, {route:22s}: {rate:8.0f}/s   vs requests.post: "
                  f"{rate / post_rate:5.2f}x, vs keep-alive: {rate / keep_rate:5.2f}x")
        session.close()

    # ---- memory with the endpoint down ---------------------------------------------------------
    down = args.down
    print(f"\n== {down} records with the endpoint down (Python heap peak, tracemalloc)")
    gc.collect()
    tracemalloc.start()
    naive: list[dict[str, Any]] = []
    for i in range(down):
        naive.append(hand_payload(i, "o"))  # a hand-rolled "keep it for later" buffer
    naive_peak = tracemalloc.get_traced_memory()[1]
    del naive
    gc.collect()
    tracemalloc.reset_peak()
    hp = HuggingPlace(api_key="k", org_id="o", base_url=f"http://127.0.0.1:{closed_port()}", background=True,
                      spool_dir=os.path.join(tmp, "spool-down"), max_retries=0)
    for i in range(down):
        hp.log(**record(i))
    result = hp.close(5)
    sdk_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert hp._pipeline is not None
    on_disk = hp._pipeline.spool.status()
    print(f"  hand-rolled in-memory buffer (list of dicts): peak {naive_peak / 2**20:7.1f} MiB")
    print(f"  HuggingPlace background (queue bound 10,000): peak {sdk_peak / 2**20:7.1f} MiB "
          f"({sdk_peak / naive_peak:.2f}x)")
    speed = HuggingPlace(api_key="k", org_id="o", base_url=f"http://127.0.0.1:{closed_port()}", background=True,
                         spool_dir=os.path.join(tmp, "spool-down-speed"), max_retries=0)
    t = time.perf_counter()
    for i in range(down):
        speed.log(**record(i))
    took = time.perf_counter() - t
    speed.close(5)
    print(f"  log() while down, overflow going to disk, no tracemalloc: {down / took:,.0f} calls/s")
    print(f"  accounted: spooled {result.spooled}, dropped {result.dropped}, pending {result.pending}; "
          f"on disk {on_disk.records} records, {on_disk.bytes / 2**20:.1f} MiB in {on_disk.files} files")
    print(json.dumps({"spool_records": on_disk.records, "produced": down}))


if __name__ == "__main__":
    main()
