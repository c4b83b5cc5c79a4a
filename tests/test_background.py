"""Background delivery under faults, against real loopback servers; every test checks
produced == stored_unique + spooled + counted drops."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from huggingplace import AsyncHuggingPlace, HuggingPlace
from huggingplace._spool import Spool
from huggingplace.collector import Collector

from .background_helpers import assert_conserved, bg_client, entries, fast, spooled_ids, spooled_payloads, wait_for
from .conftest import KEY
from .servers import ResettingServer, ScriptedServer, SilentServer, closed_port


def _stored(db: str, ids: list[str]) -> set[str]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT event_id FROM chat").fetchall()
    return {r[0] for r in rows} & set(ids)


def _log_many(hp: HuggingPlace, n: int, prefix: str = "q") -> list[str]:
    return [hp.log(user_prompt=f"{prefix}{i}", response="a").event_id for i in range(n)]


def test_log_returns_queued_and_flush_delivers(tmp_path: Path) -> None:
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool")
        result = hp.log(user_prompt="q", response="a")
        assert result.queued and result.status_code is None and len(result.event_id) == 32
        ids = [result.event_id, *_log_many(hp, 299)]
        flushed = hp.flush(timeout=10)
        assert flushed.pending == 0 and flushed.sent == 300
        stats = hp.stats()
        assert (stats.queued, stats.sent, stats.spooled, stats.dropped_total) == (300, 300, 0, 0)
        hp.close()
        assert _stored(c.db_path, ids) == set(ids)
        assert_conserved(ids, _stored(c.db_path, ids), tmp_path / "spool", hp.stats())


def test_endpoint_down_then_back_loses_nothing(tmp_path: Path) -> None:
    """Connections refused for a few seconds, then the collector starts on that port."""
    port = closed_port()
    hp = bg_client(f"http://127.0.0.1:{port}", tmp_path / "spool")
    ids = _log_many(hp, 60)
    assert wait_for(lambda: hp.stats().spooled == 60, timeout=15)  # retries spent: on disk
    time.sleep(1.0)
    with Collector(str(tmp_path / "c.db"), port=port, keys={KEY: "org-a"}) as c:
        assert wait_for(lambda: len(_stored(c.db_path, ids)) == 60, timeout=20)
        hp.close()
        stored = _stored(c.db_path, ids)
        import sqlite3

        with sqlite3.connect(c.db_path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM chat").fetchone()[0] == 60  # each stored once
    assert spooled_ids(tmp_path / "spool") == []
    assert hp.stats().replayed == 60
    assert_conserved(ids, stored, tmp_path / "spool", hp.stats())


def test_black_hole_close_is_bounded_and_spools_the_rest(tmp_path: Path) -> None:
    """A server that accepts and never answers: close(2.0) returns about then, nothing lost."""
    with SilentServer() as server:
        hp = bg_client(server.url, tmp_path / "spool", timeout=0.5)
        ids = _log_many(hp, 40)
        start = time.monotonic()
        result = hp.close(2.0)
        took = time.monotonic() - start
    print(f"close(2.0) took {took:.2f} s")
    assert took < 4.0  # allow-timing: close() must be bounded (an unbounded one hangs for ever)
    assert result.pending == 0
    assert sorted(spooled_ids(tmp_path / "spool")) == sorted(ids)
    assert_conserved(ids, set(), tmp_path / "spool", hp.stats())


@pytest.mark.parametrize("kind", ["seconds", "http-date", "malformed"])
def test_retry_after_pauses_the_whole_pipeline(tmp_path: Path, kind: str) -> None:
    """After a 429 with Retry-After, no request at all reaches the endpoint before it."""
    header = {
        "seconds": "1",
        "http-date": email.utils.formatdate(time.time() + 2, usegmt=True),
        "malformed": "in a while",
    }[kind]
    script = lambda n: (429, {"Retry-After": header}, {"error": "slow down"}) if n < 5 else (200, {}, {})  # noqa: E731
    with ScriptedServer(script) as server:
        hp = bg_client(server.url, tmp_path / "spool", batch_size=5)
        ids = _log_many(hp, 5)
        hp.flush(timeout=8)
        hp.close()
        stored = server.stored_ids()
    times = [t for t, _, _ in server.requests]
    assert len(times) >= 6
    gap = min(times[5:]) - max(times[:5])
    if kind == "seconds":
        assert gap >= 0.95
    elif kind == "http-date":
        assert gap >= 0.5  # an HTTP date has whole seconds: at least 1 s minus this clock's fraction
    assert stored == set(ids)
    assert_conserved(ids, stored, tmp_path / "spool", hp.stats())


def test_5xx_storm_then_recovery(tmp_path: Path) -> None:
    script = lambda n: (503, {}, {"error": "storm"}) if n < 40 else (200, {}, {})  # noqa: E731
    with ScriptedServer(script) as server:
        hp = bg_client(server.url, tmp_path / "spool")
        ids = _log_many(hp, 30)
        assert wait_for(lambda: server.stored_ids() >= set(ids), timeout=20)
        hp.close()
        stored = server.stored_ids()
    assert stored == set(ids)
    assert hp.stats().retried > 0
    assert_conserved(ids, stored, tmp_path / "spool", hp.stats())


def test_stored_then_reset_is_retried_and_stored_once(tmp_path: Path) -> None:
    """The server stores, then drops the connection before answering: the retry carries the
    same event_id, so the record is stored exactly once."""
    with ResettingServer() as server:
        hp = bg_client(server.url, tmp_path / "spool")
        ids = _log_many(hp, 10)
        hp.flush(timeout=10)
        hp.close()
        sent_ids = [b["event_id"] for _, _, b in server.requests]
    assert set(server.stored) == set(ids)
    assert all(sent_ids.count(i) == 2 for i in ids)  # first attempt reset, second answered
    assert hp.stats().sent == 10
    assert_conserved(ids, set(server.stored), tmp_path / "spool", hp.stats())


def test_slow_endpoint_never_slows_the_caller(tmp_path: Path) -> None:
    """2 s per request: 1,000 log() calls all return before the endpoint answered even once."""
    with ScriptedServer(delay=2.0) as server:
        hp = bg_client(server.url, tmp_path / "spool", timeout=5.0)
        start = time.perf_counter()
        ids = _log_many(hp, 1000)
        took = time.perf_counter() - start
        answered_during_logging = len(server.answered)
        print(f"1,000 log() calls took {took * 1000:.1f} ms with a 2 s endpoint")
        hp.close(1.0)
        stored = server.stored_ids()
    assert answered_during_logging == 0
    assert_conserved(ids, stored, tmp_path / "spool", hp.stats())


def test_queue_overflow_never_blocks_and_spools_the_overflow(tmp_path: Path) -> None:
    """10x the queue's capacity with the endpoint down: every log() returns queued, the overflow
    goes to disk, and the counters are exact."""
    hp = bg_client(f"http://127.0.0.1:{closed_port()}", tmp_path / "spool", max_queue_size=100)
    results = [hp.log(user_prompt=f"q{i}", response="a") for i in range(1000)]
    assert all(r.queued for r in results)
    ids = [r.event_id for r in results]
    assert wait_for(lambda: hp.stats().spooled >= 900, timeout=10)
    hp.close(1.0)
    stats = hp.stats()
    assert (stats.queued, stats.spooled, stats.sent, stats.dropped_total) == (1000, 1000, 0, 0)
    assert sorted(spooled_ids(tmp_path / "spool")) == sorted(ids)
    assert_conserved(ids, set(), tmp_path / "spool", stats)


def test_key_rotation_pauses_and_spools_instead_of_dropping(tmp_path: Path) -> None:
    """401s (a rotated key) hold records on disk; they are delivered once the endpoint accepts."""
    script = lambda n: (401, {}, {"error": "bad key"}) if n < 4 else (200, {}, {})  # noqa: E731
    with ScriptedServer(script) as server:
        hp = bg_client(server.url, tmp_path / "spool", batch_size=4)
        ids = _log_many(hp, 4)
        assert wait_for(lambda: server.stored_ids() == set(ids), timeout=15)
        hp.close()
        stored = server.stored_ids()
    stats = hp.stats()
    assert stats.spooled == 4 and stats.replayed == 4 and stats.rejected == 0
    assert_conserved(ids, stored, tmp_path / "spool", stats)


def test_refused_records_are_counted_with_the_servers_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = [(422, {}, {"error": "`llm_model` is too long", "field": "llm_model"})]
    with ScriptedServer(script) as server:
        hp = bg_client(server.url, tmp_path / "spool")
        ids = _log_many(hp, 3)
        hp.close()
    assert hp.stats().rejected == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3 and all("HTTP 422" in w and "`llm_model`" in w for w in warnings)
    assert {i for i in ids if any(i in w for w in warnings)} == set(ids)  # each line names its record
    assert_conserved(ids, set(), tmp_path / "spool", hp.stats())


def test_invalid_input_is_counted_never_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hp = bg_client(f"http://127.0.0.1:{closed_port()}", tmp_path / "spool")
    bad = hp.log(user_prompt="q", response="a", token_count=-1)
    typo = hp.log(user_promt="q", response="a")
    with hp.start_session("s") as s:
        in_session = s.log(user_prompt="q", response=5)
    with hp.trace("t"):  # no user_prompt: refused and counted, the block is not disturbed
        pass
    # a misspelt key is refused at once; a bad value is found by the worker, off the caller's thread
    assert not typo.queued and "did you mean `user_prompt`" in (typo.error or "")
    assert bad.queued and in_session.queued and bad.error is None
    flushed = hp.flush(5)
    assert hp.stats().rejected == 4 and flushed.rejected == 4 and flushed.pending == 0
    assert "field `token_count` is invalid" in caplog.text and "field `response` is invalid" in caplog.text
    assert "field `user_prompt` is invalid" in caplog.text  # the trace had no prompt
    hp.close(0.5)


def test_what_the_caller_changes_after_log_is_not_in_the_record(tmp_path: Path) -> None:
    """Background log() validates on the worker, later: the record is what was passed then."""
    spool_dir = tmp_path / "spool"
    hp = bg_client(f"http://127.0.0.1:{closed_port()}", spool_dir, flush_interval=5)  # built at close()
    meta = {"request": {"id": "first"}, "tags": ["a"]}
    steps = [{"name": "retrieve", "metadata": {"k": 1}}]
    called = time.time()
    result = hp.log(user_prompt="q", response="a", metadata=meta, step_data=steps)
    meta["request"]["id"] = "changed"
    meta["tags"].append("b")
    steps[0]["metadata"]["k"] = 2
    time.sleep(0.5)  # the record is built after this: its time must still be the call's
    hp.close(2)
    stored = spooled_payloads(spool_dir)
    stamped = dt.datetime.fromisoformat(stored[0]["timestamp"].replace("Z", "+00:00")).timestamp()
    assert called - 0.01 <= stamped <= called + 0.25
    assert [p["event_id"] for p in stored] == [result.event_id]
    assert stored[0]["metaData"]["request"] == {"id": "first"} and stored[0]["metaData"]["tags"] == ["a"]
    assert stored[0]["step_data"][0]["metadata"] == {"k": 1}


def test_corrupt_spool_files_are_quarantined_and_counted(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    good = Spool(spool_dir)
    payload = {"user_prompt": "q", "ai_response": "a", "org_id": "org-a", "mode": "prod", "event_id": "c" * 32}
    good.write(entries(payload))
    # a file whose header claims a billion records but whose body holds two and some garbage
    body = b"".join(b"%s\t%s\n" % (e.encode(), b) for e, b in entries({"event_id": "d" * 32}, {"event_id": "e" * 32}))
    (spool_dir / "ready" / "00000000000000000001-1-bad.hps").write_bytes(
        b'{"v": 2, "n": 1000000000, "crc": 1}\n' + body + b"garbage\n"
    )
    (spool_dir / "ready" / "00000000000000000002-1-empty.hps").write_bytes(b"")
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, spool_dir)
        hp.log(user_prompt="wake", response="a")
        assert wait_for(lambda: len(_stored(c.db_path, ["c" * 32])) == 1, timeout=10)
        hp.close()
    assert hp.stats().dropped["spool_corrupt"] == 2  # what the files provably held, never their header's claim
    assert len(list((spool_dir / "quarantine").iterdir())) == 2  # set aside, not deleted


def test_spool_is_bounded_and_eviction_is_counted(tmp_path: Path) -> None:
    hp = bg_client(f"http://127.0.0.1:{closed_port()}", tmp_path / "spool", max_queue_size=10,
                   spool_max_bytes=20_000)
    hp._pipeline.config = __import__("attrs").evolve(hp._pipeline.config, overflow_chunk=10)
    ids = _log_many(hp, 500)
    hp.close(1.0)
    stats = hp.stats()
    assert stats.dropped.get("spool_full", 0) > 0
    sizes = [p.stat().st_size for p in (tmp_path / "spool" / "ready").iterdir()]
    assert sum(sizes) <= 20_000 + 2 * max(sizes)  # the newest file of each of the two writers may overshoot
    assert_conserved(ids, set(), tmp_path / "spool", stats)


def test_batch_route_is_used_when_advertised(tmp_path: Path) -> None:
    def reply(n: int) -> tuple[int, dict[str, str], object]:
        batch = lambda body: {"results": [{"status": 200, "event_id": r["event_id"]} for r in body["records"]]}  # noqa: E731
        return 200, {"HuggingPlace-Batch-Route": "/v2/chatgpt/store_generated_response/batch"}, (
            batch if n > 0 else {"message": "stored"}
        )

    with ScriptedServer(reply) as server:
        hp = bg_client(server.url, tmp_path / "spool", batch_size=50)
        ids = _log_many(hp, 1)
        hp.flush(5)
        ids += _log_many(hp, 200)
        hp.flush(10)
        hp.close()
    assert server.paths[0].endswith("/store_generated_response")
    assert all(p.endswith("/batch") for p in server.paths[1:])
    assert len(server.paths) <= 6  # 1 single + 4 batches of 50 (+1 if a batch was cut early)
    assert server.stored_ids() == set(ids)


def test_batch_route_end_to_end_with_the_collector(tmp_path: Path) -> None:
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool")
        ids = _log_many(hp, 1000)
        hp.flush(20)
        hp.close()
        stored = _stored(c.db_path, ids)
    assert stored == set(ids)
    assert hp._pipeline.worker.batch_url is not None and hp._pipeline.worker.batch_url.endswith("/batch")
    assert_conserved(ids, stored, tmp_path / "spool", hp.stats())


def test_async_background_client(tmp_path: Path) -> None:
    async def main(url: str) -> tuple[list[str], object]:
        hp = fast(AsyncHuggingPlace(api_key=KEY, org_id="org-a", base_url=url, background=True,
                                    spool_dir=str(tmp_path / "spool"), flush_interval=0.05))
        ids = []
        async with hp.start_session("a-bg") as s:
            with s.step("gen"):
                pass
            r = await s.log(user_prompt="q", response="a")
            assert r.queued
            ids.append(r.event_id)
        for i in range(20):
            ids.append((await hp.log(user_prompt=f"q{i}", response="a")).event_id)
        flushed = await hp.flush(10)
        await hp.close()
        return ids, flushed

    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        ids, flushed = asyncio.run(main(c.url))
        assert _stored(c.db_path, ids) == set(ids)
    assert flushed.pending == 0 and flushed.sent == 21  # type: ignore[attr-defined]


def test_log_after_close_is_counted(tmp_path: Path) -> None:
    hp = bg_client(f"http://127.0.0.1:{closed_port()}", tmp_path / "spool")
    hp.close(0.5)
    result = hp.log(user_prompt="q", response="a")
    assert not result.queued and hp.stats().dropped == {"closed": 1}


# ---- processes: exit, kill -9, fork, signals, shared spools ------------------------------------

SCRIPT_ENV = {"PYTHONPATH": str(Path(__file__).parent.parent)}


def _run(code: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **SCRIPT_ENV, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _env(base_url: str, spool: Path) -> dict[str, str]:
    return {"HUGGINGPLACE_API_KEY": KEY, "HUGGINGPLACE_ORG_ID": "org-a", "HUGGINGPLACE_BASE_URL": base_url,
            "HUGGINGPLACE_SPOOL_DIR": str(spool)}


PRODUCER = """
    import json, sys
    from huggingplace import HuggingPlace
    hp = HuggingPlace(background=True, spool_dir=sys.argv[-1] if len(sys.argv) > 1 else None, {extra})
    ids = [hp.log(user_prompt=f"q{{i}}", response="a").event_id for i in range({n})]
    print(json.dumps(ids), flush=True)
    {tail}
