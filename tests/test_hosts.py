"""Delivery when real hosts stop, as their platforms stop them: each host runs as a subprocess
with the app code docs/hosts/index.md tells users to write, logs to a real collector, is stopped, and
the test counts what the collector stored, what is left in the spool and what the host printed."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from huggingplace.collector import Collector

from .background_helpers import spooled_ids, wait_for
from .conftest import KEY

pytestmark = pytest.mark.slow

HOSTS = Path(__file__).resolve().parent.parent / "examples" / "hosts"
NOISE = ("Traceback", "Unclosed", "Task exception", "never retrieved", "huggingplace: internal error",
         "stopped unexpectedly", "RuntimeError", "spooled to")


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[Collector]:
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        yield c


def env_for(sink: Collector, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUGGINGPLACE_")}
    env.update({
        "HUGGINGPLACE_API_KEY": KEY, "HUGGINGPLACE_ORG_ID": "org-a", "HUGGINGPLACE_BASE_URL": sink.url,
        "HUGGINGPLACE_SPOOL_DIR": str(tmp_path / "spool"), "PYTHONPATH": str(HOSTS), "PYTHONUNBUFFERED": "1",
        **extra,
    })
    return env


def stored(sink: Collector, prefix: str) -> int:
    with sqlite3.connect(sink.db_path) as conn:
        return int(conn.execute("SELECT COUNT(DISTINCT event_id) FROM chat WHERE user_prompt LIKE ?",
                                (prefix + "%",)).fetchone()[0])


def left_on_disk(tmp_path: Path) -> int:
    root = tmp_path / "spool"
    return sum(len(spooled_ids(d)) for d in root.iterdir()) if root.is_dir() else 0


def quiet(stderr: str) -> list[str]:
    """Lines of what a host printed that speak of trouble (there must be none)."""
    return [line for line in stderr.splitlines() if any(word in line for word in NOISE)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the host exited early: {proc.communicate()[1]}")
        try:
            requests.get(f"http://127.0.0.1:{port}/ping", timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening, or its workers still boot
            time.sleep(0.1)
    raise AssertionError("the host never listened")


def drive(port: int, path: str, tag: str, n: int) -> None:
    """n real requests, 8 at a time; every one answered before the host is stopped."""
    with requests.Session() as http, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: http.get(f"http://127.0.0.1:{port}{path}", params={"q": f"{tag}-{i}"},
                                                 timeout=10).status_code, range(n)))
    assert codes == [200] * n


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 30.0) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


# ---- scripts ------------------------------------------------------------------------------------
SCRIPT = """
    import sys
    from huggingplace import HuggingPlace, AsyncHuggingPlace
    kind, url, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if kind == "sync":
        hp = HuggingPlace(background=True, base_url=url)
        for i in range(n):
            hp.log(user_prompt=f"{tag}-{i}", response="a")
    else:
        import asyncio
        async def main():
            hp = AsyncHuggingPlace(background=True, base_url=url)
            for i in range(n):
                await hp.log(user_prompt=f"{tag}-{i}", response="a")
        asyncio.run(main())
"""


@pytest.mark.parametrize("sender", ["thread", "process"])
@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_script_that_returns_delivers_everything_at_exit(sink: Collector, tmp_path: Path, kind: str,
                                                           host: str, sender: str) -> None:
    """No close(), no flush(): a script logs 2,000 records and returns; all of them are stored
    (an IP and a host name, which needs a DNS lookup at exit), nothing is spooled or printed;
    delivered from a thread, or from a sender process."""
    url = sink.url.replace("127.0.0.1", host)
    tag = f"script-{kind}-{host}-{sender}"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT), kind, url, "2000", tag],
                          env=env_for(sink, tmp_path, HUGGINGPLACE_SENDER=sender), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert stored(sink, tag) == 2000
    assert left_on_disk(tmp_path) == 0 and not (tmp_path / "spool").exists()
    assert proc.stderr == "" and proc.stdout == ""


@pytest.mark.parametrize("sender", ["thread", "process"])
def test_a_script_stopped_by_sigterm_delivers_and_still_dies_by_the_signal(sink: Collector, tmp_path: Path,
                                                                          sender: str) -> None:
    code = """
        import sys, time
        from huggingplace import HuggingPlace
        hp = HuggingPlace(background=True, flush_interval=30)  # nothing would go out on its own
        for i in range(100):
            hp.log(user_prompt=f"sigterm-{i}", response="a")
        print("ready", flush=True)
        time.sleep(60)
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                            env=env_for(sink, tmp_path, HUGGINGPLACE_SENDER=sender),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    returncode, err = stop(proc)
    assert returncode == -signal.SIGTERM  # the exit status a supervisor expects is unchanged
    assert stored(sink, "sigterm-") == 100 and left_on_disk(tmp_path) == 0
    assert quiet(err) == []


# ---- servers ------------------------------------------------------------------------------------
def _ping_app() -> None:
    """Both server apps answer /ping (added by the test through an environment switch)."""


UVICORN = [
    pytest.param(sig, target, path, "thread", id=f"{sig.name}-{name}-{path[1:]}")
    for sig in (signal.SIGTERM, signal.SIGINT)
    for target, name in (("fastapi_app:app", "wrapped"), ("fastapi_app:api", "bare"))
    for path in ("/ask", "/ask-sync")
] + [  # delivered from a sender process: the host's signal reaches the app, which closes it
    pytest.param(signal.SIGTERM, "fastapi_app:api", "/ask", "process", id="SIGTERM-bare-ask-process"),
    pytest.param(signal.SIGINT, "fastapi_app:app", "/ask-sync", "process", id="SIGINT-wrapped-ask-sync-process"),
]


