"""A real app: FastAPI under uvicorn, with and without background logging (a session with two
steps per request), served and loaded on loopback in the same run.

    python benchmarks/bench_app.py [--seconds 5]

Prints requests/s at 50 concurrent clients and p99 latency at one client, each as a ratio to the
app without logging, and the records the sink received. The sink and the app run in their own
processes; the load generator (aiohttp) in this one.
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


def serve(log: bool, sink_url: str, spool: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "HP_LOG": "1" if log else "0", "HUGGINGPLACE_API_KEY": "hp_bench_" + "k" * 24,
           "HUGGINGPLACE_ORG_ID": "org", "HUGGINGPLACE_BASE_URL": sink_url, "HUGGINGPLACE_SPOOL_DIR": spool,
           "PYTHONPATH": HERE}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "_app:app", "--port", str(port), "--log-level",
                             "warning", "--no-access-log"], env=env, cwd=HERE)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def spooled(directory: str) -> int:
    """Spool files left in the directory tree (records the app could not deliver by its exit)."""
    return sum(len([f for f in files if f.endswith(".hps")]) for _, _, files in os.walk(directory))


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from bench_engine import Sink

    sink = Sink()
    tmp = tempfile.mkdtemp(prefix="hp-bench-app-")
    figures = {}
    try:
        cpu: dict[bool, list[float]] = {False: [0.0, 0.0, 0.0], True: [0.0, 0.0, 0.0]}  # app s, sink s, requests
        for log in (False, True, False, True):  # twice each, interleaved: the machine is noisy
            proc, port = serve(log, sink.url, tmp)
            url = f"http://127.0.0.1:{port}/ask"
            asyncio.run(load(url, 10, 1.0))  # warm-up
            app0, sink0 = cpu_seconds(proc.pid), cpu_seconds(sink.proc.pid)
            received0 = sink.state()["count"]
            rps, many = asyncio.run(load(url, 50, args.seconds))
            _, single = asyncio.run(load(url, 1, args.seconds))
            time.sleep(0.5)  # the worker delivers what is left
            cpu[log][0] += cpu_seconds(proc.pid) - app0
            cpu[log][1] += cpu_seconds(sink.proc.pid) - sink0
            cpu[log][2] += len(many) + len(single)
            proc.terminate()
            proc.wait(30)
            if log:
                time.sleep(0.5)  # the sink answers what it was sent
                served = len(many) + len(single)
                print(f"  (a logging run: {served} requests after the warm-up; {sink.state()['count'] - received0} "
                      f"records reached the sink by the app's exit; spool files left: {spooled(tmp)})")
            best = figures.get(log)
            figures[log] = (max(rps, best[0]) if best else rps, min(p99(single), best[1]) if best else p99(single))
        (base_rps, base_p99), (log_rps, log_p99) = figures[False], figures[True]
        print(f"FastAPI under uvicorn, {args.seconds:g} s per load, best of two runs each")
        print(f"  50 clients: {base_rps:7.0f} req/s without logging, {log_rps:7.0f} with: {log_rps / base_rps:.2f}x")
        print(f"  1 client p99: {base_p99:6.2f} ms without logging, {log_p99:6.2f} ms with: {log_p99 / base_p99:.2f}x")
        print(f"  records the sink received: {sink.state()['count']}")
        per = {log: (a / n * 1e6, k / n * 1e6) for log, (a, k, n) in cpu.items() if n}
        if len(per) == 2 and per[False][0]:
            print(f"  app CPU per request: {per[False][0]:.0f} µs without logging, {per[True][0]:.0f} µs with "
                  f"(logging's share in the app, caller and worker: {per[True][0] - per[False][0]:.0f} µs); "
                  f"the sink's CPU per record: {per[True][1]:.0f} µs, on the same {os.cpu_count()} cores")
    finally:
        sink.close()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
