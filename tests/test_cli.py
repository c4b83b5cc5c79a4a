"""The `huggingplace` command as a user runs it: serve (with a restart) and demo."""

from __future__ import annotations

import os
import queue
import re
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from huggingplace import HuggingPlace

from .conftest import LiveCollector
from .servers import closed_port


def _serve(db: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "huggingplace", "serve", "--port", str(port), "--db", str(db), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _banner(proc: subprocess.Popen[str]) -> str:
    """Lines printed until the server is up (the export lines come last when a key is created)."""
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(("See what you logged", "viewer off")):
            break
    return "".join(lines)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(10)
    if proc.stdout:
        proc.stdout.close()


def test_serve_creates_a_dev_key_that_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "hp.db"
    port = closed_port()
    proc = _serve(db, port)
    try:
        banner = _banner(proc)
        key = re.search(r"export HUGGINGPLACE_API_KEY=(\S+)", banner)
        org = re.search(r"export HUGGINGPLACE_ORG_ID=(\S+)", banner)
        assert key and org, banner
        assert f"export HUGGINGPLACE_BASE_URL=http://127.0.0.1:{port}" in banner
        with HuggingPlace(api_key=key.group(1), org_id=org.group(1), base_url=f"http://127.0.0.1:{port}") as hp:
            hp.log(user_prompt="before restart", response="a")
    finally:
        _stop(proc)
    proc = _serve(db, port)
    try:
        banner = _banner(proc)
        assert f"export HUGGINGPLACE_API_KEY={key.group(1)}" in banner  # the same key, shown again on loopback
        assert oct((tmp_path / "hp.db.devkey").stat().st_mode & 0o777) == "0o600"
        link = re.search(r"See what you logged: (\S+/login/\S+)", banner)
        assert link, banner
        viewer = requests.Session()
        page = viewer.get(link.group(1), timeout=10)
        assert page.status_code == 200 and "before restart" not in page.text and "Sessions" in page.text
        assert viewer.get(link.group(1), timeout=10).status_code == 401  # one time only
        with HuggingPlace(api_key=key.group(1), org_id=org.group(1), base_url=f"http://127.0.0.1:{port}") as hp:
            result = hp.log(user_prompt="after restart", response="a")
        got = requests.get(
            f"http://127.0.0.1:{port}/v2/records/{result.event_id}",
            headers={"Authorization": f"Bearer {key.group(1)}"}, timeout=10,
        ).json()
        assert got["user_prompt"] == "after restart"
    finally:
        _stop(proc)


def test_serve_with_given_keys(tmp_path: Path) -> None:
    port = closed_port()
    env = {**os.environ, "HUGGINGPLACE_COLLECTOR_KEYS": "hp_env_key_1:org-env"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "huggingplace", "serve", "--port", str(port), "--db", str(tmp_path / "k.db"),
         "--key", "hp_cli_key_1:org-cli"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        banner = _banner(proc)
        assert "2 key(s)" in banner and "hp_cli_key_1" not in banner and "/login/" not in banner
        for key, org in (("hp_cli_key_1", "org-cli"), ("hp_env_key_1", "org-env")):
            with HuggingPlace(api_key=key, org_id=org, base_url=f"http://127.0.0.1:{port}") as hp:
                assert hp.log(user_prompt="q", response="a").status_code == 200
    finally:
        _stop(proc)


def test_demo_runs_and_reads_everything_back() -> None:
    """The README's first command: a multi-step session through both clients, printed back."""
    done = subprocess.run(
        [sys.executable, "-m", "huggingplace", "demo"], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stderr == ""  # nothing of ours, and no unclosed session or connector at exit
    out = done.stdout
    assert "sent: sync client 3 records, async client 2 records" in out
    assert "read back 2 sessions" in out
    assert "session demo-sync-support: 3 records" in out and "session demo-async-sales: 2 records" in out
    assert re.search(r"ERR weather-tool \[tool\]\s+[\d.]+ ms\s+<- TimeoutError", out)
    assert re.search(r"ok  call-model\s+[\d.]+ ms", out)
    assert "See these records in the viewer: huggingplace serve --db " in out


def test_a_busy_port_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "huggingplace", "serve", "--port", str(port), "--db", str(tmp_path / "b.db"),
             "--key", "hp_busy_key_1:org-b"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"huggingplace serve: port {port} on 127.0.0.1 is in use; pass --port N, or --port 0 for any free port"]
    assert not (tmp_path / "b.db").exists()  # no database, so no key written


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "huggingplace", *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_keys_list_create_and_revoke(tmp_path: Path) -> None:
    from huggingplace.collector import Collector

    db = str(tmp_path / "keys.db")
    created = _cli("keys", "create", "--org", "team-a", "--label", "ci", "--db", db)
    assert created.returncode == 1 and "no database" in created.stderr  # nothing made by mistake
    with Collector(db, keys={"hp_first_key_1": "org-first"}) as c:
        created = _cli("keys", "create", "--org", "team-a", "--label", "ci", "--db", db)
        key = created.stdout.split()[0]
        assert created.returncode == 0 and key.startswith("hp_") and "shown once" in created.stdout
        listed = _cli("keys", "list", "--db", db).stdout
        assert "team-a" in listed and "org-first" in listed and key not in listed and "ci" in listed
        ok = requests.get(c.url + "/v2/sessions", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert ok.status_code == 200
        key_id = next(line.split()[0] for line in listed.splitlines() if "team-a" in line)
        assert _cli("keys", "revoke", key_id, "--db", db).returncode == 0
        assert key_id not in _cli("keys", "list", "--db", db).stdout
        gone = requests.get(c.url + "/v2/sessions", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert gone.status_code == 401
        missing = _cli("keys", "revoke", "abcdef", "--db", db)
        assert missing.returncode == 1 and "no key with id" in missing.stderr


def test_tail_follows_new_records_with_filters(collector: LiveCollector) -> None:
    env = {**os.environ, "HUGGINGPLACE_API_KEY": collector.key, "HUGGINGPLACE_ORG_ID": collector.org,
           "HUGGINGPLACE_BASE_URL": collector.url}
    tag = "tail-" + secrets.token_hex(3)
    procs = [subprocess.Popen([sys.executable, "-m", "huggingplace", "tail", *extra], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env)
             for extra in ((), ("--session", tag), ("--errors",))]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith("following ")
        with HuggingPlace(**collector.options()) as hp:
            hp.log(user_prompt=f"{tag} one", response="a", llm_model="m-1")
            hp.log(user_prompt=f"{tag} two", response="b", session_id=tag, user_id="u-7", token_count=5)
            hp.log(user_prompt=f"{tag} three", response="", status="error", error="boom")
        want = {0: ["one", "two", "three"], 1: ["two"], 2: ["three"]}
        seen = {}
        for i, proc in enumerate(procs):
            assert proc.stdout is not None
            seen[i] = [proc.stdout.readline() for _ in want[i]]
            assert [line.rsplit(tag + " ", 1)[1].strip() for line in seen[i]] == want[i], seen[i]
        assert "u-7" in seen[1][0] and "ok" in seen[1][0] and "error" in seen[2][0] and "m-1" in seen[0][0]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
            if proc.stdout:
                proc.stdout.close()


def _lines(stream: Any) -> queue.Queue[str]:
    """A pipe's lines, read on a thread: a test waits for one with a deadline, never forever."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in iter(stream.readline, "")], daemon=True).start()
    return lines


def test_tail_reconnects_after_a_collector_restart_and_misses_nothing(tmp_path: Path) -> None:
    """The collector goes away and comes back on the same port: tail says so, reconnects, prints
    what was stored meanwhile, then follows again; each record exactly once."""
    from huggingplace.collector import Collector

    db, port, key = str(tmp_path / "tail.db"), closed_port(), "hp_tail_key_" + secrets.token_hex(8)
    options = {"api_key": key, "org_id": "org-tail", "base_url": f"http://127.0.0.1:{port}"}
    env = {**os.environ, "HUGGINGPLACE_API_KEY": key, "HUGGINGPLACE_ORG_ID": "org-tail",
           "HUGGINGPLACE_BASE_URL": options["base_url"]}
    first = Collector(db, port=port, keys={key: "org-tail"}).start()
    proc = subprocess.Popen([sys.executable, "-m", "huggingplace", "tail"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    printed: list[str] = []
    try:
        assert proc.stdout is not None and proc.stderr is not None
        out, err = _lines(proc.stdout), _lines(proc.stderr)
        assert out.get(timeout=30).startswith("following ")
        with HuggingPlace(**options) as hp:
            hp.log(user_prompt="before the restart", response="a")
            printed.append(out.get(timeout=30))
            first.stop()
            assert "the stream ended; reconnecting" in err.get(timeout=30)
            second = Collector(db, port=port, keys={key: "org-tail"}).start()
            try:
                hp.log(user_prompt="while tail was away", response="a")  # tail waits 1 s to reconnect
                assert "reconnected" in err.get(timeout=30)
                printed.append(out.get(timeout=30))
                hp.log(user_prompt="after the restart", response="a")
                printed.append(out.get(timeout=30))
                time.sleep(0.5)  # allow-timing: room for a duplicate line to show up, if there were one
            finally:
                second.stop()
        printed.extend(out.queue)
    finally:
        proc.terminate()
        proc.wait(10)
    prompts = [line.rsplit("  ", 1)[1].strip() for line in printed]
    assert prompts == ["before the restart", "while tail was away", "after the restart"]


def test_demo_serve_keeps_the_viewer_running_with_a_login_link() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "huggingplace", "demo", "--serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        link = None
        deadline = time.monotonic() + 60
        while link is None and time.monotonic() < deadline:  # allow-timing: a bound on a subprocess's banner
            line = proc.stdout.readline()
            if not line:
                break
            found = re.search(r"The viewer: (\S+)", line)
            link = found.group(1) if found else None
        assert link is not None
        page = requests.get(link, timeout=10)
        assert page.status_code == 200 and "demo-sync-support" in page.text and "demo-async-sales" in page.text
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
