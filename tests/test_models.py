"""The record classes' own behaviour, where it is written by hand rather than by attrs."""

from __future__ import annotations

import inspect

import attrs
import pytest

from huggingplace import LogResult
from huggingplace._models import Step


def test_log_results_hand_written_init_takes_attrs_fields_in_order_with_their_defaults() -> None:
    """LogResult's __init__ is written out (every background log() makes one): it must take
    exactly the declared fields, positionally in order, with the declared defaults, and the
    class must stay frozen, comparable and hashable."""
    declared = [(f.name, f.default) for f in attrs.fields(LogResult)]
    taken = [(p.name, p.default) for p in list(inspect.signature(LogResult.__init__).parameters.values())[1:]]
    assert taken == [("event_id", inspect.Parameter.empty), *declared[1:]]
    values = ("e" * 32, 201, {"ok": True}, True, "why", "sampled")
    result = LogResult(*values)
    assert attrs.astuple(result, recurse=False) == values
    assert result == LogResult(*values) and hash(LogResult("a")) == hash(LogResult("a"))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.queued = False  # type: ignore[misc]
    assert "body" not in repr(result)


def test_a_step_from_a_timer_is_the_step_its_plain_values_describe() -> None:
    """Step.from_timer reads the short form a session's timer captures as the whole form."""
    offset, start, end = 1_700_000_000.0, 5_000_000, 7_250_000
    short = Step.from_timer(("retrieve", "retrieval", start, end), offset)
    whole = Step.from_timer(("retrieve", "retrieval", "ok", offset + 0.005, offset + 0.00725, 2.25, None, {}, [],
                             None, None, None, None, None, None, start), offset)
    assert attrs.asdict(short) == attrs.asdict(whole)
    assert short.time_ms == 2.25 and short.start_ns == start
    assert short.started_at is not None and short.ended_at is not None
    assert (short.ended_at - short.started_at).total_seconds() == pytest.approx(0.00225, abs=1e-6)


def test_a_step_read_back_from_its_plain_values_is_the_same_step() -> None:
    """Step.from_plain assigns the fields by position, in Step.plain()'s order: every field
    set to a value of its own comes back in its place, nested steps included."""
    from datetime import datetime, timezone

    from huggingplace._models import ErrorInfo

    child = Step(name="child", type="tool", time_ms=1.5)
    step = Step(name="parent", type="llm", status="error", started_at=datetime(2026, 11, 30, 5, 1, 2, 345000,
                tzinfo=timezone.utc), ended_at=datetime(2026, 11, 30, 5, 1, 3, tzinfo=timezone.utc), time_ms=655.0,
                error=ErrorInfo(type="KeyError", message="'k'"), metadata={"k": [1, 2]}, steps=[child],
                user_question="q", prompt_response="a", llm_model="gpt-4o", token=7, input_tokens=3, output_tokens=4,
                _start_ns=123)
    back = Step.from_plain(step.plain())
    assert attrs.asdict(back) == attrs.asdict(step)
    assert back.start_ns == 123 and back.steps[0].name == "child" and back.steps[0] is not child
