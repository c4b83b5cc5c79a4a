"""Hypothesis strategies for the pure core: valid log() keyword sets and broken ones."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from huggingplace._fields import BY_NAME

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
    "step_data": st.lists(json_objects, max_size=3),
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
    "response_time": st.floats(max_value=-0.001) | text.filter(lambda s: s) | st.booleans(),
    "user_roles": ids,
    "step_data": text.filter(lambda s: s) | st.lists(st.integers(), min_size=1, max_size=2),
    "token_usage": text | st.fixed_dictionaries({"prompt_tokens": st.integers(max_value=-1)}),
    "status": text.filter(lambda s: s not in ("ok", "error")),
    "event_id": text.filter(lambda s: len(s) != 32),
}
