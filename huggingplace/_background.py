"""Background delivery: ``log()`` only enqueues; one worker thread sends, retries and spools.

The guarantee: every record ``submit()`` accepted is stored by the endpoint (once, thanks to
its ``event_id``), or still in the spool on disk, or counted in ``Stats`` under a named reason.

The worker is a daemon thread running its own asyncio loop with an aiohttp session: sends run
with bounded concurrency and can be cancelled the moment ``close()`` needs them to stop. All
decisions (payloads, status to outcome, retry or not, how long to wait) come from the pure core.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures.thread  # noqa: F401  (see below)
import json
import logging
import os
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Optional

import attrs

from ._config import BackgroundConfig, Options
from ._exceptions import (
    APIError,
    APIStatusError,
    AuthenticationError,
    HuggingPlaceError,
    NotFoundError,
    PermissionDeniedError,
)
from ._models import LogRecord
from ._privacy import Processor
from ._retry import RetryPolicy
from ._spool import Claim, Spool, SpoolCorrupt, default_spool_dir
from ._stats import Stats
from ._wire import Request, Response, encode, headers, parse_response, request_for_payload, to_payload

__all__ = ["BackgroundConfig", "FlushResult", "Pipeline"]

logger = logging.getLogger("huggingplace")

# The worker's event loop resolves hosts through a thread pool, whose module Python imports
# lazily. Imported here, on the importing thread, so that a fork() can never catch the worker in
# the middle of that import and leave the child a half-initialised module.

BATCH_HEADER = "huggingplace-batch-route"


@attrs.frozen
class FlushResult:
    """Where records stand after ``flush()`` / ``close()``: totals since the client started,
    and ``pending``, what is still in memory (queued, retrying or in flight)."""

    sent: int
    spooled: int
    pending: int
    dropped: int
    rejected: int


@attrs.define(slots=True)
class _Item:
    event_id: str
    size: int
    record: Optional[LogRecord] = None
    payload: Optional[dict[str, Any]] = None
    attempts: int = 0
    wal: Optional[Path] = None


def _estimate(record: LogRecord) -> int:
    """A cheap size estimate (no JSON encoding) for the queue's byte bound."""
    return 512 + len(record.user_prompt) + len(record.response) + 64 * len(record.step_data)


class _Outcome:
    REJECTED, RETRY, HOLD = "rejected", "retry", "hold"


def _classify(exc: BaseException) -> str:
    if isinstance(exc, (AuthenticationError, PermissionDeniedError, NotFoundError)):
        return _Outcome.HOLD  # a key rotation or a wrong URL must not lose data: spool and pause
    if isinstance(exc, APIError) and exc.retryable:
        return _Outcome.RETRY
    return _Outcome.REJECTED


_live: weakref.WeakSet[Pipeline] = weakref.WeakSet()
_inherited: list[Any] = []  # a forked child's copies of its parent's sessions, kept from __del__


