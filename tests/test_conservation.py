"""Conservation under any input: every record passed to log() (directly, in a session, through a
step or a before_send hook) ends exactly once as sent, rejected, dropped (counted by reason) or
spooled; the foreground client raises only HuggingPlaceError; the worker never dies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huggingplace import HuggingPlace, HuggingPlaceError, MemoryTransport

from .conftest import KEY
from .strategies import hostile_fields, hostile_values

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _valid_wire(body: bytes) -> None:
    payload = json.loads(body.decode("utf-8"))  # strict UTF-8: no lone surrogate made it out
    assert isinstance(payload["user_prompt"], str) and isinstance(payload["ai_response"], str)


@SETTINGS
@given(fields=hostile_fields())
def test_foreground_raises_only_huggingplace_errors(fields: dict[str, Any]) -> None:
    memory = MemoryTransport()
    hp = HuggingPlace(api_key=KEY, org_id="org-a", base_url="http://127.0.0.1:9", transport=memory)
    try:
        hp.log(**fields)
    except HuggingPlaceError:
        assert memory.requests == []  # refused before anything touched the network
    for request in memory.requests:
        _valid_wire(request.body)


@pytest.fixture(scope="module")
def background() -> Any:
    memory = MemoryTransport()

    def hostile_hook(payload: dict[str, Any]) -> dict[str, Any]:
        meta = payload.get("metaData")
        if isinstance(meta, dict) and meta.get("inject") is True:
            payload["metaData"] = {"when": __import__("datetime").datetime(2020, 1, 1), "nan": float("nan"),
                                   "set": {1, 2}, "lone": "\ud800", "big": 2**80}
        return payload

    hp = HuggingPlace(api_key=KEY, org_id="org-a", base_url="http://127.0.0.1:9", background=True,
                      transport=memory, before_send=hostile_hook, handle_signals=False)
    yield hp, memory
    hp.close(5)


@SETTINGS
@given(fields=hostile_fields(), meta=hostile_values, inject=st.booleans())
def test_background_conserves_every_record(background: Any, fields: dict[str, Any], meta: Any,
                                           inject: bool) -> None:
    hp, memory = background
    before = hp.stats()
    calls = 0
    result = hp.log(**fields)  # never raises
    calls += 1
    assert result.queued or result.error
    with hp.start_session("s-conservation", metadata={"inject": inject}) as session:
        try:
            with session.step("hostile") as step:
                step.update(metadata={"v": meta})
        except HuggingPlaceError:
            pass  # a step's own fields are checked where they are set
        session.log(user_prompt="q", response="a")
        calls += 1
    flushed = hp.flush(10)
    after = hp.stats()
    assert flushed.pending == 0 and hp._pipeline.worker.alive
    settled = ((after.sent - before.sent) + (after.rejected - before.rejected)
               + (after.dropped_total - before.dropped_total) + (after.spooled - before.spooled))
    assert settled == calls  # each record exactly once
    for request in memory.requests[-2:]:
        _valid_wire(request.body)
