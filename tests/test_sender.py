"""``sender="process"``: delivery from a sender process, against the real collector and real
servers; what it reports is mirrored in the app, and a sender that dies is counted, not silent."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from huggingplace import ConfigurationError, HuggingPlace, MemoryTransport
from huggingplace._sender import Relay
from huggingplace._worker import Worker
from huggingplace.collector import Collector

from .background_helpers import bg_client, holds_a_set, outcome, wait_for
from .conftest import KEY
from .servers import ScriptedServer
from .strategies import hostile_fields, valid_fields


def _relay(hp: HuggingPlace) -> Relay:
    worker = hp._pipeline.worker  # type: ignore[union-attr]
    assert isinstance(worker, Relay)
    return worker


def _rows(db: str) -> list[sqlite3.Row]:
    """Each stored record with its steps' names and its metadata."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(
            "SELECT c.user_prompt, p.metadata, (SELECT group_concat(step_name) FROM steps s WHERE s.chat_id = c.id) "
            "AS steps FROM chat c LEFT JOIN prompt_details p ON p.chat_id = c.id ORDER BY c.user_prompt"
        ))


class Unpicklable:
    """A value pickle refuses (a lock inside) that the SDK still encodes (its attributes)."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()


def _encodes_where(monkeypatch: pytest.MonkeyPatch, where: str, *, behind: int = 0) -> None:
    """Records encoded in the app's relay ("app", as when the app is idle and the sender holds
    at least ``behind`` records) or in the sender ("sender", as when the app is busy), whatever
    the CPU does during the test."""
    from huggingplace import _sender

    monkeypatch.setattr(Relay, "_app_idle", lambda self: where == "app")
    monkeypatch.setattr(_sender, "BEHIND", behind)


@pytest.mark.parametrize("where", ["sender", "app"])
def test_a_sender_process_delivers_sessions_and_reports_back(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    caplog.set_level(logging.INFO, logger="huggingplace")
    _encodes_where(monkeypatch, where)
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool", sender="process")
        for i in range(300):
            with hp.start_session(f"s{i % 7}") as session:
                with session.step("retrieve", type="retrieval"):
                    pass
                session.log(user_prompt=f"q{i:03d}", response="a", metadata={"odd": Unpicklable()} if i == 5 else None)
        hp.log(user_prompt=3, response="a")  # refused where it is encoded: counted and warned here
        result = hp.flush(30)
        relay = _relay(hp)
        assert relay.encoded_here == (300 if where == "app" else 0)  # the Unpicklable one is encoded here anyway
        assert relay.proc is not None and relay.proc.pid != os.getpid() and relay.proc.poll() is None
        assert (result.sent, result.rejected, result.pending, result.dropped) == (300, 1, 0, 0)
        rows = _rows(c.db_path)
        assert [r["user_prompt"] for r in rows] == [f"q{i:03d}" for i in range(300)]
        assert all(r["steps"] == "retrieve" for r in rows)
        assert '"odd":{"lock":"<unlocked _thread.lock' in rows[5]["metadata"]  # encoded here, sent there
        assert any("field `user_prompt`" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
        stats = hp.stats()
        assert (stats.sent, stats.rejected) == (300, 1)
        proc = relay.proc
        first = hp.close(10)
        assert hp.close(10) == first and first.sent == 300 and first.complete
        assert proc.wait(10) == 0  # the sender ended with the app's close


def test_the_sender_is_not_used_where_it_cannot_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="sender must be one of thread, process"):
        HuggingPlace(api_key=KEY, org_id="o", base_url="http://127.0.0.1:9", background=True, sender="fork")
    monkeypatch.setenv("HUGGINGPLACE_SENDER", "process")
    from_env = bg_client("http://127.0.0.1:9", tmp_path / "a")
    assert isinstance(from_env._pipeline.worker, Relay)  # type: ignore[union-attr]
    for options in ({"transport": MemoryTransport()}, {"durable": True}, {"before_send": lambda p: p}):
        hp = bg_client("http://127.0.0.1:9", tmp_path / "b", **options)
        assert type(hp._pipeline.worker) is Worker, options  # type: ignore[union-attr]
        hp.close(1)
    from_env.close(1)


@pytest.mark.parametrize("executable,frozen", [("/usr/local/bin/uwsgi", False), ("/opt/app/app", True), ("", False)])
def test_no_sender_where_the_executable_is_not_a_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        executable: str, frozen: bool) -> None:
    """uWSGI's sys.executable is uWSGI itself and a frozen app's is the app: running either
    with ``-m`` would start another server or app, so a thread delivers."""
    import sys

    monkeypatch.setattr(sys, "executable", executable)
    if frozen:
        monkeypatch.setattr(sys, "frozen", True, raising=False)
    hp = bg_client("http://127.0.0.1:9", tmp_path / "spool", sender="process")
    assert type(hp._pipeline.worker) is Worker  # type: ignore[union-attr]
    hp.close(1)


def test_flush_answers_that_cross_never_move_a_flush_back(tmp_path: Path) -> None:
    """Two flushes answered out of order (the sender runs each in its own thread): the later
    generation stands, so a flush waiting for it does not wait out its timeout."""
    hp = bg_client("http://127.0.0.1:9", tmp_path / "spool", sender="process")
    relay = _relay(hp)
    relay._on(("flushed", {"sent": 3}, 0, 6, False))
    relay._on(("flushed", {"sent": 2}, 0, 5, True))
    assert (relay.flush_seen, relay.looked_gen, relay.down) == (6, 6, False)
    assert hp.stats().sent == 3  # counters are cumulative: the older answer adds nothing
    hp.close(1)


def _explode_elsewhere(pid: int) -> Any:
    if os.getpid() != pid:
        raise RuntimeError("this value only reads back in the process that made it")
    return "fine"


class ReadsBackOnlyHere:
    """Pickles in the app; unpickling it anywhere else raises."""

    def __reduce__(self) -> Any:
        return _explode_elsewhere, (os.getpid(),)


def test_a_record_the_sender_cannot_read_back_is_counted_and_settled(tmp_path: Path, internal_errors: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _encodes_where(monkeypatch, "sender")  # an idle app would have encoded it itself
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool", sender="process")
        hp.log(user_prompt="ok-1", response="a")
        hp.log(user_prompt="odd", response="a", metadata={"x": ReadsBackOnlyHere()})
        hp.log(user_prompt="ok-2", response="a")
        result = hp.flush(20)
        assert [r["user_prompt"] for r in _rows(c.db_path)] == ["ok-1", "ok-2"]
        hp.close(5)
    assert (result.sent, result.dropped, result.pending) == (2, 1, 0)  # not left pending forever
    assert hp.stats().dropped == {"invalid_input": 1}
    assert [where for where, _ in internal_errors] == ["unpacking a record in the sender"]  # heard here
    internal_errors.clear()


def test_a_killed_sender_is_counted_and_delivery_goes_on_from_a_thread(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with ScriptedServer(delay=5.0) as server:  # nothing is answered before the kill
        hp = bg_client(server.url, tmp_path / "spool", sender="process", flush_interval=0.01)
        for i in range(40):
            hp.log(user_prompt=f"before-{i}", response="a")
        relay = _relay(hp)
        wait_for(lambda: relay.handed == 40 and len(server.requests) > 0, timeout=30)
        assert relay.proc is not None
        os.kill(relay.proc.pid, signal.SIGKILL)
        wait_for(lambda: hp.stats().dropped.get("sender_lost") == 40, timeout=30)
        assert relay.in_process  # the relay became the thread worker
        server.delay = 0.0
        for i in range(10):
            hp.log(user_prompt=f"after-{i}", response="a")
        result = hp.close(20)
    assert (result.sent, result.dropped, result.pending) == (10, 40, 0)
    stats = hp.stats()
    assert stats.queued == stats.sent + stats.dropped_total + stats.spooled + stats.rejected
    assert any("sender_lost" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_records_a_dead_sender_was_never_handed_are_still_delivered(tmp_path: Path) -> None:
    """Before any record reaches it, a sender that will not start is no loss: the relay is the
    thread worker from the start."""
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool", sender="process")
        relay = _relay(hp)
        relay._spawn = lambda: False  # type: ignore[method-assign]
        for i in range(25):
            hp.log(user_prompt=f"q{i}", response="a")
        result = hp.close(10)
    assert relay.in_process and (result.sent, result.dropped, result.pending) == (25, 0, 0)


def test_a_sender_that_never_answers_is_killed_and_a_thread_delivers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A start that hangs (an import stuck on a network disk) cannot hold records back."""
    from huggingplace import _sender

    monkeypatch.setattr(_sender, "SENDER_COMMAND", ("-c", "import time; time.sleep(60)"))
    monkeypatch.setattr(_sender, "START_TIMEOUT", 0.5)
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool", sender="process")
        for i in range(10):
            hp.log(user_prompt=f"q{i}", response="a")
        result = hp.close(10)
        assert len(_rows(c.db_path)) == 10
    assert (result.sent, result.pending) == (10, 0) and _relay(hp).in_process
    assert any("did not start (it did not answer)" in r.getMessage() for r in caplog.records)


