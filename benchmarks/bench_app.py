"""A real app: FastAPI under uvicorn, without logging and with background logging (a session
with two steps per request) delivered from a thread or from a sender process, served and loaded
on loopback in the same run.

    python benchmarks/bench_app.py [--seconds 5] [--sink-nice 19|idle|0] [--rounds 2]

Prints requests/s at 50 concurrent clients and p99 latency at one client, each as a ratio to the
app without logging (the best of ``--rounds`` interleaved runs of each: the machine is noisy);
the same for the floor (the same calls into a logger that only appends tuples to a deque: the
least any in-process logger costs, so what this machine allows the SDK); the app's CPU per
request; and the records the sink received. The sink and the app run in their own processes;
the load generator (aiohttp) in this one. The sink stands in for the remote endpoint, whose CPU a
real deployment spends on another machine: by default it runs at nice 19, so that storing
records takes as little as it can from the app on a small machine; ``--sink-nice idle`` runs it
at the lowest priority there is (``SCHED_IDLE`` on Linux: only on a core that neither the app
nor the load generator wants), ``--sink-nice 0`` like the app.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(url: str, clients: int, seconds: float) -> tuple[float, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as http:
        async def client(c: int) -> None:
            i = 0
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                async with http.get(url, params={"q": f"{c}-{i}"}) as answer:
                    await answer.read()
                latencies.append(time.perf_counter() - start)
                i += 1

        start = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        took = time.perf_counter() - start
    return len(latencies) / took, latencies


def serve(mode: str, sink_url: str, spool: str, *, under: tuple[str, ...] = (), boot: float = 10.0,
          **popen: Any) -> tuple[subprocess.Popen[Any], int]:
    """The app, logging (mode "thread" or "process": where delivery runs), logging at the floor
    (``_app.Floor``: the least an in-process logger can do), or not ("off"); run ``under`` a
    command (valgrind, for bench_instructions.py), listening within ``boot`` seconds."""
    port = free_port()
    env = {**os.environ, "HP_LOG": {"off": "0", "floor": "floor"}.get(mode, "1"),
           "HUGGINGPLACE_SENDER": mode if mode in ("thread", "process") else "thread",
           "HUGGINGPLACE_API_KEY": "hp_bench_" + "k" * 24,
           "HUGGINGPLACE_ORG_ID": "org", "HUGGINGPLACE_BASE_URL": sink_url, "HUGGINGPLACE_SPOOL_DIR": spool,
           "PYTHONPATH": HERE}
    proc = subprocess.Popen([*under, sys.executable, "-m", "uvicorn", "_app:app", "--port", str(port), "--log-level",
                             "warning", "--no-access-log"], env=env, cwd=HERE, **popen)
    deadline = time.monotonic() + boot
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


def spooled(directory: str) -> int:
    """Spool files left in the directory tree (records the app could not deliver by its exit)."""
    return sum(len([f for f in files if f.endswith(".hps")]) for _, _, files in os.walk(directory))


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


MODES = ("off", "floor", "thread", "process")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sink-nice", default="19", help='a nice value, or "idle" (SCHED_IDLE)')
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from bench_engine import Sink
    from bench_engine import cpu_of as cpu_seconds

    sink = Sink(nice=args.sink_nice if args.sink_nice == "idle" else int(args.sink_nice))
    tmp = tempfile.mkdtemp(prefix="hp-bench-app-")
    figures: dict[str, tuple[float, float]] = {}
    cpu = {mode: [0.0, 0.0, 0.0] for mode in MODES}  # app s, sink s, requests
    try:
        for mode in MODES * args.rounds:  # interleaved: the machine is noisy
            proc, port = serve(mode, sink.url, tmp)
            url = f"http://127.0.0.1:{port}/ask"
            asyncio.run(load(url, 10, 1.0))  # warm-up
            app0, sink0 = cpu_seconds(proc.pid), cpu_seconds(sink.proc.pid)
            received0 = sink.state()["count"]
            rps, many = asyncio.run(load(url, 50, args.seconds))
            _, single = asyncio.run(load(url, 1, args.seconds))
            time.sleep(0.5)  # the worker delivers what is left
            cpu[mode][0] += cpu_seconds(proc.pid) - app0
            cpu[mode][1] += cpu_seconds(sink.proc.pid) - sink0
            cpu[mode][2] += len(many) + len(single)
            proc.terminate()
            proc.wait(30)
            if mode in ("thread", "process"):
                time.sleep(1.0)  # the sink answers what it was sent
                served = len(many) + len(single)
                print(f"  (logging from a {mode}: {served} requests after the warm-up; "
                      f"{sink.state()['count'] - received0} records reached the sink by the app's exit; "
                      f"spool files left: {spooled(tmp)})")
            best = figures.get(mode)
            figures[mode] = (max(rps, best[0]) if best else rps, min(p99(single), best[1]) if best else p99(single))
        base_rps, base_p99 = figures["off"]
        per = {mode: (a / n * 1e6, k / n * 1e6) for mode, (a, k, n) in cpu.items() if n}
        where = "SCHED_IDLE" if args.sink_nice == "idle" else f"nice {args.sink_nice}"
        print(f"FastAPI under uvicorn, {args.seconds:g} s per load, best of {args.rounds} runs each, "
              f"on {os.cpu_count()} cores (sink at {where})")
        print(f"  without logging:      {base_rps:7.0f} req/s at 50 clients, p99 {base_p99:5.2f} ms at one client, "
              f"app CPU {per['off'][0]:4.0f} µs per request")
        rps, p = figures["floor"]
        print(f"  the floor (no SDK):    {rps:7.0f} req/s ({rps / base_rps:.2f}x), "
              f"p99 {p:5.2f} ms ({p / base_p99:.2f}x), app CPU {per['floor'][0]:4.0f} µs per request "
              f"({per['floor'][0] - per['off'][0]:+.0f}): the same calls appending tuples to a deque, "
              "the least any in-process logger costs")
        for mode in ("thread", "process"):
            rps, p = figures[mode]
            print(f"  logging, {mode + ' sender:':15s} {rps:7.0f} req/s ({rps / base_rps:.2f}x), "
                  f"p99 {p:5.2f} ms ({p / base_p99:.2f}x), app CPU {per[mode][0]:4.0f} µs per request "
                  f"({per[mode][0] - per['off'][0]:+.0f}); the sink's CPU per record: {per[mode][1]:.0f} µs")
        print(f"  records the sink received: {sink.state()['count']}")
    finally:
        sink.close()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
