"""The pacing alone: how many requests stay in flight, with no thread and no I/O. The worker's
use of it, against slow and fast loopback endpoints, is in test_worker.py."""

from __future__ import annotations

from typing import Optional

from hypothesis import given
from hypothesis import strategies as st

from huggingplace._pacing import RETRY_WAVES, START, Pacing

WAITS = 0.9  # a wave the worker spent mostly waiting for answers (an endpoint far away)
BUSY = 0.1  # ... mostly working (its CPU is the limit, or the host app keeps it from running)


def test_lanes_start_at_eight_and_double_while_records_wait_and_answers_are_awaited() -> None:
    pacing = Pacing(64)
    assert pacing.lanes == START == 8
    assert [pacing.after_wave(waiting=1000, idle=WAITS) for _ in range(5)] == [16, 32, 64, 64, 64]


def test_a_busy_worker_gets_no_more_lanes_and_gives_back_what_it_had() -> None:
    pacing = Pacing(64)
    assert [pacing.after_wave(waiting=1000, idle=BUSY) for _ in range(3)] == [8, 8, 8]
    for _ in range(3):
        pacing.after_wave(waiting=1000, idle=WAITS)
    assert pacing.lanes == 64
    assert pacing.after_wave(waiting=1000, idle=0.4) == 64  # between the two marks: hold
    assert [pacing.after_wave(waiting=1000, idle=BUSY) for _ in range(4)] == [32, 16, 8, 8]


def test_doubled_lanes_that_deliver_no_more_go_back_and_stay_a_while() -> None:
    """A worker the host app keeps from running waits as one far from its endpoint does; only
    the rate tells them apart, judged on the second wave after a doubling (the first opens its
    connections)."""
    pacing = Pacing(64)
    assert pacing.after_wave(waiting=1000, idle=WAITS, rate=160.0) == 16  # on trial
    assert pacing.after_wave(waiting=1000, idle=WAITS, rate=90.0) == 16  # connecting: not judged
    assert pacing.after_wave(waiting=1000, idle=WAITS, rate=320.0) == 32  # it paid: kept, and on
    assert pacing.after_wave(waiting=1000, idle=WAITS, rate=200.0) == 32
    assert pacing.after_wave(waiting=1000, idle=WAITS, rate=350.0) == 16  # 32 did not: back
    held = [pacing.after_wave(waiting=1000, idle=WAITS, rate=400.0) for _ in range(RETRY_WAVES - 1)]
    assert held == [16] * (RETRY_WAVES - 1)
    assert pacing.after_wave(waiting=1000, idle=WAITS, rate=400.0) == 32  # a while later: tried again


def test_a_backlog_gone_lifts_what_a_trial_held() -> None:
    pacing = Pacing(64)
    pacing.after_wave(waiting=1000, idle=WAITS, rate=160.0)
    pacing.after_wave(waiting=1000, idle=WAITS, rate=160.0)
    assert pacing.after_wave(waiting=1000, idle=WAITS, rate=170.0) == 8  # 16 did not pay
    assert pacing.after_wave(waiting=1000, idle=WAITS, rate=170.0) == 8
    assert pacing.after_wave(waiting=0, idle=WAITS) == 8  # nothing waits: at the start, free again
    assert pacing.after_wave(waiting=1000, idle=WAITS, rate=160.0) == 16


def test_a_failure_halves_the_lanes_down_to_one_and_then_they_open_one_at_a_time() -> None:
    pacing = Pacing(64)
    for _ in range(3):
        pacing.after_wave(waiting=1000, idle=WAITS)
    assert [pacing.failed() for _ in range(2)] == [32, 16]
    assert [pacing.after_wave(waiting=1000, idle=WAITS) for _ in range(3)] == [17, 18, 19]
    assert [pacing.failed() for _ in range(6)] == [9, 4, 2, 1, 1, 1]
    assert [pacing.after_wave(waiting=1000, idle=WAITS) for _ in range(3)] == [2, 3, 4]


def test_when_little_waits_the_lanes_drift_back_to_the_start_and_may_double_again() -> None:
    pacing = Pacing(64)
    for _ in range(3):
        pacing.after_wave(waiting=1000, idle=WAITS)
    assert [pacing.after_wave(waiting=0, idle=WAITS) for _ in range(4)] == [32, 16, 8, 8]
    for _ in range(3):
        pacing.failed()
    assert pacing.lanes == 1
    assert [pacing.drift() for _ in range(4)] == [2, 4, 8, 8]
    assert [pacing.after_wave(waiting=1000, idle=WAITS) for _ in range(2)] == [16, 32]  # idle: doubling again


def test_after_an_outage_the_lanes_the_failures_closed_double_again() -> None:
    pacing = Pacing(64)
    for _ in range(6):
        pacing.failed()
    assert pacing.lanes == 1
    pacing.restart()
    assert [pacing.after_wave(waiting=5000, idle=WAITS) for _ in range(7)] == [2, 4, 8, 16, 32, 64, 64]


def test_a_ceiling_below_the_start_is_kept_and_one_stays_one() -> None:
    low = Pacing(4)
    assert low.lanes == 4 and low.after_wave(waiting=1000, idle=WAITS) == 4
    one = Pacing(1)
    assert [one.after_wave(waiting=99, idle=WAITS), one.failed(), one.drift()] == [1, 1, 1]


@given(st.integers(min_value=1, max_value=512), st.lists(st.tuples(
    st.sampled_from(["failed", "wave", "drift"]), st.integers(min_value=0, max_value=10_000),
    st.none() | st.floats(min_value=0.0, max_value=1.0)), max_size=60))
def test_lanes_stay_between_one_and_the_ceiling_whatever_happens(
    ceiling: int, events: list[tuple[str, int, Optional[float]]],
) -> None:
    pacing = Pacing(ceiling)
    for kind, waiting, idle in events:
        before = pacing.lanes
        if kind == "failed":
            lanes = pacing.failed()
            assert lanes == max(1, before // 2)  # a failure never opens a lane
        elif kind == "drift":
            lanes = pacing.drift()
            assert abs(lanes - pacing.floor) <= abs(before - pacing.floor)  # towards the start
        else:
            lanes = pacing.after_wave(waiting=waiting, idle=idle)
            if idle is not None and idle < 0.5:
                assert lanes <= max(before, pacing.floor)  # a busy worker never gets more lanes
            if lanes > before:  # opened for a backlog, or back up to the start; at most doubled
                assert (waiting > before or lanes <= pacing.floor) and lanes <= 2 * before
        assert 1 <= lanes <= ceiling and lanes == pacing.lanes
