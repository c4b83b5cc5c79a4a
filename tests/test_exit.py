"""close() and flush() are idempotent and safe from anywhere; signal handlers chain as promised."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from huggingplace import AsyncHuggingPlace, HuggingPlace
from huggingplace.collector import Collector

from .background_helpers import bg_client, fast
from .conftest import KEY

SENDERS = pytest.mark.parametrize("sender", ["thread", "process"])


def _opts(url: str, tmp_path: Path, sender: str = "thread") -> dict[str, object]:
    return {"api_key": KEY, "org_id": "org-a", "base_url": url, "background": True,
            "spool_dir": str(tmp_path / "spool"), "sender": sender}


@SENDERS
def test_sync_close_twice_inside_and_after_with(tmp_path: Path, sender: str) -> None:
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        with HuggingPlace(**_opts(c.url, tmp_path, sender)) as hp:  # type: ignore[arg-type]
            hp.log(user_prompt="q", response="a")
            first = hp.close()
            start = time.monotonic()
            assert hp.close() == first  # the second returns the first's result, at once
            assert hp.flush() .sent == 1 and hp.flush().pending == 0
        assert time.monotonic() - start < 1  # allow-timing: no second wait, no deadlock (it used to hang)
        assert first.sent == 1 and first.complete


@SENDERS
def test_async_close_twice_with_async_with(tmp_path: Path, sender: str) -> None:
    async def main(url: str) -> tuple[object, object]:
        async with fast(AsyncHuggingPlace(**_opts(url, tmp_path, sender))) as hp:  # type: ignore[arg-type]
            await hp.log(user_prompt="q", response="a")
            a = await hp.close()
            b = await hp.close()
            await hp.flush()
        return a, b

    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        a, b = asyncio.run(main(c.url))
    assert a == b and a.sent == 1  # type: ignore[attr-defined]


@SENDERS
def test_close_from_many_threads_at_once(tmp_path: Path, sender: str) -> None:
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool", sender=sender)
        for i in range(200):
            hp.log(user_prompt=f"q{i}", response="a")
        results: list[object] = []
        threads = [threading.Thread(target=lambda: results.append(hp.close(5))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
    assert len(results) == 8 and all(r.sent == 200 and r.pending == 0 for r in results)  # type: ignore[attr-defined]


def _run(code: str, url: str, tmp_path: Path, *, wait: bool = True, sender: str = "thread") -> subprocess.Popen[str]:
    env = {"HUGGINGPLACE_API_KEY": KEY, "HUGGINGPLACE_ORG_ID": "org-a", "HUGGINGPLACE_BASE_URL": url,
           "HUGGINGPLACE_SPOOL_DIR": str(tmp_path / "spool"), "PATH": "/usr/bin:/bin", "HUGGINGPLACE_SENDER": sender}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@SENDERS
def test_close_twice_in_a_forked_child(tmp_path: Path, sender: str) -> None:
    code = """
        import json, os
        from huggingplace import HuggingPlace
        hp = HuggingPlace(background=True)
        hp.log(user_prompt="parent", response="a")
        pid = os.fork()
        if pid == 0:
            hp.log(user_prompt="child", response="a")
            a = hp.close(5); b = hp.close(5)
            print(json.dumps([a.sent, b.sent, a == b]), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        hp.close(5)
    """
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        proc = _run(code, c.url, tmp_path, sender=sender)
        out, err = proc.communicate(timeout=60)
        with sqlite3.connect(c.db_path) as conn:
            stored = sorted(row[0] for row in conn.execute("SELECT user_prompt FROM chat"))
    assert proc.returncode == 0, err
    assert json.loads(out) == [1, 1, True]  # the child sent its own record, not the parent's
    assert stored == ["child", "parent"] and err == ""


def test_a_host_handler_is_chained_and_called_last(tmp_path: Path) -> None:
    """A SIGTERM handler the app had before the client: ours flushes, then calls it."""
    code = """
        import os, signal, sys, time
        from huggingplace import HuggingPlace
        def mine(sig, frame):
            os.write(1, f"host handler ran after {hp.stats().sent} sent\\n".encode())
            sys.exit(0)
        signal.signal(signal.SIGTERM, mine)
        hp = HuggingPlace(background=True, flush_interval=30)
        for i in range(50):
            hp.log(user_prompt=f"q{i}", response="a")
        print("ready", flush=True)
        time.sleep(30)
    """
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        proc = _run(code, c.url, tmp_path)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.strip() == "host handler ran after 50 sent", err


def test_an_ignored_signal_stays_ignored(tmp_path: Path) -> None:
    code = """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        from huggingplace import HuggingPlace
        hp = HuggingPlace(background=True)
        hp.log(user_prompt="q", response="a")
        print("ready", signal.getsignal(signal.SIGTERM) == signal.SIG_IGN, flush=True)
        time.sleep(1.5)
        print("alive", flush=True)
    """
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        proc = _run(code, c.url, tmp_path)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready True"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.strip() == "alive", err


def test_handle_signals_false_installs_nothing(tmp_path: Path) -> None:
    code = """
        import signal
        from huggingplace import HuggingPlace
        before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
        hp = HuggingPlace(background=True, handle_signals=False)
        hp.log(user_prompt="q", response="a")
        print((signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before, flush=True)
    """
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        proc = _run(code, c.url, tmp_path)
        out, err = proc.communicate(timeout=30)
    assert out.strip() == "True", err


def _blocked(native_id: int) -> set[int]:
    with open(f"/proc/self/task/{native_id}/status") as f:
        mask = int(next(line for line in f if line.startswith("SigBlk:")).split()[1], 16)
    return {sig for sig in (signal.SIGTERM, signal.SIGINT) if mask & (1 << (sig - 1))}


@SENDERS
def test_the_sdks_threads_leave_sigterm_and_sigint_to_the_main_thread(tmp_path: Path, sender: str) -> None:
    """A process-directed signal goes to a thread that does not block it; Python runs handlers
    only on the main thread, and a main thread blocked in a C wait (a multiprocessing pool
    worker waiting for its next task) wakes only if the signal was delivered to it. A pool's
    terminate() hung one time in four with the sender's threads taking SIGTERM."""
    if not os.path.exists("/proc/self/task"):
        pytest.skip("reads the threads' signal masks from /proc (Linux)")
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool", sender=sender)
        hp.log(user_prompt="q", response="a")
        assert hp.flush(20).sent == 1
        ours = [t for t in threading.enumerate()  # the client's threads (not the test collector's)
                if t.name.startswith("huggingplace") and "collector" not in t.name]
        assert ours and all(_blocked(t.native_id) == {signal.SIGTERM, signal.SIGINT} for t in ours)  # type: ignore[arg-type]
        assert _blocked(threading.main_thread().native_id) == set()  # type: ignore[arg-type]
        hp.close(5)
