"""Schemathesis against a live collector: whatever it sends, valid or not, no 5xx, and every
answer matches the published OpenAPI document. Driven through Schemathesis's schema API and
hypothesis directly (its pytest plugin follows pytest's internals, which move).
``HUGGINGPLACE_FUZZ_EXAMPLES=5000`` searches deeper than the suite's 300 per mode."""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import KEY, LiveCollector

schemathesis = pytest.importorskip("schemathesis")

#: read at import: the suite's fixtures clear HUGGINGPLACE_* variables before each test
FUZZ_EXAMPLES = int(os.environ.get("HUGGINGPLACE_FUZZ_EXAMPLES", "300"))


@pytest.fixture(autouse=True)
def no_finalizers_while_compiling() -> Iterator[None]:
    """CPython 3.11.7 fails ("AST constructor recursion depth mismatch", fixed in 3.11.8) when a
    finalizer runs while a module compiles; schemathesis's modules are compiled on first use
    (pytest rewrites them, as a plugin's), so no collection runs during these tests."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _operations(collector: LiveCollector) -> list[Any]:
    schema = schemathesis.openapi.from_url(collector.url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_5xx_and_every_answer_matches_the_schema(collector: LiveCollector, mode: str) -> None:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    operations = _operations(collector)
    assert len(operations) == 8
    generation = schemathesis.GenerationMode.POSITIVE if mode == "positive" else schemathesis.GenerationMode.NEGATIVE
    strategy = st.one_of(*(op.as_strategy(generation_mode=generation) for op in operations))
    checks = [not_a_server_error] + ([response_schema_conformance] if mode == "positive" else [])
    seen: set[str] = set()

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=strategy)
    def run(case: Any) -> None:
        seen.add(f"{case.method} {case.path}")
        case.call_and_validate(base_url=collector.url, headers={"Authorization": f"Bearer {KEY}"}, checks=checks)

    run()
    assert len(seen) >= 7  # the generated requests reached (nearly) every route


def test_the_published_document_is_the_served_one(collector: LiveCollector) -> None:
    served = requests.get(collector.url + "/openapi.json", timeout=10).json()
    kept = json.loads((Path(__file__).resolve().parent.parent / "docs" / "openapi.json").read_text())
    assert served == kept