def test_the_sender_spools_when_the_endpoint_is_down(tmp_path: Path) -> None:
    from .servers import closed_port

    hp = bg_client(f"http://127.0.0.1:{closed_port()}", tmp_path / "spool", sender="process")
    for i in range(50):
        hp.log(user_prompt=f"q{i}", response="a")
    result = hp.flush(20)
    assert result.endpoint_down and result.pending == 0 and result.on_disk == 50 and result.spooled == 50
    final = hp.close(5)
    assert final.on_disk == 50 and final.pending == 0


def test_an_invalid_value_no_process_can_take_is_refused_here_and_counted(tmp_path: Path) -> None:
    """A draft that cannot be pickled is built in the app instead; invalid, it is refused and
    counted there, and the records around it still go through the sender."""
    class Hostile:
        def __reduce__(self) -> Any:
            raise RuntimeError("no pickling")

    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool", sender="process")
        hp.log(user_prompt="ok-1", response="a")
        hp.log(user_prompt="bad", response=Hostile())
        hp.log(user_prompt="ok-2", response="a")
        result = hp.close(10)
        assert [r["user_prompt"] for r in _rows(c.db_path)] == ["ok-1", "ok-2"]
    assert (result.sent, result.rejected, result.dropped, result.pending) == (2, 1, 0, 0)
    assert not _relay(hp).in_process


