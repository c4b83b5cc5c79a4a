"""Delivery from a process of its own (``sender="process"``).

The app keeps only the queue: a relay thread hands what ``log()`` queued to a sender process
(``python -m huggingplace._sender``) a few hundred records per message, and mirrors back what
the sender reports (counters, records settled, flushes done). The sender runs an ordinary
background pipeline, so validation, redaction, encoding, HTTP, retries and the spool all cost
the sender's CPU and GIL, not the app's, and at a lower scheduling priority: while the app keeps
the cores busy, delivery waits (in the sender's bounded queue, then its spool) instead of
slowing requests. While the app is idle and the sender behind, the relay encodes records itself
(its cycles are free then), and the sender, the bottleneck of a backlog, only sends them.

Records keep the guarantees of the thread worker. If the sender cannot start or dies, the relay
turns into that worker in place; records the dead sender held are counted (``sender_lost``).
"""

from __future__ import annotations

import logging
import marshal
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any, Optional

from . import _exit, _internal
from ._batcher import Item
from ._draft import Draft, KeywordDraft
from ._internal import swallow
from ._models import Step
from ._version import __version__
from ._worker import Worker

if TYPE_CHECKING:  # pragma: no cover
    from ._background import Pipeline

__all__ = ["Relay", "SENDER_NICE", "can_relay"]

logger = logging.getLogger("huggingplace")

SENDER_NICE = 10  #: how much lower the sender's scheduling priority is than the app's
START_TIMEOUT = 15.0  #: how long the sender may take to start (an import of aiohttp on a busy host)
SENDER_COMMAND = ("-m", "huggingplace._sender")  #: the sender, after the app's own interpreter
_MESSAGE = 256  #: records per message (callers pickled them already: a message is a list of bytes)
_CYCLE = 0.05  #: how often the relay hands records over (a short GIL hold each time)
_HEADER = struct.Struct("!I")
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_PICKLE = pickle.PROTO  # how a pickle of protocol 2 or later begins: a keyword draft's blob
_COUNTERS = ("sent", "retried", "failed", "rejected", "spooled", "replayed", "redaction_failures")
IDLE_SHARE = 0.2  #: the app's own threads used less of a core than this: the relay encodes records itself
BEHIND = _MESSAGE  #: ... when the sender holds at least this many records unsettled (delivery is behind)
_JUDGED = 0.002  #: the shortest span (s) whose CPU use says whether the app is idle
_thread_time = getattr(time, "thread_time", None)  # absent on a few platforms: there, the sender encodes


class SenderError(RuntimeError):
    """An internal error the sender process swallowed (its type name; never its message)."""


