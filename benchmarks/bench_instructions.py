"""Instructions per call, counted by valgrind's callgrind: the same count on every run, whatever
else the machine is doing, so a change to the caller's path shows even where timings are noise.

    python benchmarks/bench_instructions.py [--app]

Counts, for a session with two timed steps and a ``log()`` (the block ``bench_app.py`` runs per
request) and for a plain background ``log()``: the SDK's, and the floor's (``_app.Floor``: the
same calls appending tuples to a deque, the least any in-process logger costs). Each figure is
the difference of two runs (1,000 and 5,000 calls), so start-up cancels out. ``--app`` also
counts the FastAPI app itself per request, without logging, at the floor and with the SDK (a
sender process, not counted: its work is off the app's interpreter); it takes a few minutes.

Needs ``valgrind`` (Debian: ``apt-get install valgrind``). Talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "hp_bench_" + "k" * 24


CALLGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")


def _collected(stderr: str) -> int:
    found = re.search(r"Collected : (\d+)", stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count: {stderr[-1000:]}")
    return int(found.group(1))


def one(who: str, n: int, url: str, spool: str) -> None:
    """In the counted process: ``n`` calls of ``who``."""
    sys.path.insert(0, HERE)
    from _app import Floor

    from huggingplace import HuggingPlace

    client: Any = Floor() if who.startswith("floor") else HuggingPlace(
        api_key=KEY, org_id="org", base_url=url, background=True, spool_dir=spool, sender="process")

    def session(i: int) -> None:
        with client.start_session(f"bench-{i}") as s:
            with s.step("retrieve", type="retrieval"):
                pass
            with s.step("generate", type="llm"):
                pass
            s.log(user_prompt=f"q{i}", response="Refunds take 14 days", llm_model="gpt-4o", token_count=42)

    floor_session = client.start_session("bench") if who == "floor-plain" else None

    def plain(i: int) -> None:  # the floor has no log() of its own: a session's, with no steps
        (floor_session or client).log(user_prompt=f"q{i}", response="Refunds take 14 days", llm_model="gpt-4o",
                                      token_count=42)

    call = plain if who.endswith("plain") else session
    for i in range(n):
        call(i)
    os._exit(0)  # the count ends here: not the client's close, nor interpreter teardown


def deliver(who: str, n: int, url: str, spool: str) -> None:
    """In the counted process: ``n`` records delivered to ``url`` one request each, by the bare
    aiohttp client ("bare", 8 keep-alive connections) or by the SDK's worker ("bodies": encoded
    already, as a sender process gets them from an idle app; "live": ``log()`` calls, encoded by
    the worker). Bare and bodies encode their bodies the same way, counted in both."""
    import asyncio
    import json

    sys.path.insert(0, HERE)
    from bench_engine import ROUTE
    from bench_log import record

    from huggingplace import HuggingPlace
    from huggingplace._batcher import Item

    def body(i: int) -> bytes:
        return json.dumps({**record(i), "event_id": f"{i:032x}", "org_id": "org"}).encode()

    if who == "bare":
        import aiohttp

        async def main() -> None:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as session:
                order = iter(range(n))

                async def lane() -> None:
                    for i in order:
                        async with session.post(url + ROUTE, data=body(i),
                                                headers={"Content-Type": "application/json"}) as answer:
                            await answer.read()

                await asyncio.gather(*(lane() for _ in range(8)))

        asyncio.run(main())
    else:
        hp = HuggingPlace(api_key=KEY, org_id="org", base_url=url, background=True, spool_dir=spool,
                          sender="thread", max_queue_size=n + 1)
        for i in range(n):
            if who == "live":
                hp.log(**record(i))
            else:
                data = body(i)
                hp._pipeline.submit_item(Item(f"{i:032x}", len(data), body=data))
        if not hp.flush(600).complete:
            raise RuntimeError("not all delivered")
    os._exit(0)


def calls(who: str, url: str, spool: str) -> float:
    """Instructions per call of ``who`` in its process (every thread: the caller's, and the SDK's
    relay to its sender), as the difference of 1,000 and 5,000 calls."""
    counts = []
    for n in (1000, 5000):
        cmd = [*CALLGRIND, sys.executable, __file__, "--one", who, "--n", str(n), "--url", url,
               "--spool", os.path.join(spool, str(n))]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        counts.append(_collected(out.stderr))
    return (counts[1] - counts[0]) / 4000


def app(mode: str, sink_url: str, spool: str) -> float:
    """Instructions the app process runs per request (its every thread), loaded sequentially."""
    sys.path.insert(0, HERE)
    from bench_app import serve

    counts = []
    for n in (200, 1200):
        proc, port = serve(mode, sink_url, spool, under=CALLGRIND, boot=300.0, stderr=subprocess.PIPE, text=True)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for i in range(n + 1):  # one more first: the app's first request warms it up
            connection.request("GET", f"/ask?q={i}")
            connection.getresponse().read()
        connection.close()
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        counts.append(_collected(proc.communicate(timeout=600)[1]))
    return (counts[1] - counts[0]) / 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one")
    parser.add_argument("--n", type=int)
    parser.add_argument("--url")
    parser.add_argument("--spool")
    parser.add_argument("--app", action="store_true", help="also count the FastAPI app per request (minutes)")
    parser.add_argument("--deliver", action="store_true",
                        help="also count delivery per record beside a bare aiohttp client (minutes)")
    args = parser.parse_args()
    if args.one:
        (deliver if args.one.startswith("deliver-") else one)(args.one.removeprefix("deliver-"), args.n, args.url,
                                                               args.spool)
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench_instructions.py needs valgrind (Debian: apt-get install valgrind)")
    sys.path.insert(0, HERE)
    from bench_engine import Sink

    sink = Sink(nice=19)
    tmp = tempfile.mkdtemp(prefix="hp-bench-instr-")
    try:
        print("instructions per call (callgrind; the difference of 1,000 and 5,000 calls; sender='process', "
              "whose own process is not counted)")
        for what, label in (("session", "a session with two timed steps and a log()"), ("plain", "a plain log()")):
            ours = calls(what, sink.url, os.path.join(tmp, what))
            floor = calls(f"floor-{what}", sink.url, os.path.join(tmp, "floor"))
            print(f"  {label:44s} huggingplace {ours:9,.0f}   the floor {floor:7,.0f}   ({ours / floor:.1f}x)")
        if args.deliver:
            print("instructions per record delivered on the single-record route (the sending process; the "
                  "endpoint not counted)")
            bare = calls("deliver-bare", sink.url, os.path.join(tmp, "bare"))
            print(f"  bare aiohttp, 8 keep-alive connections, bodies encoded   {bare:9,.0f}")
            for who, label in (("bodies", "the SDK's worker, bodies encoded (a sender's share)"),
                               ("live", "the SDK's worker, log() calls encoded here")):
                ours = calls(f"deliver-{who}", sink.url, os.path.join(tmp, who))
                print(f"  {label:56s} {ours:9,.0f}   ({ours / bare:.2f}x)")
        if args.app:
            base = app("off", sink.url, os.path.join(tmp, "app"))
            print(f"  the FastAPI app per request, without logging: {base:11,.0f}")
            for mode, label in (("floor", "at the floor"), ("process", "huggingplace")):
                per = app(mode, sink.url, os.path.join(tmp, f"app-{mode}"))
                print(f"  {'':23s}{label:>22s}: {per:11,.0f}  (+{per - base:,.0f}, {per / base:.3f}x)")
    finally:
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