# ---- packing: what a record becomes on its way to the sender ------------------------------------
@given(fields=hostile_fields() | valid_fields().map(lambda pair: pair[0]), steps=st.integers(0, 3),
       failed=st.booleans())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_packed_draft_reads_back_as_the_same_record(fields: dict[str, Any], steps: int, failed: bool) -> None:
    """Any fields, and steps timed as a session times them (nested, failed): the sender builds
    from the unpacked draft exactly the body (or the refusal) the app would have built."""
    from huggingplace._draft import Draft
    from huggingplace._mapping import normalize
    from huggingplace._models import Step
    from huggingplace._sender import pack, unpack

    assume(not holds_a_set(fields))  # a set has no order to keep
    try:
        given = normalize(fields)
    except Exception:
        assume(False)
        raise
    timed = []
    for i in range(steps):
        step = Step.timed(f"step-{i}")
        step.start()
        if i == 1:
            inner = Step.timed("inner")
            inner.start()
            inner.finish()
            step.steps.append(inner)
        step.finish(RuntimeError("boom") if failed and i == 0 else None)
        timed.append(step)
    if timed and "step_data" not in given:
        given["step_data"] = ("step_data", timed)
    draft = Draft(given)
    packed = pack(draft)
    assert packed is not None and packed[:1] in (b"M", b"P")
    back = Draft.restore(*unpack(packed)[1:])
    assert outcome(back) == outcome(draft)


