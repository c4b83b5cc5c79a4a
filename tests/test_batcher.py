"""The batcher alone: bounds, overflow and when a batch is due, with no thread and no I/O."""

from __future__ import annotations

import pytest

from huggingplace._batcher import ACCEPTED, CLOSED, FULL, OVERFLOW, Batcher, Item


def items(n: int, size: int = 10) -> list[Item]:
    return [Item(f"{i:032x}", size) for i in range(n)]


def test_the_queue_is_bounded_by_count_then_the_overflow_then_full() -> None:
    b = Batcher(max_items=3, batch_size=2)
    verdicts = [b.offer(i) for i in items(7)]
    assert verdicts == [ACCEPTED] * 3 + [OVERFLOW] * 3 + [FULL]
    assert b.accepted == 6 and len(b) == 6 and b.queued == 3


def test_the_overflow_lane_holds_four_chunks_not_a_second_queue() -> None:
    b = Batcher(max_items=100, overflow_chunk=10)
    verdicts = [b.offer(i) for i in items(150)]
    assert verdicts.count(ACCEPTED) == 100 and verdicts.count(OVERFLOW) == 40 and verdicts.count(FULL) == 10
    assert len(b) == 140  # in memory: the queue and four chunks


def test_the_queue_is_bounded_by_bytes() -> None:
    b = Batcher(max_items=100, max_bytes=25)
    assert [b.offer(i) for i in items(4, size=10)] == [ACCEPTED, ACCEPTED, ACCEPTED, OVERFLOW]
    b.take()
    assert b.offer(Item("f" * 32, 10)) == ACCEPTED  # what was taken no longer counts


def test_a_closed_batcher_accepts_nothing() -> None:
    b = Batcher()
    b.closed = True
    assert b.offer(items(1)[0]) == CLOSED and b.accepted == 0


def test_a_batch_is_due_when_full_when_it_waited_linger_or_when_hurried() -> None:
    b = Batcher(batch_size=3, linger=0.2)
    assert b.due_in(100.0) is None  # nothing waits
    b.offer(items(1)[0])
    assert b.due_in(100.0) == pytest.approx(0.2)  # first seen now: due after linger
    assert b.due_in(100.15) == pytest.approx(0.05)
    assert b.due_in(100.2) == 0.0
    assert b.due_in(100.0, hurry=True) == 0.0
    for i in items(2):
        b.offer(i)
    assert b.due_in(50.0) == 0.0  # full


def test_take_respects_count_and_bytes_and_put_back_keeps_order() -> None:
    b = Batcher(batch_size=4, batch_bytes=25)
    xs = items(6, size=10)
    for i in xs:
        b.offer(i)
    first = b.take()
    assert [i.event_id for i in first] == [x.event_id for x in xs[:3]]  # 30 bytes >= 25 stops it
    b.put_back(first[1:])
    assert [i.event_id for i in b.take(limit=2)] == [xs[1].event_id, xs[2].event_id]


def test_drain_takes_queue_then_overflow() -> None:
    b = Batcher(max_items=2, batch_size=1, batch_bytes=1)
    xs = items(4)
    for i in xs:
        b.offer(i)
    assert [i.event_id for i in b.drain()] == [x.event_id for x in xs]
    assert len(b) == 0


def test_overflow_wakes_the_worker_once_per_chunk() -> None:
    b = Batcher(max_items=8, max_bytes=5, overflow_chunk=3)
    assert b.offer(Item("f" * 32, 10)) == ACCEPTED  # the queue is now over its byte bound
    wakes = []
    for i in items(7):
        b.offer(i)
        wakes.append(b.overflow_wants_worker())
    assert wakes == [True, False, False, True, False, False, True]


def test_take_all_loses_and_repeats_nothing_while_callers_offer() -> None:
    """The relay takes the whole queue in one pass while four threads offer: every accepted
    item is taken exactly once, in each thread's order, and the byte bound counts them all as
    taken; and it never waits on the callers' lock (a close() from a signal handler that
    interrupted an offer() drains the queue)."""
    import threading

    b = Batcher(max_items=1_000_000, max_bytes=1 << 40)
    per_thread, taken, done = 5_000, [], threading.Event()

    def offer(t: int) -> None:
        for i in range(per_thread):
            assert b.offer(Item(f"{t}-{i}", 7)) == ACCEPTED

    def take() -> None:
        while not done.is_set():
            taken.extend(b.take_all())
        taken.extend(b.take_all())

    taker = threading.Thread(target=take)
    taker.start()
    callers = [threading.Thread(target=offer, args=(t,)) for t in range(4)]
    for c in callers:
        c.start()
    for c in callers:
        c.join()
    done.set()
    taker.join()
    ids = [item.event_id for item in taken]
    assert len(ids) == len(set(ids)) == 4 * per_thread == b.accepted
    for t in range(4):
        assert [int(i.split("-")[1]) for i in ids if i.startswith(f"{t}-")] == list(range(per_thread))
    assert b._taken_bytes == b._offered_bytes == 7 * 4 * per_thread and b.queued == 0
    b.offer(Item("last", 7))
    drained: list[Item] = []
    with b._lock:  # as if a signal handler ran inside offer()
        drainer = threading.Thread(target=lambda: drained.extend(b.drain()), daemon=True)
        drainer.start()
        drainer.join(10)
        assert not drainer.is_alive(), "drain() waited on the callers' lock"
    assert [i.event_id for i in drained] == ["last"]
