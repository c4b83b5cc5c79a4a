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
from typing import Any, Optional, Sequence

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from huggingplace import ValidationError
from huggingplace._draft import Draft, KeywordDraft, plain_dumps
from huggingplace._mapping import compose, normalize
from huggingplace._models import Step
from huggingplace._sender import pack, unpack

from .background_helpers import bg_client, holds_a_set, outcome
from .servers import closed_port
from .strategies import hostile_fields, valid_fields


def _twin(fields: dict[str, Any], defaults: Optional[dict[str, Any]] = None, steps: Sequence[Step] = (),
          measured_ms: Optional[float] = None) -> tuple[KeywordDraft | None, Draft | None]:
    """A keyword draft of a call and the draft of the same call normalized and composed, with
    one id and one capture time, so that their records can be compared."""
    base = normalize(defaults) if defaults else None
    quick = KeywordDraft.capture(fields, base, [s.plain() for s in steps], measured_ms)
    try:
        given = normalize(fields)
    except Exception:  # normalize() refuses the keys: the keyword draft must not have taken them
        return quick, None
    try:
        slow: Any = Draft(compose(given, base, steps, measured_ms, fresh=True))
    except ValidationError as exc:  # refused as the steps are added: the worker refuses it likewise
        slow = _Refused(exc.field)
    if quick is not None:
        quick.event_id, quick.at = slow.event_id, slow.at
    return quick, slow


class _Refused:
    """What a draft refused while it was composed builds: the same refusal."""

    event_id, at = "0" * 32, 0.0

    def __init__(self, field: Optional[str]) -> None:
        self.field = field

    def build(self) -> Any:
        raise ValidationError("refused", field=self.field)


def _timed(n: int, nested: bool) -> list[Step]:
    steps = []
    for i in range(n):
        step = Step.timed(f"step-{i}")
        step.start()
        if nested and i == 0:
            inner = Step.timed("inner")
            inner.start()
            inner.metadata = {"k": [1, "v"]}
            inner.finish()
            step.steps.append(inner)
        step.finish()
        steps.append(step)
    return steps


@given(fields=hostile_fields() | valid_fields().map(lambda pair: pair[0]), steps=st.integers(0, 3),
       nested=st.booleans(), in_session=st.booleans(), measured=st.none() | st.floats(0, 1e6))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_keyword_draft_builds_what_a_draft_builds(fields: dict[str, Any], steps: int, nested: bool,
                                                     in_session: bool, measured: Optional[float]) -> None:
    """Property: for any call (plain, or a session's with defaults, timed steps and a measured
    time), a keyword draft (when it takes it) builds exactly the body, or the refusal, that
    the normalized draft builds; and so does its copy after the trip to a sender process."""
    assume(not holds_a_set(fields))  # a set read back may iterate in another order
    defaults = {"session_id": "s-1", "metadata": {"plan": "pro"}, "user_id": "u"} if in_session else None
    quick, slow = _twin(fields, defaults, _timed(steps, nested), measured)
    if quick is None:
        return
    assert slow is not None, "a keyword draft took keywords that normalize() refuses"
    assert outcome(quick) == outcome(slow)
    packed = pack(quick)
    assert packed is quick.blob
    back = unpack(packed)
    assert back[0] == "k"
    restored = KeywordDraft.from_blob(back[1])
    restored.event_id, restored.at = quick.event_id, quick.at  # _twin gave quick the draft's, not its blob's
    assert outcome(restored) == outcome(slow)