@pytest.mark.parametrize("sig,target,path,sender", UVICORN)
def test_uvicorn_stopped_by_a_signal_loses_nothing(sink: Collector, tmp_path: Path, path: str, target: str,
                                                   sig: int, sender: str) -> None:
    """``bare`` is the app with no integration at all: the SDK's own signal handling delivers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", target, "--port", str(port), "--log-level", "warning"],
        env=env_for(sink, tmp_path, HUGGINGPLACE_SENDER=sender), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=HOSTS,
    )
    wait_listening(port, proc)
    tag = f"uvicorn{path.replace('/', '-')}"
    drive(port, path, tag, 300)
    returncode, err = stop(proc, sig)
    assert stored(sink, tag) == 300 and left_on_disk(tmp_path) == 0
    assert quiet(err) == [], err


GUNICORN = [
    ("flask_app:app", "sync", "/ask"),
    ("flask_app:app", "gthread", "/ask"),
    ("fastapi_app:app", "uvicorn_worker.UvicornWorker", "/ask"),
    ("fastapi_app:app", "uvicorn_worker.UvicornWorker", "/ask-sync"),
    ("fastapi_app:api", "uvicorn_worker.UvicornWorker", "/ask"),
    ("fastapi_app:api", "uvicorn_worker.UvicornWorker", "/ask-sync"),
]


GUNICORN_CASES = [
    pytest.param(app, worker, path, preload, "thread", id=f"{name}{'-preload' if preload else ''}")
    for preload in (False, True)
    for (app, worker, path), name in zip(GUNICORN, ["flask-sync", "flask-gthread", "uvicorn", "uvicorn-sync",
                                                    "uvicorn-bare", "uvicorn-sync-bare"])
] + [  # a sender process per worker, started after the fork (the master built the client with --preload)
    pytest.param("flask_app:app", "sync", "/ask", True, "process", id="flask-sync-preload-process"),
    pytest.param("fastapi_app:api", "uvicorn_worker.UvicornWorker", "/ask", True, "process",
                 id="uvicorn-bare-preload-process"),
]


@pytest.mark.parametrize("app,worker,path,preload,sender", GUNICORN_CASES)
def test_gunicorn_stopped_by_sigterm_loses_nothing(sink: Collector, tmp_path: Path, app: str, worker: str,
                                                   path: str, preload: bool, sender: str) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", app, "-b", f"127.0.0.1:{port}", "-w", "3", "-k", worker,
           "--graceful-timeout", "20", "--log-level", "warning"]
    if worker == "gthread":
        cmd += ["--threads", "4"]
    if preload:
        cmd.append("--preload")
    proc = subprocess.Popen(cmd, env=env_for(sink, tmp_path, HUGGINGPLACE_SENDER=sender), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=HOSTS)
    wait_listening(port, proc)
    tag = f"gunicorn-{worker}-{path}-{preload}-{sender}"
    drive(port, path, tag, 300)
    returncode, err = stop(proc)
    assert returncode == 0, err
    assert stored(sink, tag) == 300 and left_on_disk(tmp_path) == 0
    assert quiet(err) == [], err


# ---- worker pools -------------------------------------------------------------------------------
@pytest.mark.parametrize("how,sender", [("with", "thread"), ("close-join", "thread"), ("executor", "thread"),
                                        ("with", "process"), ("executor", "process")])
def test_process_pools_deliver_what_their_workers_logged(sink: Collector, tmp_path: Path, how: str,
                                                         sender: str) -> None:
    tag = f"pool-{how}-{sender}"
    proc = subprocess.run([sys.executable, str(HOSTS / "pool_job.py"), how, tag],
                          env=env_for(sink, tmp_path, HUGGINGPLACE_SENDER=sender), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert stored(sink, tag) == 1000 and left_on_disk(tmp_path) == 0
    assert quiet(proc.stderr) == [] and proc.stdout == ""


@pytest.mark.parametrize("sender", ["thread", "process"])
def test_celery_prefork_worker_delivers_what_its_children_logged(sink: Collector, tmp_path: Path,
                                                                 sender: str) -> None:
    pytest.importorskip("celery")
    broker = tmp_path / "broker"
    broker.mkdir()
    env = env_for(sink, tmp_path, CELERY_BROKER_DIR=str(broker), HUGGINGPLACE_SENDER=sender)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork", "-c", "2",
         "--loglevel", "warning", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HOSTS,
    )
    send = "from celery_app import answer\nfor i in range(200): answer.delay(f'celery-{i}')\n"
    subprocess.run([sys.executable, "-c", send], env=env, check=True, cwd=HOSTS, timeout=60)
    processed = broker  # kombu moves each consumed message out of the folder
    if not wait_for(lambda: not any(p.suffix == ".msg" for p in processed.iterdir()), timeout=60):
        left = sum(p.suffix == ".msg" for p in processed.iterdir())
        returncode, err = stop(worker, timeout=30)
        pytest.fail(f"{left} of 200 tasks not consumed in 60 s; the worker exited {returncode}: {err[-4000:]}")
    time.sleep(0.5)  # the last task's log() is called as its message is consumed
    returncode, err = stop(worker, timeout=60)
    assert stored(sink, "celery-") == 200 and left_on_disk(tmp_path) == 0
    assert quiet(err) == [], err


def test_the_hosts_page_shows_the_apps_these_tests_run() -> None:
    """docs/hosts/ embeds each host app word for word: the code users copy is the code tested."""
    page = "".join(p.read_text() for p in (HOSTS.parent.parent / "docs" / "hosts").glob("*.md"))
    for name in ("fastapi_app.py", "flask_app.py", "pool_job.py", "celery_app.py"):
        assert (HOSTS / name).read_text().rstrip() in page, name
