"""The background worker: one daemon thread running its own asyncio loop, which encodes records,
sends them, retries, and moves what cannot be sent to the spool. Apart from ``durable=True``
write-ahead files it is the only writer of the spool.

Its rules, in the order a cycle applies them:

- a flush or close asks for everything now (and a probe at once if the endpoint is down);
- a pause (``Retry-After``, backoff) holds every request of the pipeline, not only one;
- while the endpoint is down, the queue moves to disk (memory stays low, exit stays cheap) and
  a probe goes out with a backoff that starts at a quarter second and is capped at a few;
- while it is up, batches go out at the route's speed, then the spool drains through the same
  path; the requests in flight adapt to the endpoint's distance (``_pacing``), up to
  ``concurrency``;
- a record that cannot be encoded is rejected and counted on its own; nothing a record holds
  can stop the worker (an internal error is swallowed, counted, and the cycle goes on).
"""

from __future__ import annotations

import asyncio
import logging
import os
import selectors
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Optional

from . import _exit
from ._batcher import Item
from ._draft import Capture
from ._exceptions import HuggingPlaceError, ValidationError
from ._internal import swallow
from ._models import rng
from ._pacing import GROW_IDLE, Pacing
from ._retry import Outcome, outcome, retry_after_of
from ._spool import Entry, SpoolCorrupt
from ._wire import (
    BATCH_HEADER,
    Request,
    Response,
    batch_body,
    batch_errors,
    parse_response,
    request_for_body,
    requests_to,
    to_payload,
)

if TYPE_CHECKING:  # pragma: no cover
    from ._background import Pipeline

__all__ = ["Worker", "PROBE_MIN"]

logger = logging.getLogger("huggingplace")

PROBE_MIN = 0.25  # first probe after the endpoint went down (s); BackgroundConfig.probe_max caps the backoff
SPOOL_RETRY = 1.0  # how often an unusable spool is tried again


class _NotSent(Exception):
    """A request held back because the pipeline was paused; put back without an attempt."""


NOT_SENT = _NotSent()


class _Settled(Exception):
    """A record its lane found it must not send (rejected, sampled out, dropped by
    ``before_send``): counted and settled already; nothing more happens to it."""


SETTLED = _Settled()
_ROUTE_HEADER = BATCH_HEADER.lower()  #: as a Response holds it