def test_steps_travel_by_marshal_and_objects_by_pickle() -> None:
    from huggingplace._draft import Draft
    from huggingplace._mapping import normalize
    from huggingplace._models import Step
    from huggingplace._sender import pack

    step = Step.timed("retrieve")
    step.start()
    step.finish()
    plain = normalize({"user_prompt": "q", "response": "a", "metadata": {"k": [1, 2.5, None]}})
    assert pack(Draft({**plain, "step_data": ("step_data", [step])}))[:1] == b"M"  # type: ignore[index]
    odd = normalize({"user_prompt": "q", "response": "a", "metadata": {"k": Unpicklable.__new__(Unpicklable)}})
    assert pack(Draft(odd))[:1] == b"P"  # type: ignore[index]
    assert pack(Draft(normalize({"user_prompt": "q", "response": "a", "metadata": {"k": Unpicklable()}}))) is None


def test_a_sender_of_another_version_refuses_and_a_thread_delivers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The package changed on disk after the app started: the new sender says so and the app
    delivers from a thread, logging why."""
    from huggingplace import _sender

    monkeypatch.setattr(_sender, "__version__", "0.0.0+the-app-started-with-this")
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool", sender="process")
        for i in range(5):
            hp.log(user_prompt=f"q{i}", response="a")
        result = hp.close(10)
        assert [r["user_prompt"] for r in _rows(c.db_path)] == [f"q{i}" for i in range(5)]
    assert result.sent == 5 and _relay(hp).in_process
    assert any("0.0.0+the-app-started-with-this in the app" in r.getMessage() for r in caplog.records)


def test_an_app_killed_with_sigkill_still_has_what_it_handed_over_delivered(tmp_path: Path) -> None:
    """kill -9 loses a thread's queue; a sender process outlives the app: it sees its input end
    and delivers what it was handed within the exit deadline, then exits."""
    import json
    import subprocess
    import sys
    import textwrap

    code = """
        import json, time
        from huggingplace import HuggingPlace
        hp = HuggingPlace(background=True, sender="process")
        ids = [hp.log(user_prompt=f"killed-{i}", response="a").event_id for i in range(100)]
        relay = hp._pipeline.worker
        while relay.handed < 100:
            time.sleep(0.01)
        print(json.dumps([relay.proc.pid, ids]), flush=True)
        time.sleep(60)
    """
    with ScriptedServer(delay=0.3) as server:  # a slow endpoint: most records are still in the sender
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("HUGGINGPLACE_")},
               "HUGGINGPLACE_API_KEY": KEY, "HUGGINGPLACE_ORG_ID": "org-a", "HUGGINGPLACE_BASE_URL": server.url,
               "HUGGINGPLACE_SPOOL_DIR": str(tmp_path / "spool")}
        app = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        assert app.stdout is not None
        sender_pid, ids = json.loads(app.stdout.readline())
        answered_at_kill = len(server.answered)
        app.send_signal(signal.SIGKILL)
        app.wait(10)
        app.stdout.close()
        app.stderr.close()  # type: ignore[union-attr]
        assert wait_for(lambda: not os.path.exists(f"/proc/{sender_pid}") or _zombie(sender_pid), timeout=30)
        stored = server.stored_ids()
    assert answered_at_kill < 100  # the kill came while records were still on their way
    assert stored | _spooled(tmp_path / "spool") == set(ids)  # delivered, or on disk for the next process


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _spooled(root: Path) -> set[str]:
    from .background_helpers import spooled_ids

    return {i for d in root.iterdir() if d.is_dir() for i in spooled_ids(d)} if root.is_dir() else set()


def test_multiprocessing_children_deliver_from_a_thread(tmp_path: Path) -> None:
    """A pool worker's terminate() can miss its SIGTERM while a sender finishes (the host test
    hung one run in a few): in a multiprocessing child the relay is the thread worker."""
    import multiprocessing

    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool", sender="process")
        queue: Any = multiprocessing.get_context("fork").SimpleQueue()

        def child() -> None:
            hp.log(user_prompt="from-the-child", response="a")
            result = hp.flush(10)
            queue.put((result.sent, _relay(hp).in_process, _relay(hp).proc is None))

        proc = multiprocessing.get_context("fork").Process(target=child)
        proc.start()
        proc.join(30)
        assert queue.get() == (1, True, True)
        hp.log(user_prompt="from-the-parent", response="a")
        assert hp.flush(10).sent == 1 and not _relay(hp).in_process  # the parent keeps its sender
        hp.close(5)


def test_the_relay_judges_the_app_idle_by_what_its_other_threads_spent() -> None:
    """Idle while the app's threads sleep; busy while one of them runs Python; a span too short
    to judge keeps the last verdict."""
    import threading
    import time
    from types import SimpleNamespace

    judge = SimpleNamespace(_clock=None, _idle=False)

    def look() -> bool:
        return Relay._app_idle(judge)  # type: ignore[arg-type]

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    assert look() is False  # nothing to judge by yet
    time.sleep(0.1)
    assert look() is True
    assert look() is True  # too short a span: the verdict holds
    burner = threading.Thread(target=spin, args=(0.1,))
    burner.start()
    burner.join()
    assert look() is False
    time.sleep(0.1)
    assert look() is True
    spin(0.1)  # this thread's own CPU is the relay's: it never makes the app busy
    assert look() is True


def test_a_flush_after_a_busy_spell_finds_the_app_idle_and_encodes_here(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The relay judges the app over its last cycle, which a burst of work makes busy; a flush
    makes its caller wait, so the relay looks again over a few milliseconds and encodes what is
    queued itself."""
    import threading
    import time

    from huggingplace import _sender

    monkeypatch.setattr(_sender, "BEHIND", 0)  # as if the sender were behind
    monkeypatch.setattr(_sender, "_CYCLE", 30.0)  # the relay looks only when a flush wakes it

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = bg_client(c.url, tmp_path / "spool", sender="process", flush_interval=30.0)
        hp.log(user_prompt="first", response="a")
        assert hp.flush(20).sent == 1
        relay = _relay(hp)
        before = relay.encoded_here
        burner = threading.Thread(target=spin, args=(0.2,))  # the relay sees the app busy
        burner.start()
        burner.join()
        for i in range(100):
            hp.log(user_prompt=f"q{i}", response="a")
        assert hp.flush(20).sent == 101
        assert relay.encoded_here - before == 100
        assert len(_rows(c.db_path)) == 101
        hp.close(5)


def test_the_relay_encodes_only_for_a_sender_that_is_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle app lends its CPU only while the sender holds a backlog: a sender that keeps up
    encodes at its idle priority."""
    _encodes_where(monkeypatch, "app", behind=256)
    with ScriptedServer() as server:
        hp = bg_client(server.url, tmp_path / "spool", sender="process")
        for i in range(10):
            hp.log(user_prompt=f"few-{i}", response="a")
        assert hp.flush(20).sent == 10
        relay = _relay(hp)
        assert relay.encoded_here == 0  # the sender kept up
        server.delay = 1.0  # the sender falls behind: 300 records wait there
        for i in range(300):
            hp.log(user_prompt=f"many-{i}", response="a")
        wait_for(lambda: relay.handed == 310, timeout=20)  # the first of them raw (the sender was not behind yet)
        before = relay.encoded_here
        assert before < 300
        for i in range(50):
            hp.log(user_prompt=f"behind-{i}", response="a")
        wait_for(lambda: relay.handed == 360, timeout=20)
        assert relay.encoded_here - before == 50
        server.delay = 0.0
        result = hp.close(30)
    assert (result.sent, result.pending, result.dropped) == (360, 0, 0)
