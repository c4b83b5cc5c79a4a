"""Background delivery: ``log()`` only enqueues; a worker thread sends, retries and spools.

The guarantee: every record ``submit()`` accepted ends in exactly one of these, at any time
after ``flush()`` / ``close()``: stored by the endpoint (once, thanks to its ``event_id``),
rejected by it (counted), dropped for a named reason (counted), or waiting in the spool on disk.

The parts: :mod:`._batcher` (the queue and its bounds; no I/O), :mod:`._worker` (the thread,
its loop, sending and the spool), :mod:`._exit` (atexit, signals, fork, worker processes).
This module holds them together and is what the clients call.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

import attrs

from . import _exit
from ._batcher import ACCEPTED, CLOSED, OVERFLOW, Batcher, Item
from ._config import BackgroundConfig, Options
from ._draft import Capture
from ._exceptions import ValidationError
from ._internal import swallow
from ._models import LogRecord
from ._privacy import Processor
from ._retry import RetryPolicy
from ._spool import Spool, default_spool_dir
from ._stats import Stats

if TYPE_CHECKING:  # pragma: no cover
    from ._worker import Worker
from ._wire import to_payload

__all__ = ["BackgroundConfig", "FlushResult", "Pipeline", "install_sigterm_handler"]

logger = logging.getLogger("huggingplace")


@attrs.frozen
class FlushResult:
    """Where records stand after ``flush()`` / ``close()``.

    ``sent``, ``spooled``, ``dropped`` and ``rejected`` are totals since the client started;
    ``pending`` is what is still in memory (queued, retrying or in flight); ``on_disk`` what
    waits in the spool; ``endpoint_down`` says the flush stopped early because the endpoint does
    not answer (what it held is on disk, and goes out when the endpoint is back).
    """

    sent: int
    spooled: int
    pending: int
    dropped: int
    rejected: int
    on_disk: int = 0
    endpoint_down: bool = False

    @property
    def complete(self) -> bool:
        """Nothing left to send: nothing in memory, nothing on disk."""
        return self.pending == 0 and self.on_disk == 0


def _estimate(record: LogRecord | Capture) -> int:
    """A cheap size estimate (no JSON encoding) for the queue's byte bound."""
    if isinstance(record, Capture):
        return record.size
    return 512 + len(record.user_prompt) + len(record.response) + 64 * len(record.step_data)