class Pipeline:
    """The queue, the worker and the spool of one background client."""

    def __init__(
        self, options: Options, policy: RetryPolicy, stats: Stats, config: BackgroundConfig, processor: Processor
    ) -> None:
        self.options = options
        self.policy = policy
        self.stats = stats
        self.config = config
        self.processor = processor
        directory = config.spool_dir or default_spool_dir(options.base_url, options.org_id)
        self.spool = Spool(directory, max_bytes=config.spool_max_bytes)
        self._init_state()
        _live.add(self)
        if self.spool.has_backlog():  # records left by an earlier process: replay them now
            self._ensure_worker()

    def _init_state(self) -> None:
        """Everything a forked child must not share with its parent."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._queue: deque[_Item] = deque()
        self._queue_bytes = 0
        self._overflow: list[_Item] = []
        self._pending = 0  # accepted, not yet sent, rejected, spooled or dropped
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._wake: Optional[asyncio.Event] = None
        self._idle = False
        self._flushing = 0
        self._stopping = False
        self._stopped = threading.Event()
        self._warned: set[str] = set()

    # ==== caller side: never blocks on the network, never raises ==============================
    def submit(self, record: LogRecord) -> bool:
        """Queue one validated record; False when it could not be accepted (counted)."""
        if self._pid != os.getpid():
            self._after_fork()
        item = _Item(event_id=record.event_id, size=_estimate(record), record=record)
        spill_soon = False
        if self.config.durable:  # serialized (and redacted) here, so the disk never holds raw content
            payload = self.processor.process(to_payload(record, self.options))
            if payload is None:
                return True  # before_send dropped it (counted)
            item.payload, item.record = payload, None
            try:
                item.wal = self.spool.write_ahead(payload)
            except OSError as exc:
                self._warn_once("wal", "durable write-ahead failed (%s); delivering from memory", exc)
        spill: Optional[list[_Item]] = None
        with self._lock:
            if self._closed:
                self.stats.drop("closed")
                self._warn_once("closed", "log() after close(): record %s dropped and counted", record.event_id)
                return False
            self._pending += 1
            self.stats.add("queued")
            fits = self._queue_bytes + item.size <= self.config.max_queue_bytes
            if len(self._queue) < self.config.max_queue and fits:
                self._queue.append(item)
                self._queue_bytes += item.size
                wake = self._idle and len(self._queue) >= self.config.batch_size
            else:  # over the bound: the worker writes the overflow to disk in chunks
                self._overflow.append(item)
                wake = False
                if len(self._overflow) % self.config.overflow_chunk == 0:
                    if len(self._overflow) >= 4 * self.config.overflow_chunk or not self._worker_alive():
                        spill, self._overflow = self._overflow, []  # the worker is behind: write here
                    else:
                        spill_soon = True
        if spill:
            self._spool_items(spill, reason="queue_full")
        self._ensure_worker()
        if wake:
            self._poke()
        elif spill_soon:
            self._call_in_worker(self._spill_overflow)
        return True

    def _worker_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._loop is not None

    def _call_in_worker(self, fn: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn)
            except RuntimeError:
                pass

    def _spill_overflow(self) -> None:
        """On the worker's loop, between sends: overflow records to the spool."""
        with self._lock:
            spill, self._overflow = self._overflow, []
        self._spool_items(spill, reason="queue_full")

    def _drain(self) -> list[_Item]:
        """Take everything still in memory on the caller's side: the queue and the overflow."""
        with self._lock:
            rest = [*self._queue, *self._overflow]
            self._queue.clear()
            self._overflow = []
            self._queue_bytes = 0
        return rest

    def _poke(self) -> None:
        wake = self._wake
        if wake is not None:
            self._call_in_worker(wake.set)

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def result(self) -> FlushResult:
        snap = self.stats.snapshot()
        return FlushResult(
            sent=snap.sent, spooled=snap.spooled, pending=self.pending(), dropped=snap.dropped_total,
            rejected=snap.rejected,
        )

    def flush(self, timeout: float = 5.0) -> FlushResult:
        """Send what is queued now; wait at most ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._flushing += 1
            spill, self._overflow = self._overflow, []
        try:
            if spill:
                self._spool_items(spill, reason="queue_full")
            self._ensure_worker()
            self._poke()
            with self._settled:
                while self._pending > 0:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._thread is None:
                        break
                    self._settled.wait(min(left, 0.05))
        finally:
            with self._lock:
                self._flushing -= 1
        return self.result()

    def close(self, timeout: float = 2.0) -> FlushResult:
        """Stop intake, send for up to 60% of ``timeout``, spool the rest; bounded by ``timeout``."""
        start = time.monotonic()
        with self._lock:
            if self._closed:
                return self.result()
            self._closed = True
        self.flush(timeout * 0.6)
        self._stopping = True
        self._poke()
        thread, loop = self._thread, self._loop
        if thread is not None and thread.is_alive():  # noqa: SIM102
            # let the current send or replay chunk finish if it can, then cut it short: what is
            # in flight is spooled by the worker as it unwinds (replaying it later is idempotent)
            finished = self._stopped.wait(max(0.0, timeout * 0.8 - (time.monotonic() - start)))
            if not finished and loop is not None:
                task = getattr(self, "_task", None)
                try:
                    loop.call_soon_threadsafe(task.cancel if task is not None else (lambda: None))
                except RuntimeError:
                    pass
                self._stopped.wait(max(0.0, timeout - (time.monotonic() - start)))
        # whatever the worker did not take (it never started, or is wedged): spool it here
        self._spool_items(self._drain(), reason="exit")
        _live.discard(self)
        return self.result()

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    # ==== settling: every record ends in exactly one of these ================================
    def _settle(self, n: int) -> None:
        with self._settled:
            self._pending -= n
            self._settled.notify_all()

    def _payload(self, item: _Item) -> dict[str, Any]:
        assert item.payload is not None, "records are serialized by _ready() first"
        return item.payload

    def _ready(self, items: list[_Item]) -> list[_Item]:
        """Serialize and privacy-process records (on the worker); drop those before_send refused."""
        kept: list[_Item] = []
        for item in items:
            if item.payload is None:
                assert item.record is not None
                item.payload = self.processor.process(to_payload(item.record, self.options))
                item.record = None
                if item.payload is None:
                    self._settle(1)
                    continue
            kept.append(item)
        return kept

    def _spool_items(self, items: list[_Item], *, reason: str) -> None:
        """Move records from memory to disk (write-ahead ones are already there: promote them)."""
        items = self._ready(items)
        if not items:
            return
        fresh = [i for i in items if i.wal is None]
        for item in items:
            if item.wal is not None:
                self.spool.promote(item.wal)
        try:
            evicted = self.spool.write([self._payload(i) for i in fresh]) if fresh else 0
        except (OSError, ValueError) as exc:
            self.stats.drop("spool_error", len(fresh))
            logger.error("could not spool %d record(s) (%s): they are lost and counted", len(fresh), exc)
            self.stats.add("spooled", len(items) - len(fresh))
        else:
            self.stats.add("spooled", len(items))
            if evicted:
                self.stats.drop("spool_full", evicted)
                logger.warning("spool over %d bytes: evicted %d oldest record(s)", self.spool.max_bytes, evicted)
        logger.info("spooled %d record(s) (%s)", len(items), reason)
        self._settle(len(items))

    def _sent(self, item: _Item) -> None:
        self.stats.add("sent")
        if item.wal is not None:
            self.spool.discard(item.wal)
        self._settle(1)

    def _rejected(self, item: _Item, exc: BaseException) -> None:
        self.stats.add("rejected")
        if item.wal is not None:
            self.spool.discard(item.wal)
        logger.warning("record %s refused by the endpoint and counted as rejected: %s", item.event_id, exc)
        self._settle(1)

    # ==== the worker ==========================================================================
    def _ensure_worker(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._stopping:
                return
            self._stopped.clear()
            thread = threading.Thread(target=self._run, name="huggingplace-worker", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # interpreter shutting down: close() spools instead
                return
            self._thread = thread

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except asyncio.CancelledError:
            pass  # close() cut the last send short; _main spooled what was in flight
        except BaseException as exc:  # the worker must never die silently; the next submit restarts it
            logger.error("huggingplace worker stopped unexpectedly: %r", exc)
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._loop = None
                self._stopped.set()

    async def _main(self) -> None:
        from .transports.aio import AiohttpTransport

        self._wake = asyncio.Event()
        self._transport = AiohttpTransport(limit=self.config.concurrency)
        self._batch_url: Optional[str] = None
        self._retry: deque[_Item] = deque()
        self._paused_until = 0.0
        self._down = False  # failed past the retries: new records go to disk until a replay succeeds
        self._next_replay = 0.0  # replay the spool at start
        self._batch_deadline: Optional[float] = None
        self._inflight: list[_Item] = []
        self._task = asyncio.current_task()
        try:
            self.spool.recover()
        except OSError as exc:
            logger.warning("spool recovery failed: %s", exc)
        try:
            while not self._stopping:
                await self._cycle()
        finally:
            leftover = list(self._retry) + self._inflight
            self._retry.clear()
            self._inflight = []
            # stopping: everything goes to disk; crashing: the queue waits for the next worker
            self._spool_items(leftover + (self._drain() if self._stopping else []), reason="exit")
            await self._transport.aclose()

    async def _sleep(self, seconds: float) -> None:
        """Wait for ``seconds`` or until poked (new batch, flush, close)."""
        assert self._wake is not None
        self._wake.clear()
        self._idle = True
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, seconds))
        except asyncio.TimeoutError:
            pass
        finally:
            self._idle = False

    async def _cycle(self) -> None:
        now = time.monotonic()
        if self._down and self._queue:  # keep memory low and exit cheap while the endpoint is down
            with self._lock:
                chunk = [self._queue.popleft() for _ in range(min(len(self._queue), 1000))]
                self._queue_bytes -= sum(i.size for i in chunk)
            self._spool_items(chunk, reason="endpoint down")
            return
        if now < self._paused_until:
            await self._sleep(self._paused_until - now)  # a poke (flush, close) re-checks early
            return
        if self._due(now):
            self._batch_deadline = None
            await self._deliver(self._take())
            return
        if now >= self._next_replay:
            self._next_replay = now + self.config.replay_interval
            await self._replay()
            return
        self._spill_overflow()
        with self._lock:
            waiting = bool(self._queue)
        if waiting and self._batch_deadline is None:
            self._batch_deadline = now + self.config.flush_interval
        wake_at = min(self._next_replay, self._batch_deadline or float("inf"))
        await self._sleep(wake_at - now)

    def _due(self, now: float) -> bool:
        """Send when a batch is full, a flush or close asks, retries wait, or the interval passed."""
        if self._retry:
            return True
        with self._lock:
            if not self._queue:
                return False
            if len(self._queue) >= self.config.batch_size or self._flushing or self._stopping:
                return True
        return self._batch_deadline is not None and now >= self._batch_deadline

    def _take(self) -> list[_Item]:
        """Retries first, then the queue, up to the batch bounds."""
        batch: list[_Item] = []
        size = 0
        while self._retry and len(batch) < self.config.batch_size:
            item = self._retry.popleft()
            batch.append(item)
            size += item.size
        with self._lock:
            while self._queue and len(batch) < self.config.batch_size and size < self.config.batch_bytes:
                item = self._queue.popleft()
                self._queue_bytes -= item.size
                batch.append(item)
                size += item.size
        return batch

    # ---- sending --------------------------------------------------------------------------------
    def _request(self, url: str, body: bytes, event_id: str) -> Request:
        return Request(url=url, headers=headers(self.options, event_id), body=body, event_id=event_id)

    def _learn_batch_route(self, response: Response) -> None:
        route = response.headers.get(BATCH_HEADER)
        if route and route.startswith("/") and self._batch_url is None and self.config.use_batch_route:
            self._batch_url = self.options.base_url + route

    async def _post(self, request: Request) -> Response:
        response = await self._transport.send_async(request, timeout=self.options.timeout)
        self._learn_batch_route(response)
        return response

    async def _send_one(self, item: _Item) -> Optional[BaseException]:
        request = request_for_payload(self._payload(item), self.options)
        try:
            parse_response(await self._post(request), request, api_key=self.options.api_key)
        except HuggingPlaceError as exc:
            return exc
        except ValueError as exc:  # NaN or the like in a hand-written step: not sendable as JSON
            return exc
        return None

    async def _send_batch(self, items: list[_Item]) -> list[Optional[BaseException]]:
        assert self._batch_url is not None
        payloads = [self._payload(i) for i in items]
        request = self._request(self._batch_url, encode({"records": payloads}), items[0].event_id)
        try:
            response = await self._post(request)
            if response.status_code == 404:
                self._batch_url = None  # the route went away: singles from now on
                return await self._send_singles(items)
            parse_response(response, request, api_key=self.options.api_key)
        except HuggingPlaceError as exc:
            return [exc] * len(items)
        try:
            results = json.loads(response.body)["results"]
            assert isinstance(results, list) and len(results) == len(items)
        except Exception:
            return await self._send_singles(items)
        out: list[Optional[BaseException]] = []
        for item, res in zip(items, results):
            status = res.get("status", 500) if isinstance(res, dict) else 500
            if 200 <= status < 300:
                out.append(None)
                continue
            single = Response(status, {}, json.dumps(res).encode())
            try:
                parse_response(single, self._request(self.options.url, b"", item.event_id))
            except HuggingPlaceError as exc:
                out.append(exc)
        return out

    async def _send_singles(self, items: list[_Item]) -> list[Optional[BaseException]]:
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(item: _Item) -> Optional[BaseException]:
            async with gate:
                return await self._send_one(item)

        return list(await asyncio.gather(*(one(i) for i in items)))

    async def _deliver(self, items: list[_Item]) -> None:
        items = self._ready(items)
        if not items:
            return
        self._inflight = items
        try:
            if self._batch_url is not None and len(items) > 1:
                errors = await self._send_batch(items)
            else:
                errors = await self._send_singles(items)
        except asyncio.CancelledError:
            raise
        self._inflight = []
        self._apply(items, errors)

    def _apply(self, items: list[_Item], errors: list[Optional[BaseException]]) -> None:
        hold: list[_Item] = []
        pause = 0.0
        for item, exc in zip(items, errors):
            if exc is None:
                self._sent(item)
                continue
            outcome = _classify(exc)
            if outcome == _Outcome.REJECTED:
                self._rejected(item, exc)
            elif outcome == _Outcome.HOLD:
                hold.append(item)
                pause = max(pause, self.config.auth_pause)
                key = f"hold{getattr(exc, 'status_code', '')}"
                self._warn_once(key, "delivery paused and records spooled: %s", exc)
            else:
                item.attempts += 1
                retry_after = exc.retry_after if isinstance(exc, APIStatusError) else None
                if retry_after is not None:  # the server asked the whole pipeline to wait
                    pause = max(pause, min(retry_after, self.config.max_pause))
                if self.policy.should_retry(item.attempts, exc) and not self._stopping:
                    self.stats.add("retried")
                    self._retry.append(item)
                    pause = max(pause, self.policy.delay(item.attempts, exc))
                else:
                    hold.append(item)
        if hold:
            self._down = True
            self._spool_items(hold, reason="undeliverable now")
        if pause:
            self._paused_until = time.monotonic() + pause
            self._next_replay = max(self._next_replay, self._paused_until)
        elif not hold and any(e is None for e in errors):
            self._next_replay = min(self._next_replay, time.monotonic())  # healthy: drain the spool

    # ---- replay ---------------------------------------------------------------------------------
    async def _replay(self) -> None:
        """Send the oldest spool file; stop at the first failure (the endpoint is still down)."""
        try:
            claim = self.spool.claim_oldest()
        except SpoolCorrupt as corrupt:
            self.stats.drop("spool_corrupt", corrupt.records)
            logger.error("a corrupt spool file was quarantined; %d record(s) counted as lost", corrupt.records)
            return
        except OSError as exc:
            logger.warning("spool replay failed: %s", exc)
            return
        if claim is None:
            return
        await self._replay_claim(claim)

    async def _replay_claim(self, claim: Claim) -> None:
        items = [
            _Item(event_id=str(p.get("event_id", "")), size=0, payload=p) for p in claim.payloads
        ]
        remaining: list[dict[str, Any]] = []
        pause = 0.0
        position = 0
        try:
            while position < len(items):
                chunk = items[position: position + self.config.batch_size]
                if self._stopping or pause:
                    break
                if self._batch_url is not None and len(chunk) > 1:
                    errors = await self._send_batch(chunk)
                else:
                    errors = await self._send_singles(chunk)
                position += len(chunk)
                for item, exc in zip(chunk, errors):
                    if exc is None:
                        self._down = False
                        self.stats.add("sent")
                        self.stats.add("replayed")
                    elif _classify(exc) == _Outcome.REJECTED:
                        self.stats.add("rejected")
                        logger.warning("spooled record %s refused by the endpoint: %s", item.event_id, exc)
                    else:
                        remaining.append(self._payload(item))
                        retry_after = exc.retry_after if isinstance(exc, APIStatusError) else None
                        pause = max(pause, retry_after or self.policy.delay(1, exc), 0.5)
        finally:  # also on cancellation: what was not confirmed goes back to the spool
            remaining.extend(self._payload(i) for i in items[position:])
            self.spool.finish(claim, remaining)
        if pause:
            self._next_replay = time.monotonic() + max(pause, self.config.replay_interval)
        else:
            self._next_replay = time.monotonic()  # more files may wait: keep draining

    # ==== fork and exit =======================================================================
    def _after_fork(self) -> None:
        """In a forked child: fresh locks, queue and worker; the parent's records stay the parent's."""
        transport = self.__dict__.pop("_transport", None)
        if transport is not None:  # the parent's aiohttp session: never used or closed here
            _inherited.append(transport)
        self.stats.reset()
        self.spool.reset_lock()
        self._init_state()


def _before_fork() -> None:
    for pipeline in list(_live):
        pipeline._lock.acquire()


def _after_fork_parent() -> None:
    for pipeline in list(_live):
        try:
            pipeline._lock.release()
        except RuntimeError:
            pass


def _after_fork_child() -> None:
    for pipeline in list(_live):
        pipeline._after_fork()


def close_all(timeout: float = 2.0) -> None:
    """Close every background pipeline of this process, each bounded by ``timeout``."""
    for pipeline in list(_live):
        if pipeline._pid == os.getpid():
            try:
                pipeline.close(timeout=pipeline.config.exit_timeout if timeout is None else timeout)
            except Exception as exc:  # never raise at interpreter exit
                logger.error("closing the huggingplace pipeline failed: %r", exc)


def _close_all_at_exit() -> None:
    close_all(timeout=2.0)


def install_sigterm_handler(timeout: float = 2.0) -> None:
    """Opt in: on SIGTERM, close every background client (sending, then spooling what is left,
    within ``timeout``), then hand the signal to the handler that was there before.

    Python's default SIGTERM ends the process without running ``atexit``; call this from the main
    thread of a process that is stopped with SIGTERM (containers, systemd, gunicorn workers).
    """
    import signal

    previous = signal.getsignal(signal.SIGTERM)

    def _on_sigterm(signum: int, frame: Any) -> None:
        close_all(timeout)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, _on_sigterm)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child)
atexit.register(_close_all_at_exit)