def test_a_keyword_draft_travels_as_its_own_pickle_with_its_id_and_time() -> None:
    """What a sender process is handed is the captured blob itself, and it carries the id, the
    call's time and the steps' clock reading, so the record built there is the one built here."""
    steps = [("retrieve", "retrieval", 1_000_000, 3_500_000)]
    quick = KeywordDraft.capture({"user_prompt": "q", "response": "a"}, {"session_id": ("session_id", "s")},
                                 steps, 12.5, 1_700_000_000.0)
    assert quick is not None
    packed = pack(quick)
    assert packed is quick.blob and packed[:1] == pickle.PROTO
    kind, blob = unpack(packed)
    restored = KeywordDraft.from_blob(blob)
    assert (kind, restored.event_id, restored.at, restored.size) == ("k", quick.event_id, quick.at, quick.size)
    assert outcome(restored) == outcome(quick)
    step = restored.build().step_data[0]
    assert step.time_ms == 2.5 and step.started_at.timestamp() == pytest.approx(1_700_000_000.001, abs=1e-6)
    with pytest.raises((ValueError, pickle.UnpicklingError)):
        KeywordDraft.from_blob(pickle.dumps(["not", "a", "draft"]))


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
    {"user_prompt": "q" * 4097, "response": "a"},  # a long text: a Draft keeps it without a copy
    {"userPrompt": "q", "ai_response": "é" * 4097},  # ... under any spelling
])
def test_anything_but_plain_keywords_is_left_to_the_normalized_draft(fields: dict[str, Any]) -> None:
    """Each of these needs normalize() now, or holds a value that pickling would change or
    that only the worker's encoding knows (an array.array is a list of numbers, not bytes),
    or a text long enough that copying it would cost the caller more than referring to it."""
    assert KeywordDraft.capture(fields) is None


def test_which_keys_a_keyword_draft_takes_is_remembered_within_a_bound() -> None:
    """The verdict on a call's keys is kept per key set (a call repeats its keys), at most
    _MAX_KINDS of them; past the bound, and on a hit, each verdict is the one computed anew."""
    from huggingplace import _draft

    _draft._KINDS.clear()
    for i in range(_draft._MAX_KINDS + 50):
        assert KeywordDraft.capture({"user_prompt": "q", f"no_such_field_{i}": 1}) is None
    assert len(_draft._KINDS) == _draft._MAX_KINDS
    for _ in range(2):  # computed, then remembered: the same answers
        assert KeywordDraft.capture({"userPrompt": "q", "user_prompt": "q"}) is None  # one field twice
        assert KeywordDraft.capture({"user_prompt": "q", "event_id": "e" * 32}) is None  # the caller's own id
        assert KeywordDraft.capture({"userPrompt": "q", "aiResponse": "a" * 5000}) is None  # a long text
        assert KeywordDraft.capture({"userPrompt": "q", "aiResponse": "a"}) is not None
        assert KeywordDraft.capture({"user_prompt": "q", "response": "a"}) is not None
    _draft._KINDS.clear()


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


def test_which_calls_take_the_keyword_path(tmp_path: Path) -> None:
    """Calls of keywords, alone or in a context or session, are keyword drafts; a trace's
    fields, a positional dict, a failed step (its error is an object) and sampling (which
    reads the session id now) make normalized drafts."""
    hp = bg_client(f"http://127.0.0.1:{closed_port()}", tmp_path / "spool", flush_interval=60)
    sampled = bg_client(f"http://127.0.0.1:{closed_port()}", tmp_path / "spool2", flush_interval=60,
                        sample_rate=0.999)
    try:
        hp.log(user_prompt="q", response="a")
        with hp.context(user_id="u"):
            hp.log(user_prompt="q", response="a")
        with hp.start_session("s") as session:
            with session.step("retrieve"):
                pass
            session.log(user_prompt="q", response="a")
            hp.log(user_prompt="q", response="a")
            with pytest.raises(RuntimeError), session.step("generate"):
                raise RuntimeError("boom")
            session.log(user_prompt="q", response="a")
        hp.log({"user_prompt": "q", "response": "a"})
        with hp.trace("t") as trace:
            trace.update(user_prompt="q", response="a")
        sampled.log(user_prompt="q", response="a", session_id="s")
        kinds = [type(item.record).__name__ for item in list(hp._pipeline.batcher._queue)]
        assert kinds == ["KeywordDraft"] * 4 + ["Draft"] * 3
        assert [type(item.record) for item in list(sampled._pipeline.batcher._queue)] == [Draft]
    finally:
        hp.close(0.2)
        sampled.close(0.2)
