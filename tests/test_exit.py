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
        print((signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before,
              signal.set_wakeup_fd(-1) == -1, flush=True)  # and no signal watch either
    """
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        proc = _run(code, c.url, tmp_path)
        out, err = proc.communicate(timeout=30)
    assert out.split() == ["True", "True"], err


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


def test_a_signal_cpython_left_unhandled_still_ends_the_process(tmp_path: Path) -> None:
    """CPython records a signal in its C handler and runs ours only when the main thread's eval
    loop looks; a main thread blocked in a C wait with no timeout may never look (a pool
    worker's task queue; here a lock, and the signal landing on another thread). The default
    action would have ended the process: ours must too, after delivering."""
    code = """
        import signal, threading, time
        from huggingplace import HuggingPlace
        hp = HuggingPlace(background=True, flush_interval=30)
        for i in range(20):
            hp.log(user_prompt=f"missed-{i}", response="a")
        def elsewhere():
            time.sleep(0.3)
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        threading.Thread(target=elsewhere).start()
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()  # the main thread waits in C, with no timeout, and nothing wakes it
    """
    returncode, _, err, stored = _run_to_end(code, tmp_path)
    assert returncode == -signal.SIGTERM and stored == [f"missed-{i}" for i in range(20)] and err == "", err


def _run_to_end(code: str, tmp_path: Path) -> tuple[int, str, str, list[str]]:
    """Run ``code`` against a collector: its exit code, output, errors and the prompts stored."""
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        proc = _run(code, c.url, tmp_path)
        try:
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        with sqlite3.connect(c.db_path) as conn:
            stored = sorted((r[0] for r in conn.execute("SELECT user_prompt FROM chat")), key=lambda p: (len(p), p))
    return proc.returncode, out, err, stored


def test_a_forked_childs_signals_never_reach_the_parent(tmp_path: Path) -> None:
    """The wakeup fd is inherited at fork: the child lets go of the parent's at once, so a child
    that gets SIGTERM (a pool's terminate()) is never taken for the parent missing one."""
    code = """
        import os, signal, time
        from huggingplace import HuggingPlace
        from huggingplace import _exit
        hp = HuggingPlace(background=True)  # built at import, never used in the parent (a pool's parent)
        parents = _exit._Watch.current
        pid = os.fork()
        if pid == 0:
            hp.log(user_prompt="child", response="a")
            own = _exit._Watch.current
            os.write(1, f"{own is not None and own is not parents}\\n".encode())
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        _, status = os.waitpid(pid, 0)
        time.sleep(1)  # past the watch's grace: it would have sent SIGTERM to this process by now
        print(os.waitstatus_to_exitcode(status), parents is not None, signal.SIGTERM not in _exit._entered)
    """
    returncode, out, err, stored = _run_to_end(code, tmp_path)
    assert returncode == 0, err
    assert out.split() == ["True", str(-signal.SIGTERM), "True", "True"] and stored == ["child"], err


def test_a_wakeup_fd_in_use_is_left_in_place(tmp_path: Path) -> None:
    """An asyncio loop's signal handlers own the wakeup fd: the client does not take it."""
    code = """
        import asyncio, signal
        from huggingplace import HuggingPlace
        from huggingplace import _exit
        loop = asyncio.new_event_loop()
        loop.add_signal_handler(signal.SIGUSR1, print)
        theirs = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(theirs)
        hp = HuggingPlace(background=True)
        hp.log(user_prompt="q", response="a")
        print(signal.set_wakeup_fd(-1) == theirs, _exit._Watch.current is None, theirs >= 0)
        hp.close()
    """
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        proc = _run(code, c.url, tmp_path)
        out, err = proc.communicate(timeout=30)
    assert out.split() == ["True", "True", "True"] and err == "", err