class Worker:
    """The thread, its loop, and every decision that needs the network or the disk."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.p = pipeline
        self.thread: Optional[threading.Thread] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.stopped = threading.Event()
        self.held: deque[Item] = deque()  # records to send before the queue (retries, unsent)
        self.inflight: list[Item] = []
        self.down = False
        self.probe_at = 0.0
        self.probe_delay = PROBE_MIN
        self.paused_until = 0.0
        self.batch_url: Optional[str] = None
        self.backlog = True  # the spool may hold records until a look says otherwise
        self.next_look = 0.0
        self.spool_retry_at = 0.0
        self.flush_seen = 0
        self.looked_gen = -1  # the flush generation at which the spool was last seen empty
        self.probe_failed_gen = -1  # ... at which a probe last failed
        self.hurry = False
        self.pacing = Pacing(pipeline.config.concurrency)
        self._wake: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task[Any]] = None
        self._transport: Any = None
        self._send_async: Any = None
        self._single: Any = None  # makes a request to the single-record route for a body
        self._selector: Optional[_TimedSelector] = None
        self._owns_transport = False

    # ==== life ==================================================================================
    def start(self) -> bool:
        """Start the thread; False when Python refuses (at interpreter shutdown, 3.12)."""
        self.stopped.clear()
        thread = threading.Thread(target=self._thread_main, name="huggingplace-worker", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            return False
        self.thread = thread
        return True

    def _thread_main(self) -> None:
        _exit.keep_signals_off_this_thread()
        self._run()

    def after_fork(self) -> None:
        """In a forked child, on the parent's worker: nothing of a thread's to let go."""

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _run(self) -> None:
        self._selector = _TimedSelector()
        loop = asyncio.SelectorEventLoop(self._selector)
        try:
            loop.run_until_complete(self.main())
        except asyncio.CancelledError:  # close() past its deadline, while the transport closed:
            pass  # what was held is spooled already (main's finally spools before it awaits)
        except BaseException as exc:  # pragma: no cover - main() already guards every cycle
            swallow("worker thread", exc, stats=self.p.stats)
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self.loop = None
                self.p.running = False
                self.stopped.set()
                self.p.notify()

    def run_inline(self) -> None:
        """Run the worker on the calling thread until it stops (when no thread can start)."""
        self.stopped.clear()
        self._run()

    def wake(self) -> None:
        loop, wake = self.loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def cancel(self) -> None:
        """Cut the current send short (close() past its deadline); what was in flight is spooled."""
        loop, task = self.loop, self._task
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass

    async def main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.current_task()
        self._transport, self._owns_transport = self.p.make_transport()
        self._bind_transport()
        try:
            self.p.spool.recover()
        except OSError as exc:
            self.p.warn_once("recover", "spool recovery failed (%s); continuing", type(exc).__name__)
        try:
            while True:
                try:
                    if await self._cycle():
                        break
                except asyncio.CancelledError:
                    break
                except Exception as exc:  # a bug of ours: counted, the records kept, the worker goes on
                    swallow("worker", exc, stats=self.p.stats)
                    self._put_back_inflight()
                    await asyncio.sleep(0.05)
                finally:
                    self.p.notify()
        finally:
            self._put_back_inflight()
            if self.p.stopping:  # whatever is still in memory goes to disk (or is counted)
                self.spool_items([*self.held, *self.p.batcher.drain()], reason="exit")
                self.held.clear()
            if self._owns_transport:
                try:
                    await self._transport.aclose()
                except Exception as exc:  # pragma: no cover
                    swallow("closing the transport", exc)

    def _put_back_inflight(self) -> None:
        if self.inflight:  # not those a lane settled already (neither a record nor a body left)
            self.held.extendleft(reversed([i for i in self.inflight if i.body is not None or i.record is not None]))
            self.inflight = []

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` or until woken (flush, close, overflow)."""
        assert self._wake is not None and self.loop is not None
        self._wake.clear()
        handle = self.loop.call_later(max(0.0, seconds), self._wake.set)
        try:
            await self._wake.wait()
        finally:
            handle.cancel()

    # ==== the cycle =============================================================================
    async def _cycle(self) -> bool:
        """One step of work; True when the worker should stop."""
        p = self.p
        now = time.monotonic()
        if p.flush_gen != self.flush_seen:  # a flush or close asks: everything now
            self.flush_seen = p.flush_gen
            self.hurry = True
            self.backlog = True  # a flush always looks at the spool (another process may have written)
            self.next_look = now
            if self.down:
                self.probe_at = now
        self._spill_overflow()
        if p.stopping and now >= p.stop_deadline:
            return True
        if now < self.paused_until:
            await self._sleep(min(self.paused_until, p.stop_deadline) - now)
            return False
        if self.down:
            return await self._while_down(now)
        due = p.batcher.due_in(now, hurry=self.hurry or p.stopping)
        if self.held or due == 0.0:
            await self._deliver(self._take())
            return False
        if self.backlog and now >= self.next_look:
            await self.replay_one()
            return False
        if p.stopping:
            return True  # nothing left in memory, nothing on disk we could send
        self.hurry = False
        wait = max(p.batcher.linger, 0.05) if due is None else due  # a new record waits at most linger
        if self.backlog:
            wait = min(wait, max(0.0, self.next_look - now))
        await self._sleep(wait)
        return False

    async def _while_down(self, now: float) -> bool:
        p = self.p
        if p.batcher.queued and (p.spool_usable or now >= self.spool_retry_at):
            self.spool_items(p.batcher.take(limit=1000), reason="endpoint down")
            return False
        if now >= self.probe_at:
            await self._probe()
            return False
        if p.stopping and self.probe_failed_gen >= p.flush_gen:
            return True  # the endpoint is down at exit: memory went to disk, done
        await self._sleep(self.probe_at - now)
        return False

    def _take(self) -> list[Item]:
        size = self.p.batcher.batch_size
        batch: list[Item] = []
        while self.held and len(batch) < size:
            batch.append(self.held.popleft())
        if len(batch) < size:
            batch.extend(self.p.batcher.take(size - len(batch)))
        return batch

    def _spill_overflow(self) -> None:
        batcher = self.p.batcher
        while True:
            chunk = batcher.take_overflow(batcher.overflow_chunk)
            if not chunk:
                return
            self.spool_items(chunk, reason="queue full", room=False)

    # ==== encoding ==============================================================================
    def prepare(self, items: list[Item]) -> list[Item]:
        """Encode records (privacy processing included) one by one: one that fails is refused
        and counted alone; one refused or dropped (``before_send``) is settled, not kept."""
        kept: list[Item] = []
        on_worker = self.thread is not None and threading.get_ident() == self.thread.ident
        for n, item in enumerate(items):
            if item.body is None:
                if on_worker and n % 8 == 7:  # hand the GIL to the app's threads now and then (each
                    time.sleep(0)  # record is ~50 µs): a batch never holds it for milliseconds
                item.body, item.record = self._encode(item.record), None
                if item.body is None:
                    self.p.settle(1)
                    continue
            kept.append(item)
        return kept

    def _encode(self, record: Any) -> Optional[bytes]:
        """A record's body (a background draft is validated here, off the caller's thread), or
        None when it was refused or dropped, counted either way."""
        p = self.p
        try:
            if isinstance(record, Capture):
                record = record.build()
            return p.processor.body(to_payload(record, p.options))  # None: before_send dropped it
        except ValidationError as exc:
            p.reject(exc)
        except Exception as exc:  # as on the caller's thread: counted, never raised into the app
            swallow("encoding a record", exc, stats=p.stats, count="invalid_input")
        return None

    # ==== sending ===============================================================================
    def _bind_transport(self) -> None:
        """Resolve how requests go out once, not per record: the transport's ``send_async``, or
        its ``send`` called on this thread (a sync-only custom transport)."""
        transport = self._transport
        send_async = getattr(transport, "send_async", None)
        if send_async is None:
            async def send_async(request: Request, *, timeout: float) -> Response:
                return transport.send(request, timeout=timeout)  # type: ignore[no-any-return]
        self._send_async = send_async
        self._single = requests_to(self.p.options.url, self.p.options)

    async def _post(self, url: str, body: bytes, event_id: str) -> tuple[Response, Request]:
        request = request_for_body(body, event_id, self.p.options, url)
        response = await self._send_async(request, timeout=self.p.options.timeout)
        if _ROUTE_HEADER in response.headers:
            self._learn_route(response)
        return response, request

    def _learn_route(self, response: Response) -> None:
        """An endpoint that advertises a batch route gets one request per batch from now on."""
        route = response.headers[_ROUTE_HEADER]
        if route and route.startswith("/") and self.batch_url is None and self.p.config.use_batch_route:
            self.batch_url = self.p.options.base_url + route

    def _pause_for(self, exc: BaseException) -> None:
        after = retry_after_of(exc)
        if after is not None:  # the server asked: every request of the pipeline waits
            until = time.monotonic() + min(after, self.p.config.max_pause)
            self.paused_until = max(self.paused_until, until)

    async def _send_one(self, item: Item) -> Optional[BaseException]:
        if time.monotonic() < self.paused_until:
            return NOT_SENT
        if item.body is None and not self.prepare([item]):
            return SETTLED
        assert item.body is not None
        options = self.p.options
        request = self._single(item.body, item.event_id)
        try:  # the transport itself, not through _post: one coroutine less on every record
            response = await self._send_async(request, timeout=options.timeout)
            if _ROUTE_HEADER in response.headers:
                self._learn_route(response)
            if not 200 <= response.status_code < 300:  # a 2xx needs no reading: stored
                parse_response(response, request, api_key=options.api_key)
        except HuggingPlaceError as exc:
            self._pause_for(exc)
            return exc
        return None

    async def _send_singles(self, items: list[Item], *, refill: bool = False, more: int = 0,
                            ) -> list[Optional[BaseException]]:
        """One request per record, the pacing's lanes at a time, paced again after each wave (as
        many requests as lanes) by its failures, what waits, and how much of it the worker spent
        waiting for answers. With ``refill``, a lane that finds the list done takes the next
        queued record (appended to ``items``, up to three more batches, while nothing failed): no
        lane waits for the batch's slowest request. ``more`` records wait behind these (a spool
        file's rest)."""
        results: list[Optional[BaseException]] = [None] * len(items)
        limit = len(items) + (3 * self.p.batcher.batch_size if refill else 0)
        pacing = self.pacing
        position = 0
        failed = False
        active = 0  # lanes running
        finished = 0  # requests answered in this wave (as many as lanes)
        cut = False  # the lanes were halved in this wave (once per wave, as TCP does per window)
        ending = False  # a lane found no record left: the waves that follow are not whole
        selector = self._selector
        wave_start = time.perf_counter()
        waited_before = selector.waited if selector is not None else 0.0
        tasks: list[asyncio.Task[None]] = []

        def open_lanes() -> None:
            nonlocal active
            for _ in range(min(pacing.lanes - active, limit - position - active)):  # no lane without a record
                active += 1
                tasks.append(asyncio.ensure_future(lane()))

        def answered(result: Optional[BaseException]) -> None:
            nonlocal failed, finished, cut, wave_start, waited_before
            finished += 1
            if result is not None:
                failed = True
                if not cut and _struggled(result):  # at once: the running lanes close as they finish
                    pacing.failed()
                    cut = True
            if finished >= active:
                now = time.perf_counter()
                waited = selector.waited if selector is not None else 0.0
                if not cut and not ending:
                    took = now - wave_start
                    idle = None
                    if selector is not None and took > 0:
                        idle = (waited - waited_before) / took
                        if idle >= GROW_IDLE:  # (a /proc read only where it decides)
                            idle -= selector.ready_share(now)  # waiting for a CPU, not for the endpoint
                    pacing.after_wave(waiting=waiting_now(), idle=idle, rate=finished / took if took > 0 else 0.0)
                    if not failed:
                        open_lanes()
                finished, cut, wave_start, waited_before = 0, False, now, waited

        def waiting_now() -> int:
            return len(items) - position + (self.p.batcher.queued if refill else more)

        async def lane() -> None:
            nonlocal position, active, ending
            try:
                while active <= pacing.lanes:  # past it (the pacing closed lanes), this one ends
                    if position >= len(items):
                        done = failed or len(items) >= limit or not self._may_refill()
                        taken = [] if done else self.p.batcher.take(1)
                        if not taken:
                            ending = True
                            return
                        items.extend(taken)
                        results.append(None)
                    i = position
                    position += 1
                    results[i] = await self._send_one(items[i])
                    answered(results[i])
            finally:
                active -= 1

        active = 1  # this task runs the first lane itself; the others are tasks
        open_lanes()
        try:
            await lane()
            for task in tasks:  # the list grows while lanes open
                await task
        finally:
            for task in tasks:
                task.cancel()  # a no-op once done; on cancellation, no lane outlives this call
        if not failed and waiting_now() <= pacing.lanes:
            pacing.drift()
        return results

    async def _send_batch(self, items: list[Item]) -> list[Optional[BaseException]]:
        assert self.batch_url is not None
        if time.monotonic() < self.paused_until:
            return [NOT_SENT] * len(items)
        body = batch_body([i.body for i in items if i.body is not None])
        try:
            response, request = await self._post(self.batch_url, body, items[0].event_id)
            if response.status_code == 404:
                self.batch_url = None  # the route went away: one by one from now on
                return await self._send_singles(items)
            parse_response(response, request, api_key=self.p.options.api_key)
        except HuggingPlaceError as exc:
            self._pause_for(exc)
            return [exc] * len(items)
        errors = batch_errors(response, request, [i.event_id for i in items])
        if errors is None:  # not the per-record answer we know: one by one
            return await self._send_singles(items)
        return list(errors)

    def _may_refill(self) -> bool:
        now = time.monotonic()
        return not self.down and now >= self.paused_until and now < self.p.stop_deadline

    async def send_items(self, items: list[Item], *, refill: bool = False, more: int = 0,
                         ) -> list[Optional[BaseException]]:
        if self.batch_url is not None and len(items) > 1:
            return await self._send_batch(items)
        return await self._send_singles(items, refill=refill and self.batch_url is None, more=more)

    # ==== outcomes ==============================================================================
    async def _deliver(self, batch: list[Item]) -> None:
        # The single-record route encodes each record in its lane, just before sending it, so
        # that encoding overlaps the other lanes' requests in flight; a batch route needs them
        # all first, for one body.
        items = self.prepare(batch) if self.batch_url is not None and len(batch) > 1 else batch
        if not items:
            return
        self.inflight = items  # the same list: records a lane takes on are in flight too
        errors = await self.send_items(items, refill=True)
        self.inflight = []
        self._apply(items, errors)

    def _apply(self, items: list[Item], errors: list[Optional[BaseException]]) -> None:
        p = self.p
        unsent: list[Item] = []
        to_disk: list[Item] = []
        pause = 0.0
        held_for_auth = False
        refused = False  # the endpoint answered with a refusal: it is up
        sent = 0
        for item, exc in zip(items, errors):
            if exc is None:  # stored: counted and settled together below
                sent += 1
                if item.wal is not None:
                    p.spool.discard(item.wal)
                continue
            if exc is SETTLED:
                continue
            if exc is NOT_SENT:  # held back by a pause: no attempt was made
                unsent.append(item)
                continue
            result = outcome(exc)
            if result is Outcome.REJECT:
                refused = True
                self._rejected(item, exc)
            elif result is Outcome.HOLD:
                to_disk.append(item)
                held_for_auth = True
                p.warn_once(f"hold{getattr(exc, 'status_code', '')}", "delivery paused, records spooled: %s", exc)
            else:
                item.attempts += 1
                if p.policy.should_retry(item.attempts, exc) and not p.stopping:
                    p.stats.add("retried")
                    unsent.append(item)
                    pause = max(pause, p.policy.delay(item.attempts, exc))
                else:
                    to_disk.append(item)
        if sent:
            p.stats.add("sent", sent)
            p.settle(sent)
        if unsent:
            self.held.extendleft(reversed(unsent))
        if pause:
            self.paused_until = max(self.paused_until, time.monotonic() + pause)
        if to_disk:
            self.spool_items(to_disk, reason="undeliverable now")
            last = next((e for e in reversed(errors) if e is not None and e not in (NOT_SENT, SETTLED)), None)
            self._went_down(last, auth=held_for_auth)
        elif sent or refused:
            self._came_up()

    def _rejected(self, item: Item, exc: Optional[BaseException]) -> None:
        self.p.stats.add("rejected")
        if item.wal is not None:
            self.p.spool.discard(item.wal)
        status = getattr(exc, "status_code", None)
        field = getattr(exc, "field", None) or _field_of(exc)
        logger.warning(
            "record %s refused by the endpoint (HTTP %s%s) and counted as rejected",
            item.event_id, status, f", field `{field}`" if field else "",
        )
        logger.info("the endpoint's message for record %s: %s", item.event_id, exc)  # may quote values
        self.p.settle(1)

    def _went_down(self, exc: Optional[BaseException], *, auth: bool = False) -> None:
        now = time.monotonic()
        if not self.down:
            self.down = True
            self.probe_delay = self.p.config.auth_pause if auth else PROBE_MIN
        self._schedule_probe(exc, now, auth=auth)

    def _schedule_probe(self, exc: Optional[BaseException], now: float, *, auth: bool = False) -> None:
        after = retry_after_of(exc)
        if after is not None:
            delay = min(after, self.p.config.max_pause)
        elif auth:
            delay = self.p.config.auth_pause
        else:
            delay = self.probe_delay * rng.uniform(0.8, 1.2)
            self.probe_delay = min(self.p.config.probe_max, self.probe_delay * 2)
        self.probe_at = now + delay

    def _came_up(self) -> None:
        if self.down:
            self.down = False
            self.probe_delay = PROBE_MIN
            self.pacing.restart()
            logger.info("the endpoint answers again; draining what waits")
        self.next_look = time.monotonic()  # healthy: drain the spool now

    async def _probe(self) -> None:
        """One record, to learn whether the endpoint is back: from memory, else from the spool."""
        if self.held or self.p.batcher.queued:
            item = self.held.popleft() if self.held else self.p.batcher.take(1)[0]
            items = self.prepare([item])
            if not items:
                return
            self.inflight = items
            errors = await self.send_items(items)
            self.inflight = []
            if errors[0] is None or outcome(errors[0]) is Outcome.REJECT:
                self._apply(items, errors)
                self._came_up()
            else:
                self.spool_items(items, reason="endpoint down")
                self._probe_failed(errors[0])
            return
        if not await self.replay_one(probe=True):
            self.down = False  # nothing waits anywhere: the next real send will tell

    def _probe_failed(self, exc: Optional[BaseException]) -> None:
        self.probe_failed_gen = self.flush_seen
        self._schedule_probe(exc, time.monotonic(), auth=outcome(exc) is Outcome.HOLD)

    # ==== the spool =============================================================================
    def spool_items(self, items: list[Item], *, reason: str, room: bool = True) -> None:
        """Move records from memory to disk. If the disk refuses: warn once, keep them in memory
        while there is room (``room``) and it is not the end, count the rest as ``spool_error``."""
        p = self.p
        items = self.prepare(items)
        if not items:
            return
        fresh = [i for i in items if i.wal is None]
        try:
            for item in items:
                if item.wal is not None:
                    p.spool.promote(item.wal)
            evicted = p.spool.write([(i.event_id, i.body) for i in fresh if i.body is not None]) if fresh else 0
        except OSError as exc:
            p.spool_usable = False
            self.spool_retry_at = time.monotonic() + SPOOL_RETRY
            p.warn_once(
                "spool", "the spool at %s is unusable (%s): records stay in memory up to the queue bound",
                p.spool.directory, type(exc).__name__,
            )
            keep = max(0, p.batcher.max_items - len(self.held) - p.batcher.queued) if room and not p.stopping else 0
            kept, lost = items[:keep], items[keep:]
            self.held.extend(kept)
            if lost:
                p.stats.drop("spool_error", len(lost))
                logger.warning("%d record(s) could not be spooled and were dropped (counted as spool_error)", len(lost))
                p.settle(len(lost))
            return
        p.spool_usable = True
        self.backlog = True
        p.stats.add("spooled", len(items))
        if evicted:
            p.stats.drop("spool_full", evicted)
            p.warn_once("evict", "spool over %d bytes: oldest records evicted (spool_full)", p.spool.max_bytes)
        logger.info("spooled %d record(s) (%s)", len(items), reason)
        if reason == "exit":
            logger.warning(
                "%d record(s) not delivered before the exit deadline were spooled to %s", len(items), p.spool.directory
            )
        p.settle(len(items))

    async def replay_one(self, *, probe: bool = False) -> bool:
        """Send the oldest spool file through the live path; False when there was none."""
        p = self.p
        now = time.monotonic()
        try:
            claim = p.spool.claim_oldest()
        except SpoolCorrupt as corrupt:
            p.stats.drop("spool_corrupt", corrupt.records)
            logger.error("a corrupt spool file was set aside in quarantine/; %d record(s) counted", corrupt.records)
            return True
        except OSError as exc:
            p.warn_once("replay", "spool replay failed (%s); will try again", type(exc).__name__)
            self.next_look = now + p.config.replay_interval
            return False
        if claim is None:
            self.backlog = False
            self.looked_gen = self.flush_seen
            self.next_look = now + p.config.replay_interval
            return False
        items = [Item(event_id, len(body), body=body) for event_id, body in claim.entries]
        remaining: list[Entry] = []
        position = 0
        failure: Optional[BaseException] = None
        try:
            while position < len(items) and failure is None:
                if p.stopping and time.monotonic() >= p.stop_deadline:
                    break
                size = 1 if probe and position == 0 else p.batcher.batch_size
                chunk = items[position: position + size]
                errors = await self.send_items(chunk, more=len(items) - position - len(chunk))
                position += len(chunk)
                for item, err in zip(chunk, errors):
                    result = Outcome.RETRY if err is NOT_SENT else outcome(err)
                    if result is Outcome.SENT:
                        p.stats.add("sent")
                        p.stats.add("replayed")
                    elif result is Outcome.REJECT:
                        p.stats.add("rejected")
                        logger.warning("spooled record %s refused by the endpoint (counted as rejected)", item.event_id)
                    else:
                        remaining.append((item.event_id, item.body or b""))
                        failure = failure or err
                if probe and position == 1 and failure is None:
                    self._came_up()  # the probe was stored: the rest drains with the lanes opening again
        finally:  # also when cancelled: what was not confirmed goes back to the spool
            remaining.extend((i.event_id, i.body or b"") for i in items[position:])
            try:
                p.spool.finish(claim, remaining)
            except OSError as error:
                p.warn_once("finish", "could not rewrite a spool file (%s); replayed whole later", type(error).__name__)
        if failure is None:
            self._came_up()
        elif failure is NOT_SENT:
            pass
        elif probe or not self.down:
            if not self.down:
                self._went_down(failure, auth=outcome(failure) is Outcome.HOLD)
            self._probe_failed(failure)
        return True