def write_message(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_message(stream: IO[bytes]) -> Any:
    """The next message, or None at the end of the stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def can_relay(pipeline: Pipeline) -> Optional[str]:
    """Why this pipeline must deliver from a thread instead (None: it can use a sender)."""
    if pipeline.transport is not None:
        return "a transport was given (it lives in this process)"
    if pipeline.config.durable:
        return "durable=True writes ahead from this process"
    executable = os.path.basename(sys.executable or "").lower()
    if getattr(sys, "frozen", False) or not executable.startswith(("python", "pypy")):
        return f"this interpreter ({sys.executable or 'unknown'}) is not a Python that can run -m"  # uWSGI, PyInstaller
    try:
        pickle.dumps(pipeline.processor.config)
    except Exception:  # a before_send or redaction callable that cannot travel
        return "before_send or a redaction callable cannot be sent to another process"
    return None


def pack(record: Any) -> Optional[bytes]:
    """A draft packed for the sender, or None when it cannot be (the relay then encodes it):
    with ``marshal`` when it holds only builtins and steps (several times cheaper), else pickle."""
    if type(record) is KeywordDraft:  # pickled already, with its id and time
        return record.blob
    if not isinstance(record, Draft):
        return None
    try:
        items = _steps_as(record.items, _plain)
        return b"M" + marshal.dumps((items, record.spelled, record.event_id, record.size, record.at))
    except (ValueError, TypeError):  # a value marshal cannot hold (an object, a subclass): pickle
        pass
    try:
        return b"P" + pickle.dumps(("d", record.items, record.spelled, record.event_id, record.size, record.at),
                                   _PROTOCOL)
    except Exception:  # a value pickle refuses: encoded in this process when handed over
        return None


def unpack(data: bytes) -> tuple[Any, ...]:
    """The entry :func:`pack` made: ``("d", items, spelled, event_id, size, at)`` for a draft,
    ``("k", blob)`` for a keyword draft (a pickle as it is, whose first byte is its PROTO opcode)."""
    if data[:1] == b"P":
        return tuple(pickle.loads(data[1:]))
    if data[:1] == _PICKLE:
        return ("k", data)
    items, spelled, event_id, size, at = marshal.loads(data[1:])
    return ("d", _steps_as(items, _step), spelled, event_id, size, at)


def _plain(step: Any) -> Any:
    if type(step) is tuple:
        raise TypeError("a tuple among steps: pickled, so that it reads back as it was given")
    return step.plain() if type(step) is Step else step


def _step(value: Any) -> Any:
    return Step.from_plain(value) if type(value) is tuple else value


def _steps_as(items: tuple[Any, ...], convert: Any) -> tuple[Any, ...]:
    """``items`` with the steps in its ``step_data`` (if any) converted one by one."""
    names = items[::2]
    if "step_data" not in names:
        return items
    where = names.index("step_data") * 2 + 1
    steps = items[where]
    if not isinstance(steps, list):
        raise TypeError("step_data that is not a list")
    return items[:where] + ([convert(s) for s in steps],) + items[where + 1:]


class Relay(Worker):
    """The app's side of a sender process; the thread worker itself when there is none."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.in_process = False  # True once this relay has turned into the thread worker
        self._event = threading.Event()
        self._closed_remote = threading.Event()
        self._write_lock = threading.Lock()
        self._asked = 0  # the last flush generation asked of the sender
        self.handed = 0  # records handed to the sender
        self.remote_settled = 0  # ... of which the sender reported settled
        self._seen: dict[str, int] = {}  # the sender's counters as last mirrored
        self._lost_lock = threading.Lock()
        self._inherited: Any = None  # a forked child's copy of the parent's sender, never used
        self.encoded_here = 0  # records encoded by this relay, the app being idle (the sender only sent them)
        self._clock: Optional[tuple[float, float, float]] = None  # wall, process and own CPU, last judged
        self._idle = False  # the last verdict of _app_idle

    # ==== what the pipeline calls ===============================================================
    def wake(self) -> None:
        if self.in_process:
            super().wake()
        else:
            self._event.set()

    def cancel(self) -> None:
        if self.in_process:
            super().cancel()
        else:
            self._closed_remote.set()
            self._event.set()

    def run_inline(self) -> None:
        """No thread can start (interpreter shutdown): deliver from this thread, in process."""
        self.in_process = True
        super().run_inline()

    def _run(self) -> None:
        if _in_a_multiprocessing_child():
            logger.info("sender='process' is not used in a multiprocessing child (a pool's terminate() "
                        "can miss its SIGTERM there); delivering from a thread")
            self.in_process = True
        if self.in_process or self.p.closed or not self._relay():  # after close(): a short look, here
            self.in_process = True
            self._kill()
            super()._run()  # the thread worker, on this thread, with whatever is still held
            return
        self._finish()
        self.p.running = False
        self.stopped.set()
        self.p.notify()

    def _finish(self) -> None:
        """The sender said it is done: end its input and reap it (it exits on its own)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            _close_pipes(proc, stdout=False)
            try:
                proc.wait(1.0)
            except subprocess.TimeoutExpired:  # it still spools: it ends within its exit deadline
                logger.debug("the sender is still finishing; it ends on its own")

    def after_fork(self) -> None:
        """In a forked child: close its copies of the parent's pipes, so the parent's sender
        still sees the end of its input when the parent exits."""
        proc, self.proc = self.proc, None
        self._inherited = proc  # kept: its file objects must never close these numbers again
        if proc is not None:
            _close_pipes(proc, descriptors_only=True)

    # ==== the relay =============================================================================
    def _relay(self) -> bool:
        """Hand records to the sender until the pipeline stops; False to fall back in process."""
        p = self.p
        try:
            if not self._spawn():
                return False
            self._app_idle()  # the first look: what the app does from now on is judged
            while True:
                self._event.clear()
                if p.stopping or p.flush_gen != self._asked:
                    self._look_again()
                self._hand_over(self._take_all())
                if p.stopping:
                    self._close_remote()
                    return True
                if p.flush_gen != self._asked:
                    self._asked = p.flush_gen
                    self._send(("flush", self._asked, max(0.0, p.flush_deadline - time.monotonic())))
                if self.proc is None:
                    return False  # the sender died: the reader counted what it held
                self._event.wait(min(p.batcher.linger, _CYCLE) or _CYCLE)
        except (OSError, ValueError, pickle.PicklingError) as exc:  # a broken pipe: the sender is gone
            self._lost(f"{type(exc).__name__}")
            return False
        except Exception as exc:
            swallow("relay", exc, stats=p.stats)
            self._lost("an internal error")
            return False

    def _spawn(self) -> bool:
        p = self.p
        # the sender imports the very copy of huggingplace this process runs (a vendored or
        # path-inserted one too), and says so in its first answer
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": here + (os.pathsep + path if path else "")}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, *SENDER_COMMAND], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                env=env, start_new_session=True,  # Ctrl-C and a host's group signals reach the app, which closes it
            )
        except OSError as exc:
            p.warn_once("sender", "the sender process could not start (%s); delivering from a thread", exc)
            return False
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._seen, self.handed, self.remote_settled = {}, 0, 0  # a new sender counts from zero
        config = _evolve(p.config, sender="thread")
        self._send(("config", __version__, p.options, config, p.processor.config, p.policy))
        answered = threading.Event()
        threading.Thread(target=self._watch_start, args=(self.proc, answered), daemon=True,
                         name="huggingplace-sender-start").start()
        ready = self._read()
        answered.set()
        if not (isinstance(ready, tuple) and ready[0] == "ready"):
            why = ready[1] if isinstance(ready, tuple) and ready[0] == "refused" else "it did not answer"
            p.warn_once("sender", "the sender process did not start (%s); delivering from a thread", why)
            return False
        threading.Thread(target=self._reader, name="huggingplace-relay-reader", daemon=True).start()
        return True

    def _watch_start(self, proc: subprocess.Popen[bytes], answered: threading.Event) -> None:
        """A sender that does not answer within START_TIMEOUT (or by the exit deadline, when the
        app is stopping) is killed, so that its silence cannot hold the records back."""
        _exit.keep_signals_off_this_thread()
        give_up = time.monotonic() + START_TIMEOUT
        while not answered.wait(0.05):
            now = time.monotonic()
            if now >= give_up or (self.p.stopping and now >= self.p.stop_deadline):
                try:
                    proc.kill()  # its output ends: the relay reads no answer and delivers itself
                except OSError:  # pragma: no cover - it ended by itself meanwhile
                    pass
                return

    def _take_all(self) -> list[Item]:
        """Everything waiting here: held, queued, and the overflow lane (the sender has room)."""
        batcher = self.p.batcher
        items = list(self.held)
        self.held.clear()
        items.extend(batcher.take_all())
        items.extend(batcher.take_overflow(batcher.max_overflow + 1))
        return items

    def _hand_over(self, items: list[Item]) -> None:
        for start in range(0, len(items), _MESSAGE):
            chunk = [i for i in items[start: start + _MESSAGE] if self._travels(i)]
            if chunk and self._app_idle() and self.handed - self.remote_settled >= BEHIND:
                self.encoded_here += sum([1 for i in chunk if i.body is None])
                chunk = self.prepare(chunk)  # refused ones are counted and settled here
            entries = [i.packed if i.body is None else ("b", i.event_id, i.body) for i in chunk]
            message = pickle.dumps(("records", entries), protocol=_PROTOCOL)
            try:
                with self._lost_lock:  # handed and counted at once: a sender lost meanwhile counts it
                    self._send_raw(message)
                    self.handed += len(chunk)
            except BaseException:  # not handed: still this process's to deliver (less the refused)
                self.held.extendleft(reversed([i for i in items[start:] if i.body is not None or i.record is not None]))
                raise

    def _app_idle(self) -> bool:
        """Whether the app's other threads left the CPU idle since the last look (judged again
        before each message). An idle app's cycles are free, and the GIL with them: while the
        sender is behind, records are then encoded here and the sender only sends them. A busy
        app hands them over as they are, so that encoding never costs its requests; and a sender
        that keeps up encodes them itself, at its idle priority."""
        if _thread_time is None:
            return False
        now = (time.monotonic(), time.process_time(), _thread_time())
        last = self._clock
        if last is not None and now[0] - last[0] < _JUDGED:
            return self._idle  # too short a span to judge: the last verdict holds, the span grows
        self._clock = now
        if last is not None:
            others = (now[1] - last[1]) - (now[2] - last[2])  # CPU of every thread but this one
            self._idle = others < IDLE_SHARE * (now[0] - last[0])
        return self._idle

    def _look_again(self) -> None:
        """Judge the app afresh, over a few milliseconds: a flush or a close makes its caller
        wait, so the burst of logging just before it no longer says whether the app is busy."""
        self._clock = None  # the span that held the burst is not judged
        self._app_idle()
        time.sleep(2 * _JUDGED)
        self._app_idle()

    def _travels(self, item: Item) -> bool:
        """Make ``item`` ready for the sender: packed (the caller usually did it), or else its
        body encoded here (a value pickle refuses, a record built already); False when it was
        refused instead (counted and settled by ``prepare``)."""
        if item.body is None and item.packed is None:
            item.packed = pack(item.record)
            if item.packed is None:
                return bool(self.prepare([item]))
        return True

    def _close_remote(self) -> None:
        p = self.p
        self._send(("close", max(0.0, p.stop_deadline - time.monotonic())))
        # the sender answers once it has sent or spooled everything; close() cancels this wait
        # when its own deadline passes (and this bound covers a close that never comes)
        self._closed_remote.wait(max(1.0, p.stop_deadline - time.monotonic()) + p.config.exit_timeout)

    def _send(self, message: Any) -> None:
        self._send_raw(pickle.dumps(message, protocol=_PROTOCOL))

    def _send_raw(self, data: bytes) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None:
            raise OSError("the sender is gone")
        with self._write_lock:
            proc.stdin.write(_HEADER.pack(len(data)) + data)
            proc.stdin.flush()

    def _read(self) -> Any:
        proc = self.proc
        return None if proc is None or proc.stdout is None else read_message(proc.stdout)

    # ==== the reader: what the sender reports ===================================================
    def _reader(self) -> None:
        _exit.keep_signals_off_this_thread()
        try:
            while True:
                message = self._read()
                if message is None:
                    break
                self._on(message)
                if message[0] == "closed":
                    break
        except Exception as exc:
            swallow("relay reader", exc, stats=self.p.stats)
        finally:
            if not self._closed_remote.is_set():
                self._lost("its output ended")
            self._closed_remote.set()
            self._event.set()
            self.p.notify()

    def _on(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "log":
            logger.log(message[1], "%s", message[2])
            return
        if kind == "internal":  # logged and counted there; here only the hooks hear of it
            for hook in list(_internal.hooks):
                hook(message[1], SenderError(f"{message[2]} in the sender process"))
            return
        if kind in ("stats", "flushed", "closed"):
            self._mirror(message[1], message[2])
        if kind == "flushed" and message[3] >= self.flush_seen:  # answers may cross: the latest counts
            gen, down = message[3], message[4]
            self.down = down
            if down:
                self.probe_failed_gen = gen
            self.looked_gen = gen
            self.flush_seen = gen
        if kind == "closed":
            self._closed_remote.set()
        self.p.notify()

    def _mirror(self, counters: dict[str, int], settled: int) -> None:
        stats = self.p.stats
        for name, value in counters.items():  # cumulative, and answers may cross: only ever forward
            delta = value - self._seen.get(name, 0)
            if delta > 0:
                self._seen[name] = value
                if name.startswith("dropped:"):
                    stats.drop(name[8:], delta)
                else:
                    stats.add(name, delta)
        if settled > self.remote_settled:
            self.p.settle(settled - self.remote_settled)
            self.remote_settled = settled

    def _lost(self, why: str) -> None:
        """The sender is gone: what it held and never reported is counted, once."""
        with self._lost_lock:
            if self.proc is None:
                return
            self._kill()
            lost = self.handed - self.remote_settled
            self.remote_settled = self.handed
        if lost > 0:
            self.p.stats.drop("sender_lost", lost)
            self.p.settle(lost)
        logger.error(
            "the sender process stopped (%s); %d record(s) it held are counted as sender_lost; "
            "delivering from a thread from now on", why, max(0, lost),
        )

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            _close_pipes(proc)
            proc.kill()  # a no-op once it has exited


def _in_a_multiprocessing_child() -> bool:
    """A ``multiprocessing`` worker: short-lived, one of many, and ended by a pool's terminate()
    while its main thread waits on the task queue's lock, where a sender's round trip at exit
    made it miss its SIGTERM one run in a few. Such children deliver from a thread."""
    mp = sys.modules.get("multiprocessing")
    return mp is not None and mp.parent_process() is not None


def _close_pipes(proc: subprocess.Popen[bytes], *, stdout: bool = True, descriptors_only: bool = False) -> None:
    """Close our ends of a sender's pipes. An end already closed, or (in a forked child) the
    file objects' descriptors only, so that those objects never close the numbers again."""
    for stream in (proc.stdin, proc.stdout) if stdout else (proc.stdin,):
        if stream is None:
            continue
        try:
            if descriptors_only:
                os.close(stream.fileno())
            else:
                stream.close()
        except (OSError, ValueError) as exc:  # closed already (EBADF, "closed file"), or a broken pipe's flush
            logger.debug("closing a sender pipe: %s", type(exc).__name__)


