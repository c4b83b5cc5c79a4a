"""Schemathesis against a live collector: whatever it sends, no 5xx, and every answer matches the
published OpenAPI document."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from .conftest import KEY, LiveCollector  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(collector: LiveCollector) -> Any:
    # CPython 3.11.7 fails ("AST constructor recursion depth mismatch", fixed in 3.11.8) when a
    # finalizer runs while a module compiles; schemathesis compiles many modules on first use
    gc.collect()
    gc.disable()
    try:
        schema = schemathesis.openapi.from_url(collector.url + "/openapi.json")
    finally:
        gc.enable()
    schema.config.update(base_url=collector.url)
    # valid requests and requests that break the schema on purpose: neither may get a 5xx
    schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE,
                                           schemathesis.GenerationMode.NEGATIVE])
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_every_answer_matches_the_schema(case: Any, collector: LiveCollector) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"},
                           checks=[not_a_server_error, response_schema_conformance])


def test_the_published_document_is_the_served_one(collector: LiveCollector) -> None:
    served = requests.get(collector.url + "/openapi.json", timeout=10).json()
    kept = json.loads((Path(__file__).resolve().parent.parent / "docs" / "openapi.json").read_text())
    assert served == kept