_SCHEDSTAT = "/proc/thread-self/schedstat"  # Linux: this thread's CPU and run-queue nanoseconds


class _TimedSelector(selectors.DefaultSelector):
    """The worker loop's selector, adding up the time it blocked waiting for the network: the
    pacing opens lanes only while the worker mostly waits for answers."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = 0.0
        self._schedstat = os.path.exists(_SCHEDSTAT)
        self._queued_at: Optional[tuple[float, float]] = None  # (when, run-queue seconds) last read

    def select(self, timeout: Optional[float] = None) -> Any:
        if timeout is not None and timeout <= 0:
            return super().select(timeout)
        start = time.perf_counter()
        try:
            return super().select(timeout)
        finally:
            self.waited += time.perf_counter() - start

    def ready_share(self, now: float) -> float:
        """The share of the time since the last call that this thread spent ready to run but
        off the CPU (0 where Linux does not tell). A sender process at idle priority waits so
        while the app is busy, and :meth:`select` counts it as waiting for the network."""
        if not self._schedstat:
            return 0.0
        try:
            with open(_SCHEDSTAT, "rb") as stat:
                queued = int(stat.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError) as exc:  # pragma: no cover - a /proc unlike Linux's
            self._schedstat = False  # once: the pacing goes by its waits alone from now on
            swallow("reading the run queue's time", exc)
            return 0.0
        last, self._queued_at = self._queued_at, (now, queued)
        if last is None or now <= last[0]:
            return 0.0
        return max(0.0, (queued - last[1]) / (now - last[0]))


def _struggled(result: Optional[BaseException]) -> bool:
    """Whether a request's result says the endpoint failed it (not: refused the record)."""
    return result is not None and result is not SETTLED and result is not NOT_SENT and \
        outcome(result) is not Outcome.REJECT


def _field_of(exc: Optional[BaseException]) -> Optional[str]:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("field"), str):
        return str(body["field"])
    return None