"""


def test_normal_exit_spools_and_the_next_process_replays(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    port = closed_port()
    proc = _run(PRODUCER.format(extra="max_retries=0", n=200, tail=""), **_env(f"http://127.0.0.1:{port}", spool))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    ids = json.loads(out)
    (spool_dir,) = [p for p in spool.iterdir() if p.is_dir()]
    assert sorted(spooled_ids(spool_dir)) == sorted(ids)  # nothing lost at exit
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}, port=port) as c:
        hp = bg_client(c.url, spool_dir)  # a later process: replays at start
        assert wait_for(lambda: _stored(c.db_path, ids) == set(ids), timeout=20)
        hp.close()
    assert spooled_ids(spool_dir) == []


def test_kill_9_with_durable_loses_nothing(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with SilentServer() as server:
        proc = _run(
            PRODUCER.format(extra="durable=True, timeout=30", n=100, tail="import time; time.sleep(60)"),
            **_env(server.url, spool),
        )
        assert proc.stdout is not None
        ids = json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()  # type: ignore[union-attr]
    (spool_dir,) = [p for p in spool.iterdir() if p.is_dir()]
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, spool_dir)
        assert wait_for(lambda: _stored(c.db_path, ids) == set(ids), timeout=20)
        hp.close()
    assert spooled_ids(spool_dir) == []


def test_fork_with_a_busy_client_delivers_from_both_processes(tmp_path: Path) -> None:
    """A thread keeps logging (so locks are often held) while the process forks; the child gets a
    fresh worker and queue, and both processes deliver everything they produced."""
    code = """
        import json, multiprocessing, threading, sys
        from huggingplace import HuggingPlace
        hp = HuggingPlace(background=True, flush_interval=0.05)
        parent_ids, stop = [], threading.Event()
        def spam():
            while not stop.is_set() and len(parent_ids) < 5000:
                parent_ids.append(hp.log(user_prompt="parent", response="a").event_id)
        t = threading.Thread(target=spam); t.start()
        def child(q):
            ids = [hp.log(user_prompt="child", response="a").event_id for _ in range(50)]
            r = hp.close(10)
            q.put((ids, r.pending, hp.stats().sent))
        ctx = multiprocessing.get_context("fork")
        results = []
        for _ in range(3):
            q = ctx.Queue(); p = ctx.Process(target=child, args=(q,)); p.start()
            results.append(q.get(timeout=30)); p.join(30)
        stop.set(); t.join()
        hp.close(10)
        st = hp.stats()
        print(json.dumps({"parent": parent_ids, "children": results, "sent": st.sent, "spooled": st.spooled}))
    """
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        proc = _run(code, **_env(c.url, tmp_path / "spool"))
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        data = json.loads(out)
        child_ids = [i for ids, _, _ in data["children"] for i in ids]
        every = data["parent"] + child_ids
        assert all(pending == 0 and sent == 50 for _, pending, sent in data["children"]), (data["children"], err)
        assert data["sent"] + data["spooled"] == len(data["parent"])
        stored = _stored(c.db_path, every)
        root = tmp_path / "spool"
        dirs = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
        spooled = {i for d in dirs for i in spooled_ids(d)}
        assert stored | spooled == set(every) and len(stored) == data["sent"] + 150


def test_sigterm_helper_spools_pending_records(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    code = PRODUCER.format(
        extra="max_retries=0, flush_interval=30",
        n=50,
        tail="import time; time.sleep(60)",
    ).replace(
        "from huggingplace import HuggingPlace",
        "from huggingplace import HuggingPlace, install_sigterm_handler\n    install_sigterm_handler()",
    )
    with SilentServer() as server:
        proc = _run(code, **_env(server.url, spool))
        assert proc.stdout is not None
        ids = json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        proc.stdout.close()
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGTERM  # the default action still ends the process
    (spool_dir,) = [p for p in spool.iterdir() if p.is_dir()]
    assert sorted(spooled_ids(spool_dir)) == sorted(ids)


def test_processes_sharing_a_spool_send_each_file_once(tmp_path: Path) -> None:
    spool_dir = tmp_path / "shared"
    spool = Spool(spool_dir)
    ids = []
    for i in range(40):
        event_id = f"{i:032x}"
        ids.append(event_id)
        spool.write(entries({"user_prompt": "q", "ai_response": "a", "org_id": "org-a", "mode": "prod",
                             "event_id": event_id}))
    with ScriptedServer(delay=0.01) as server:
        env = {**os.environ, **SCRIPT_ENV, **_env(server.url, tmp_path)}
        procs = [
            subprocess.Popen([sys.executable, "-m", "huggingplace", "spool", "replay", "--dir", str(spool_dir)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=60) for p in procs]
        sent = [b["event_id"] for b in server.bodies]
    assert all(p.returncode == 0 for p in procs), outputs
    assert sorted(sent) == sorted(ids)  # every record sent, none by two processes
    assert spooled_ids(spool_dir) == []


def test_spool_cli_status_and_purge(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    spool.write(entries({"event_id": "a" * 32}, {"event_id": "b" * 32}))
    env = {**os.environ, **SCRIPT_ENV}
    status = subprocess.run([sys.executable, "-m", "huggingplace", "spool", "status", "--dir", str(tmp_path / "s")],
                            env=env, capture_output=True, text=True, check=True).stdout
    assert "2 record(s) in 1 file(s)" in status
    purge = subprocess.run([sys.executable, "-m", "huggingplace", "spool", "purge", "--dir", str(tmp_path / "s")],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert "purged 2 record(s)" in purge
    assert spool.status().records == 0


def test_spool_directory_is_private(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "private")
    assert not spool.directory.exists()  # made on first use, never by the constructor
    spool.write(entries({"event_id": "a" * 32}))
    assert (os.stat(spool.directory).st_mode & 0o777) == 0o700
    assert all((os.stat(d).st_mode & 0o777) == 0o700 for d in spool.directory.iterdir())


def test_a_failing_worker_cycle_is_counted_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, internal_errors: list[tuple[str, BaseException]]
) -> None:
    """A bug of ours inside the worker: swallowed, logged without payload, counted; the worker
    goes on and every record still arrives."""
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool")
        worker = hp._pipeline.worker
        real = worker._cycle
        calls = {"n": 0}

        async def flaky() -> bool:
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("worker bug q0")
            return await real()

        worker._cycle = flaky  # type: ignore[method-assign]
        first = _log_many(hp, 5)
        assert wait_for(lambda: calls["n"] >= 3, timeout=10)
        later = _log_many(hp, 5, prefix="after")
        assert worker.alive
        hp.flush(10)
        hp.close()
        ids = first + later
        assert _stored(c.db_path, ids) == set(ids)
    assert [where for where, _ in internal_errors] == ["worker"]
    internal_errors.clear()  # expected here: the test caused it
    assert hp.stats().dropped.get("internal_error") == 1
    assert "q0" not in caplog.text  # the exception's message is not logged at all


def test_close_interrupts_a_retry_after_pause(tmp_path: Path) -> None:
    """The endpoint asks for a 30 s pause: close(1.0) does not wait it out, it spools."""
    with ScriptedServer([(503, {"Retry-After": "30"}, {"error": "maintenance"})]) as server:
        hp = bg_client(server.url, tmp_path / "spool")
        ids = _log_many(hp, 3)
        assert wait_for(lambda: len(server.requests) >= 3, timeout=5)
        start = time.monotonic()
        hp.close(1.0)
        took = time.monotonic() - start
    assert took < 3.0  # allow-timing: bounded by close's timeout, not by the 30 s pause
    assert sorted(spooled_ids(tmp_path / "spool")) == sorted(ids)
    assert_conserved(ids, set(), tmp_path / "spool", hp.stats())
