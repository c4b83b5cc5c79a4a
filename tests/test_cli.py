"""The `huggingplace` command as a user runs it: serve (with a restart) and demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from huggingplace import HuggingPlace

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
        if "HUGGINGPLACE_BASE_URL" in line:
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
        assert "HUGGINGPLACE_API_KEY" not in banner  # shown once only
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
        assert "2 key(s)" in banner and "hp_cli_key_1" not in banner
        for key, org in (("hp_cli_key_1", "org-cli"), ("hp_env_key_1", "org-env")):
            with HuggingPlace(api_key=key, org_id=org, base_url=f"http://127.0.0.1:{port}") as hp:
                assert hp.log(user_prompt="q", response="a").status_code == 200
    finally:
        _stop(proc)


def test_demo_runs_and_reads_everything_back() -> None:
    """The README's first command: a multi-step session through both clients, printed back."""
    out = subprocess.run(
        [sys.executable, "-m", "huggingplace", "demo"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "sent: sync client 3 records, async client 2 records" in out
    assert "read back 2 sessions" in out
    assert "session demo-sync-support: 3 records" in out and "session demo-async-sales: 2 records" in out
    assert re.search(r"ERR weather-tool \[tool\]\s+[\d.]+ ms\s+<- TimeoutError", out)
    assert re.search(r"ok  call-model\s+[\d.]+ ms", out)
