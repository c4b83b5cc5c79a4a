"""The in-memory half of background delivery: queue bounds, overflow, and when a batch is due.

No I/O and no threads of its own. Callers ``offer()`` from any thread; one consumer (the worker)
``take()``s. The caller's side is a lock held for a few bytecodes and a ``deque.append``: no
syscall, no wake-up of the worker (it comes round on its own timer, or because a batch filled
up), so ``log()`` never hands the GIL to anyone. The consumer's side takes no lock at all (a
``deque.popleft`` is atomic), so a signal handler that interrupts a caller mid-``offer()`` can
still have the worker drain the queue.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Optional

__all__ = ["Item", "Batcher", "ACCEPTED", "OVERFLOW", "FULL", "CLOSED"]

ACCEPTED, OVERFLOW, FULL, CLOSED = 0, 1, 2, 3


class Item:
    """One record on its way: the validated record until the worker encodes it, then its body."""

    __slots__ = ("event_id", "size", "record", "body", "attempts", "wal", "packed")

    def __init__(self, event_id: str, size: int, record: Any = None, body: Optional[bytes] = None) -> None:
        self.event_id = event_id
        self.size = size
        self.record = record
        self.body = body
        self.attempts = 0
        self.wal: Any = None
        self.packed: Optional[bytes] = None  # the record pickled for a sender process, by the caller


class Batcher:
    """A bounded queue with an overflow lane.

    ``max_items`` / ``max_bytes`` bound the queue; past them a record goes to the overflow lane,
    which the worker writes to the spool in chunks. Past four chunks in that lane too (the
    worker cannot keep up, is wedged, or the disk refuses), ``offer()`` answers FULL and the
    caller spools the lane itself.
    """

    def __init__(
        self, *, max_items: int = 10_000, max_bytes: int = 32 << 20, batch_size: int = 100,
        batch_bytes: int = 4 << 20, linger: float = 0.2, overflow_chunk: int = 256,
    ) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.batch_size = max(1, batch_size)
        self.batch_bytes = batch_bytes
        self.linger = linger
        self.overflow_chunk = max(1, overflow_chunk)
        # the overflow lane only hands records to the worker in chunks: a few chunks, not a
        # second queue, so memory stays near the queue's own bound (past it, the caller spools)
        self.max_overflow = min(self.max_items, 4 * self.overflow_chunk)
        self.closed = False
        self._queue: deque[Item] = deque()
        self._overflow: deque[Item] = deque()
        self._lock = threading.Lock()
        self._offered_bytes = 0  # written by callers, under the lock
        self._taken_bytes = 0  # written by the consumer only
        self.accepted = 0  # records offered and kept (queue or overflow), under the lock
        self._waiting_since: Optional[float] = None  # consumer's clock: when it first saw a record waiting

    # ---- caller side -----------------------------------------------------------------------
    def offer(self, item: Item) -> int:
        """ACCEPTED, OVERFLOW (accepted into the overflow lane), FULL or CLOSED (not accepted)."""
        with self._lock:
            if self.closed:
                return CLOSED
            if len(self._queue) < self.max_items and self._offered_bytes - self._taken_bytes < self.max_bytes:
                self._queue.append(item)
                self._offered_bytes += item.size
                self.accepted += 1
                return ACCEPTED
            if len(self._overflow) >= self.max_overflow:
                return FULL
            self._overflow.append(item)
            self.accepted += 1
            return OVERFLOW

    def admit_elsewhere(self) -> None:
        """Count a record accepted that the caller spools itself (both lanes full)."""
        with self._lock:
            self.accepted += 1

    def overflow_wants_worker(self) -> bool:
        """True once per chunk of overflow: the moment to wake the worker to spill it."""
        return len(self._overflow) % self.overflow_chunk == 1 or self.overflow_chunk == 1

    # ---- consumer side (one thread) ----------------------------------------------------------
    def __len__(self) -> int:
        return len(self._queue) + len(self._overflow)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def due_in(self, now: float, *, hurry: bool = False) -> Optional[float]:
        """Seconds until a batch is due (0: now), or None when nothing waits. A batch is due when
        it is full, when its oldest record has waited ``linger``, or at once when ``hurry``."""
        n = len(self._queue)
        if n == 0:
            self._waiting_since = None
            return None
        if hurry or n >= self.batch_size:
            return 0.0
        if self._waiting_since is None:
            self._waiting_since = now
        return max(0.0, self._waiting_since + self.linger - now)

    def take(self, limit: Optional[int] = None) -> list[Item]:
        """Up to a batch of records, oldest first, within ``batch_bytes``."""
        limit = self.batch_size if limit is None else limit
        batch: list[Item] = []
        size = 0
        queue = self._queue
        while queue and len(batch) < limit and size < self.batch_bytes:
            try:
                item = queue.popleft()
            except IndexError:
                break
            batch.append(item)
            size += item.size
        self._taken_bytes += size
        self._waiting_since = None
        return batch

    def take_all(self) -> list[Item]:
        """Everything queued, oldest first, in one pass (a relay hands it all to its sender).
        Without the callers' lock, so that a close() from a signal handler that interrupted an
        offer() cannot wait on it: only this consumer pops, so the items counted are there."""
        queue = self._queue
        popleft = queue.popleft
        items = [popleft() for _ in range(len(queue))]
        self._taken_bytes += sum([item.size for item in items])
        self._waiting_since = None
        return items

    def take_overflow(self, limit: int) -> list[Item]:
        out: list[Item] = []
        while self._overflow and len(out) < limit:
            try:
                out.append(self._overflow.popleft())
            except IndexError:
                break
        return out

    def put_back(self, items: list[Item]) -> None:
        """Return items to the head of the queue, in order (a send that never happened)."""
        for item in reversed(items):
            self._queue.appendleft(item)
        self._taken_bytes -= sum(i.size for i in items)

    def drain(self) -> list[Item]:
        """Everything in memory, queue then overflow (at close, or to move to the spool)."""
        items = self.take_all()
        items.extend(self.take_overflow(len(self._overflow) + 1))
        return items
