"""Drafts: what background log() captures on the caller's thread, built later on the worker.

A plain ``log(**fields)`` of builtin values is captured as its keywords pickled (a keyword
draft); everything else (sessions, contexts, objects, an id of the caller's own) as a draft of
normalized fields. Both must build the same record.
"""

from __future__ import annotations

import array
import datetime as dt
import enum
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings

from huggingplace import ValidationError
from huggingplace._draft import Draft, KeywordDraft, plain_dumps
from huggingplace._mapping import normalize
from huggingplace._sender import pack, unpack

from .background_helpers import bg_client, holds_a_set, outcome
from .servers import closed_port
from .strategies import hostile_fields, valid_fields


def _twin(fields: dict[str, Any]) -> tuple[KeywordDraft | None, Draft | None]:
    """A keyword draft of ``fields`` and the draft of the same fields normalized, with one id
    and one capture time, so that their records can be compared."""
    quick = KeywordDraft.capture(fields)
    try:
        slow = Draft(normalize(fields))
    except (ValidationError, Exception):
        return quick, None
    if quick is not None:
        quick.event_id, quick.at = slow.event_id, slow.at
    return quick, slow


@given(fields=hostile_fields() | valid_fields().map(lambda pair: pair[0]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_keyword_draft_builds_what_a_draft_builds(fields: dict[str, Any]) -> None:
    """Property: for any keywords, a keyword draft (when it takes them) builds exactly the body,
    or the refusal, that the normalized draft builds; and so does its copy after the trip to a
    sender process."""
    assume(not holds_a_set(fields))  # a set read back may iterate in another order
    quick, slow = _twin(fields)
    if quick is None:
        return
    assert slow is not None, "a keyword draft took keywords that normalize() refuses"
    assert outcome(quick) == outcome(slow)
    packed = pack(quick)
    assert packed is not None and packed[:1] == b"K"
    back = unpack(packed)
    assert back[0] == "k"
    assert outcome(KeywordDraft.restore_keywords(*back[1:])) == outcome(slow)


def test_plain_keywords_are_taken_with_their_spelling() -> None:
    fields = {"userPrompt": "q", "ai_response": "a", "metaData": {"k": [1, 2.5, None, True]},
              "token_count": 3, "session_id": None, "step_data": [{"step_name": "x", "time_taken": 5}],
              "user_metadata": {"raw": bytearray(b"\x00\x01"), "tags": ("a", "b")}}
    quick, slow = _twin(fields)
    assert quick is not None and slow is not None
    assert outcome(quick) == outcome(slow)
    assert quick.size == 256 + len(quick.blob)


class _Color(enum.Enum):
    RED = "red"


class _Text(str):
    pass


@pytest.mark.parametrize("fields", [
    {"user_prompt": "q", "respons": "a"},  # unknown: normalize names it at once, on the caller's thread
    {"user_prompt": "q", "response": "a", "ai_response": "b"},  # one field, two spellings
    {"user_prompt": "q", "response": "a", "event_id": "a" * 32},  # an id of the caller's own
    {"user_prompt": "q", "response": "a", "timestamp": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)},
    {"user_prompt": "q", "response": "a", "metadata": {"at": dt.date(2026, 1, 1)}},  # an object
    {"user_prompt": _Text("q"), "response": "a"},  # a str subclass
    {"user_prompt": "q", "response": "a", "metadata": {"c": _Color.RED}},
    {"user_prompt": "q", "response": "a", "metadata": {"v": array.array("d", [0.5, 1.5])}},  # a buffer
])
def test_anything_but_plain_keywords_is_left_to_the_normalized_draft(fields: dict[str, Any]) -> None:
    """Each of these needs normalize() now, or holds a value that pickling would change or
    that only the worker's encoding knows (an array.array is a list of numbers, not bytes)."""
    assert KeywordDraft.capture(fields) is None


def test_pickled_values_are_copies_and_picklers_are_not_shared() -> None:
    """Threads capturing at once each get their own keywords back, and what a caller changes
    afterwards is not in the draft."""
    out: dict[int, list[bytes | None]] = {}

    def capture(n: int) -> None:
        out[n] = [plain_dumps({"n": n, "i": i, "tags": [n] * (i % 5)}) for i in range(2_000)]

    threads = [threading.Thread(target=capture, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n, blobs in out.items():
        assert [pickle.loads(b) for b in blobs if b is not None] == [
            {"n": n, "i": i, "tags": [n] * (i % 5)} for i in range(2_000)]
    meta = {"request": {"id": "first"}}
    quick = KeywordDraft.capture({"user_prompt": "q", "response": "a", "metadata": meta})
    meta["request"]["id"] = "changed"
    assert quick is not None and quick.build().metadata == {"request": {"id": "first"}}


def test_only_a_plain_background_call_takes_the_keyword_path(tmp_path: Path) -> None:
    """Sessions, contexts and sampling need the fields now (merged, or the session id read):
    their records are normalized drafts. The rest are keyword drafts."""
    hp = bg_client(f"http://127.0.0.1:{closed_port()}", tmp_path / "spool", flush_interval=60)
    sampled = bg_client(f"http://127.0.0.1:{closed_port()}", tmp_path / "spool2", flush_interval=60,
                        sample_rate=0.999)
    try:
        hp.log(user_prompt="q", response="a")
        with hp.context(user_id="u"):
            hp.log(user_prompt="q", response="a")
        with hp.start_session("s") as session:
            session.log(user_prompt="q", response="a")
            hp.log(user_prompt="q", response="a")
        sampled.log(user_prompt="q", response="a", session_id="s")
        kinds = [type(item.record) for item in list(hp._pipeline.batcher._queue)]
        assert kinds == [KeywordDraft, Draft, Draft, Draft]
        assert [type(item.record) for item in list(sampled._pipeline.batcher._queue)] == [Draft]
    finally:
        hp.close(0.2)
        sampled.close(0.2)
