"""Hypothesis strategies for the pure core: valid log() keyword sets and broken ones."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from hypothesis import strategies as st

from huggingplace._fields import BY_NAME, STEP_ALIASES, STEP_COUNTS, STEP_STRINGS, STEP_TIMES

text = st.text(max_size=40)
ids = st.text(min_size=1, max_size=20)
counts = st.integers(min_value=0, max_value=10**9)
json_scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
#: keys a step object's contract gives a type (a valid step may hold any other key, of any value)
_TYPED_STEP_KEYS = frozenset({*STEP_STRINGS, *STEP_COUNTS, *STEP_TIMES, *STEP_ALIASES, "metadata", "steps", "error"})
step_objects = st.dictionaries(st.text(max_size=8).filter(lambda k: k not in _TYPED_STEP_KEYS), json_values,
                               max_size=5)


def _spelling(name: str) -> st.SearchStrategy[str]:
    field = BY_NAME[name]
    return st.sampled_from((field.name, *field.aliases))


OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "metadata": json_objects,
    "user_metadata": json_objects,
    "user_id": ids,
    "session_id": ids,
    "file_name": ids,
    "llm_model": ids,
    "llm_model2": ids,
    "user_uuid": ids,
    "org_uuid": ids,
    "message_id": ids,
    "response_time": st.floats(min_value=0, max_value=1e7) | counts,
    "user_roles": st.lists(ids, max_size=3),
    "mapping_table": ids | json_objects,
    "step_data": st.lists(step_objects, max_size=3),
    "token_usage": st.fixed_dictionaries(
        {"prompt_tokens": counts, "completion_tokens": counts}
    ),
}


@st.composite
def valid_fields(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(kwargs as a caller spells them, the same keyed by SDK name)``."""
    canonical: dict[str, Any] = {"user_prompt": draw(text), "response": draw(text)}
    for name in draw(st.sets(st.sampled_from(sorted(OPTIONAL)))):
        canonical[name] = draw(OPTIONAL[name])
    if "token_usage" not in canonical and draw(st.booleans()):
        canonical["token_count"] = draw(counts)
    spelled = {draw(_spelling(name)): value for name, value in canonical.items()}
    return spelled, canonical


WRONG_TYPES: dict[str, st.SearchStrategy[Any]] = {
    "user_prompt": st.integers() | st.lists(text, max_size=2),
    "response": st.integers() | st.floats(allow_nan=False),
    "metadata": st.lists(text, max_size=2) | text,
    "user_metadata": st.integers() | text,
    "user_id": st.integers() | st.lists(text, max_size=1, min_size=1),
    "llm_model": st.integers() | st.booleans(),
    "token_count": st.integers(max_value=-1) | text | st.booleans() | st.floats(allow_nan=False),
    "response_time": st.floats(max_value=-0.001) | text.filter(lambda s: s and "min" not in s) | st.booleans(),
    "user_roles": st.integers() | st.lists(st.integers(), min_size=1, max_size=2) | st.binary(),
    "step_data": text.filter(lambda s: s) | st.lists(st.integers(), min_size=1, max_size=2),
    "token_usage": text | st.fixed_dictionaries({"prompt_tokens": st.integers(max_value=-1)}),
    "status": text.filter(lambda s: s not in ("ok", "error")),
    "event_id": text.filter(lambda s: len(s) != 32),
}


class _Hostile:
    """An object whose str and repr raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


def _cyclic() -> dict[str, Any]:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


def _deep(n: int) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for _ in range(n):
        d = {"d": d}
    return d


_edge_datetimes = st.sampled_from([
    _dt.datetime.min, _dt.datetime.max,
    _dt.datetime(1, 1, 1, tzinfo=_dt.timezone(_dt.timedelta(hours=5))),
    _dt.datetime(9999, 12, 31, 23, 59, tzinfo=_dt.timezone(_dt.timedelta(hours=-5))),
])
hostile_scalars = (
    st.sampled_from(["\ud800", "x\udfffy", "\x00", "a" * 5000, "ﬃ" * 50])
    | st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**400, float("nan"), float("inf"), -0.0])
    | st.builds(_Hostile) | st.binary(max_size=20) | st.sets(st.integers(), max_size=3) | _edge_datetimes
    | st.builds(_cyclic) | st.integers(10, 200).map(_deep) | text
)
hostile_values = st.recursive(
    hostile_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=6
)
LOG_KEYS = sorted({*BY_NAME} - {"messages"})


@st.composite
def hostile_fields(draw: st.DrawFn) -> dict[str, Any]:
    """log() keywords where any field may hold anything at all."""
    fields: dict[str, Any] = {"user_prompt": draw(text | hostile_scalars), "response": draw(text | hostile_scalars)}
    for name in draw(st.sets(st.sampled_from(LOG_KEYS), max_size=5)):
        fields[name] = draw(hostile_values)
    return fields
