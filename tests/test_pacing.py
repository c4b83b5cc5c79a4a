"""The pacing alone: how many requests stay in flight, with no thread and no I/O. The worker's
use of it, against a slow loopback endpoint, is in test_worker.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from huggingplace._pacing import START, Pacing


def test_lanes_start_at_eight_and_double_while_records_wait_up_to_the_ceiling() -> None:
    pacing = Pacing(64)
    assert pacing.lanes == START == 8
    seen = [pacing.after_round(failed=False, waiting=1000) for _ in range(5)]
    assert seen == [16, 32, 64, 64, 64]


def test_a_failure_halves_the_lanes_down_to_one_and_then_they_open_one_at_a_time() -> None:
    pacing = Pacing(64)
    for _ in range(3):
        pacing.after_round(failed=False, waiting=1000)
    assert pacing.lanes == 64
    assert [pacing.after_round(failed=True, waiting=1000) for _ in range(2)] == [32, 16]
    assert [pacing.after_round(failed=False, waiting=1000) for _ in range(3)] == [17, 18, 19]
    assert [pacing.after_round(failed=True, waiting=1000) for _ in range(6)] == [9, 4, 2, 1, 1, 1]
    assert [pacing.after_round(failed=False, waiting=1000) for _ in range(3)] == [2, 3, 4]


def test_when_little_waits_the_lanes_drift_back_to_the_start_and_may_double_again() -> None:
    pacing = Pacing(64)
    for _ in range(3):
        pacing.after_round(failed=False, waiting=1000)
    assert [pacing.after_round(failed=False, waiting=0) for _ in range(4)] == [32, 16, 8, 8]
    for _ in range(3):
        pacing.after_round(failed=True, waiting=0)
    assert pacing.lanes == 1
    assert [pacing.after_round(failed=False, waiting=0) for _ in range(4)] == [2, 4, 8, 8]
    assert [pacing.after_round(failed=False, waiting=1000) for _ in range(2)] == [16, 32]  # idle: doubling again


def test_after_an_outage_the_lanes_the_failures_closed_double_again() -> None:
    pacing = Pacing(64)
    for _ in range(6):
        pacing.after_round(failed=True, waiting=1000)
    assert pacing.lanes == 1
    pacing.restart()
    assert [pacing.after_round(failed=False, waiting=5000) for _ in range(7)] == [2, 4, 8, 16, 32, 64, 64]


def test_a_ceiling_below_the_start_is_kept_and_one_stays_one() -> None:
    low = Pacing(4)
    assert low.lanes == 4 and low.after_round(failed=False, waiting=1000) == 4
    one = Pacing(1)
    assert [one.after_round(failed=f, waiting=w) for f, w in [(False, 99), (True, 99), (False, 0)]] == [1, 1, 1]


@given(st.integers(min_value=1, max_value=512),
       st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=10_000)), max_size=60))
def test_lanes_stay_between_one_and_the_ceiling_whatever_happens(ceiling: int, rounds: list[tuple[bool, int]]) -> None:
    pacing = Pacing(ceiling)
    for failed, waiting in rounds:
        before = pacing.lanes
        lanes = pacing.after_round(failed=failed, waiting=waiting)
        assert 1 <= lanes <= ceiling and lanes == pacing.lanes
        if failed:
            assert lanes == max(1, before // 2)  # a failure never opens a lane
        elif waiting > before:
            assert lanes >= before  # records waiting never close one
            assert lanes <= max(2 * before, before + 1)  # nor open more than double at once