def _evolve(config: Any, **changes: Any) -> Any:
    import attrs

    return attrs.evolve(config, **changes)


# ==== the sender process ========================================================================
class _Forward(logging.Handler):
    """The sender's log lines, handed to the app's logger (its handlers, its format)."""

    def __init__(self, report: Any) -> None:
        super().__init__(logging.DEBUG)
        self.report = report

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.report(("log", record.levelno, record.getMessage()))
        except Exception:  # the app is gone: nothing to tell
            self.handleError(record)


def _lower_priority() -> None:
    """Run only when the app leaves a core idle: SCHED_IDLE on Linux (a waking app thread takes
    the core at once), else nice 10."""
    policy = os.environ.get("HUGGINGPLACE_SENDER_PRIORITY", "idle")
    if policy == "idle" and hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except OSError as exc:  # pragma: no cover - refused by the platform: nice instead
            logger.debug("SCHED_IDLE refused (%s); nice instead", exc)
    if policy != "normal" and hasattr(os, "nice"):  # not on Windows
        try:
            os.nice(SENDER_NICE)
        except OSError as exc:  # pragma: no cover - refused by the platform
            logger.debug("nice refused (%s); the sender runs at the app's priority", exc)


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The sender's main: a pipeline fed from ``stdin``, reporting on ``stdout``."""
    import signal

    from ._background import Pipeline
    from ._privacy import Processor
    from ._stats import Stats

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the app decides when to stop
    if hasattr(signal, "pthread_sigmask"):  # started from an SDK thread, which blocks SIGTERM
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    _lower_priority()
    first = read_message(stdin)
    if not (isinstance(first, tuple) and first[0] == "config"):
        return 2
    if first[1] != __version__:  # the package changed on disk since the app started
        write_message(stdout, ("refused", f"huggingplace {__version__} here, {first[1]} in the app"))
        return 2
    _, _, options, config, privacy, policy = first
    stats = Stats()
    pipeline = Pipeline(options, policy, stats, config, Processor(privacy, stats))
    lock = threading.Lock()
    unreadable = [0]  # records handed over that could not be read back (counted as invalid_input)

    def report(message: Any) -> None:
        try:
            with lock:
                write_message(stdout, message)
        except (OSError, ValueError):  # the app is gone: no one is left to tell
            pass

    def counters() -> tuple[dict[str, int], int]:
        snap = stats.snapshot()
        values = {name: getattr(snap, name) for name in _COUNTERS}
        values.update({f"dropped:{reason}": n for reason, n in snap.dropped.items()})
        return values, pipeline.settled + unreadable[0]

    _internal.hooks.append(lambda where, exc: report(("internal", where, type(exc).__name__)))
    log = logging.getLogger("huggingplace")
    log.addHandler(_Forward(report))
    log.setLevel(logging.INFO)
    log.propagate = False
    done = threading.Event()

    def reporter() -> None:
        last: Any = None
        while not done.wait(0.05):
            now = counters()
            if now != last:
                report(("stats", *now))
                last = now

    def flush(gen: int, timeout: float) -> None:
        result = pipeline.flush(timeout)
        report(("flushed", *counters(), gen, result.endpoint_down))

    threading.Thread(target=reporter, name="huggingplace-sender-reporter", daemon=True).start()
    report(("ready", os.getpid()))
    timeout = config.exit_timeout
    while True:
        message = read_message(stdin)
        if message is None:  # the app is gone without closing: close within the exit deadline
            break
        kind = message[0]
        if kind == "records":
            for entry in message[1]:
                try:
                    if type(entry) is bytes:
                        entry = unpack(entry)
                    if entry[0] == "d":
                        pipeline.submit(Draft.restore(*entry[1:]))
                    elif entry[0] == "k":
                        pipeline.submit(KeywordDraft.from_blob(entry[1]))
                    else:
                        pipeline.submit_item(Item(entry[1], len(entry[2]), body=entry[2]))
                except Exception as exc:  # a record that will not unpack: counted, settled, and on we go
                    swallow("unpacking a record in the sender", exc, stats=stats, count="invalid_input")
                    unreadable[0] += 1
        elif kind == "flush":
            threading.Thread(target=flush, args=message[1:], daemon=True).start()
        elif kind == "close":
            timeout = message[1]
            break
    pipeline.close(timeout)
    done.set()
    report(("closed", *counters()))  # an app already gone is not told (report drops it)
    return 0


def main() -> int:
    """Keep the protocol's stdout to ourselves: anything a library prints goes to stderr."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    sys.exit(main())