class Pipeline:
    """The queue, the worker and the spool of one background client."""

    def __init__(
        self,
        options: Options,
        policy: RetryPolicy,
        stats: Stats,
        config: BackgroundConfig,
        processor: Processor,
        transport: Any = None,
    ) -> None:
        self.options = options
        self.policy = policy
        self.stats = stats
        self.config = config
        self.processor = processor
        self.transport = transport
        self.spool = Spool(
            config.spool_dir or default_spool_dir(options.base_url, options.org_id), max_bytes=config.spool_max_bytes
        )
        # Every import the worker needs happens here, on the constructing thread: an import
        # statement on the log() path or in the after-fork hook can be caught mid-way by a fork
        # and leave the child waiting on a module lock forever.
        from ._worker import Worker

        self._worker_class: type[Worker] = Worker
        self._pack: Optional[Callable[[Any], Optional[bytes]]] = None
        if config.sender == "process":
            from ._sender import Relay, can_relay, pack

            why = can_relay(self)
            if why is None:
                self._worker_class, self._pack = Relay, pack
            else:
                logger.info("sender='process' is not used: %s; delivering from a thread", why)
        if transport is None:
            from .transports.aio import AiohttpTransport

            self._transport_class: Any = AiohttpTransport
        self._init_state()
        _exit.register(self)
        if self.spool.has_backlog():  # records left by an earlier process: replay them now
            self._ensure_worker()

    def _init_state(self) -> None:
        """Everything a forked child must not share with its parent."""
        c = self.config
        self.batcher = Batcher(
            max_items=c.max_queue, max_bytes=c.max_queue_bytes, batch_size=c.batch_size, batch_bytes=c.batch_bytes,
            linger=c.flush_interval, overflow_chunk=c.overflow_chunk,
        )
        self.worker = self._worker_class(self)
        self.running = False
        self.settled = 0  # records that left memory (sent, rejected, dropped or spooled)
        self._settle_lock = threading.Lock()
        self.changed = threading.Condition(threading.RLock())
        self.flush_gen = 0
        self.flush_deadline = 0.0
        self.stopping = False
        self.stop_deadline = float("inf")
        self.closed = False
        self.spool_usable = True
        self._close_lock = threading.Lock()
        self._closing_thread: Optional[int] = None
        self._closed_event = threading.Event()
        self._result: Optional[FlushResult] = None
        self._warned: set[str] = set()

    # ==== what the worker asks of us ===========================================================
    def make_transport(self) -> tuple[Any, bool]:
        """The client's transport when one was given (any ``send_async`` or ``send``), else an
        aiohttp transport of the worker's own, executor-free."""
        if self.transport is not None:
            return self.transport, False
        return self._transport_class(limit=self.config.concurrency), True

    def settle(self, n: int) -> None:
        with self._settle_lock:
            self.settled += n

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def reject(self, exc: ValidationError) -> None:
        """A record refused for bad input: counted, and warned about once per field (by its
        name, never its value: a prompt may hold personal data)."""
        self.stats.add("rejected")
        self.warn_once(f"invalid:{exc.field}", "a record was rejected (counted): field `%s` is invalid", exc.field)

    def warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    # ==== caller side: never blocks on the network, never raises ================================
    def submit(self, record: LogRecord | Capture) -> bool:
        """Queue one record (or a draft, validated on the worker); False when it could not be
        accepted (counted)."""
        item = Item(record.event_id, record.size if isinstance(record, Capture) else _estimate(record), record)
        if self._pack is not None:  # pickled here, on the caller's thread, which holds the GIL anyway:
            item.packed = self._pack(record)  # a relay thread doing it would take the GIL from the app
        if self.config.durable:
            return self.submit_item(item)
        verdict = self.batcher.offer(item)
        if verdict == ACCEPTED and self.running and self.batcher.linger:
            return True  # the common case: queued, for a running worker that lingers for company
        return self._offered(item, verdict)

    def submit_item(self, item: Item) -> bool:
        """Queue one item: a record or draft, or (handed over by another process) a body."""
        # durable: encoded (and redacted) here, so the disk never holds raw content
        if self.config.durable and item.body is None and not self._write_ahead(item):
            return True  # before_send dropped it (counted)
        return self._offered(item, self.batcher.offer(item))

    def _offered(self, item: Item, verdict: int) -> bool:
        """What follows the batcher's ``verdict`` on ``item``: start or wake the worker, spill,
        or count it dropped (after close)."""
        if verdict == ACCEPTED:
            if not self.running:
                self._ensure_worker()
            elif not self.batcher.linger:  # stopping (drain_now): no waiting for company
                self.worker.wake()
            return True
        if verdict == OVERFLOW:
            if self.batcher.overflow_wants_worker():
                self._ensure_worker()
                self.worker.wake()
            return True
        if verdict != CLOSED:  # the worker cannot keep up: this thread writes the overflow itself
            self._spill_here(item)
            return True
        self.stats.drop("closed")
        self.warn_once("closed", "log() after close(): records are dropped and counted (closed)")
        return False

    def _spill_here(self, item: Item) -> None:
        """Overload: the overflow lane is full, so the caller's thread writes it to the spool
        (the one place a caller does I/O; dropping the records would be worse)."""
        self.batcher.admit_elsewhere()  # accounted like any accepted record, settled by the spooling
        items = [*self.batcher.take_overflow(self.batcher.max_items), item]
        self.worker.spool_items(items, reason="queue full", room=False)

    def _write_ahead(self, item: Item) -> bool:
        try:
            body = self.processor.body(to_payload(item.record, self.options))
        except Exception as exc:
            swallow("durable encoding", exc, stats=self.stats)
            return True
        if body is None:
            return False
        item.body, item.record = body, None
        try:
            item.wal = self.spool.write_ahead((item.event_id, item.body))
        except OSError as exc:
            self.warn_once("wal", "durable write-ahead failed (%s); delivering from memory", type(exc).__name__)
        return True

    def _ensure_worker(self) -> bool:
        """Start the worker if it is not running; False when no thread can start (exit, 3.12)."""
        if self.running and self.worker.alive:
            return True
        self.running = True
        _exit.started(self)
        if self.worker.start():
            return True
        self.running = False
        return False

    def pending(self) -> int:
        """Records in memory: accepted and not yet sent, rejected, dropped or spooled."""
        return self.batcher.accepted - self.settled

    def result(self, *, endpoint_down: bool = False) -> FlushResult:
        snap = self.stats.snapshot()
        on_disk, _ = self.spool.waiting()
        return FlushResult(
            sent=snap.sent, spooled=snap.spooled, pending=self.pending(), dropped=snap.dropped_total,
            rejected=snap.rejected, on_disk=on_disk, endpoint_down=endpoint_down,
        )

    def _done(self, gen: int) -> bool:
        w = self.worker
        if w.flush_seen < gen:
            return False
        if w.down and w.probe_failed_gen >= gen:
            return True  # the endpoint does not answer: return now, it is all on disk (or counted)
        return self.pending() == 0 and not w.held and (w.looked_gen >= gen or not self.spool_usable)

    def flush(self, timeout: float = 5.0) -> FlushResult:
        """Deliver everything this client holds, in memory and in its spool, within ``timeout``;
        returns early, with ``endpoint_down``, once the endpoint is known not to answer."""
        deadline = time.monotonic() + max(0.0, timeout)
        self.flush_deadline = deadline
        self.flush_gen += 1
        gen = self.flush_gen
        if not self._ensure_worker():
            self._inline(deadline)
        self.worker.wake()
        with self.changed:
            while not self._done(gen):
                left = deadline - time.monotonic()
                if left <= 0 or not self.worker.alive:
                    break
                self.changed.wait(min(left, 0.05))
        w = self.worker
        return self.result(endpoint_down=w.down and w.probe_failed_gen >= gen)

    def _inline(self, deadline: float) -> None:
        """No thread can start (interpreter shutdown on 3.12): run the worker here, bounded."""
        self.stopping = True
        self.stop_deadline = min(self.stop_deadline, deadline)
        self.worker.run_inline()

    def close(self, timeout: Optional[float] = None) -> FlushResult:
        """Stop intake, deliver what is held for most of ``timeout`` (default: the exit
        deadline), spool the rest. Idempotent, from any thread or a signal handler."""
        budget = self.config.exit_timeout if timeout is None else max(0.0, timeout)
        if self._closed_event.is_set() and self._result is not None:
            return self._result
        if not self._close_lock.acquire(blocking=False):
            if self._closing_thread != threading.get_ident():  # another thread closes: wait for it
                self._closed_event.wait(budget)
            return self._result or self.result()
        self._closing_thread = threading.get_ident()
        try:
            if self._result is not None:
                return self._result
            start = time.monotonic()
            deadline = start + budget
            self.closed = True
            self.batcher.closed = True
            self.stop_deadline = start + budget * 0.85
            self.stopping = True
            self.flush_gen += 1
            if self._ensure_worker():
                self.worker.wake()
                if not self.worker.stopped.wait(max(0.0, self.stop_deadline - time.monotonic())):
                    self.worker.cancel()  # past the deadline: cut the send short; it spools as it unwinds
                    self.worker.stopped.wait(max(0.0, deadline - time.monotonic()))
            elif self.pending() or self.worker.held:
                self._inline(deadline)
            if not self.worker.alive:  # whatever no one took (the worker never ran, or is gone)
                leftovers = [*self.worker.held, *self.batcher.drain()]
                self.worker.held.clear()
                if leftovers:
                    self.worker.spool_items(leftovers, reason="exit")
            self._result = self.result()
            self._closed_event.set()
            _exit.forget(self)
            return self._result
        finally:
            self._closing_thread = None
            self._close_lock.release()

    def drain_now(self) -> None:
        """The process is stopping (a graceful signal): no record waits for company any more."""
        self.batcher.linger = 0.0
        self.worker.wake()

    # ==== fork ==================================================================================
    def after_fork(self) -> Optional[Worker]:
        """In a forked child: fresh queue, worker and counters; the parent's records stay the
        parent's. Returns the parent's worker, which the child must keep but never use."""
        old = self.worker
        old.after_fork()  # what of the parent's the child must let go (a sender process's pipes)
        self.stats.reset()
        self.spool.reset_lock()
        was_closed = self.closed
        self._init_state()
        if was_closed:  # a client closed in the parent stays closed in the child
            self.closed = self.batcher.closed = True
        return old


def install_sigterm_handler(timeout: Optional[float] = None) -> None:
    """Kept for compatibility: the SDK now installs its SIGTERM / SIGINT handlers itself when the
    first background client starts (see docs/hosts/index.md). Calling this installs them now, from the
    main thread."""
    _exit.install_signal_handlers()
