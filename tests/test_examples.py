"""Every script in examples/ runs as written against the real collector, and its records land."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import LiveCollector

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))
EXPECTED = {
    "quickstart.py": 3, "sessions_and_steps.py": 1, "trace.py": 2, "async_quickstart.py": 4, "background.py": 20,
    "wrap_openai.py": 2, "wrap_anthropic.py": 2,
}


@pytest.fixture(scope="module")
def fake() -> Any:
    from .fake_provider import FakeProvider

    with FakeProvider() as provider:
        yield provider


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_and_stores(script: Path, collector: LiveCollector, fake: Any, tmp_path: Path) -> None:
    before = collector.db().execute("SELECT COUNT(*) FROM chat WHERE org_id = 'org-a'").fetchone()[0]
    env = {
        **os.environ,
        "HUGGINGPLACE_API_KEY": collector.key,
        "HUGGINGPLACE_ORG_ID": collector.org,
        "HUGGINGPLACE_BASE_URL": collector.url,
        "HUGGINGPLACE_SPOOL_DIR": str(tmp_path / "spool"),
        # the provider examples run against the local fake provider, never a public address
        "OPENAI_API_KEY": "sk-test-fake", "OPENAI_BASE_URL": fake.openai_url,
        "ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": fake.anthropic_url,
    }
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    after = collector.db().execute("SELECT COUNT(*) FROM chat WHERE org_id = 'org-a'").fetchone()[0]
    assert after - before == EXPECTED[script.name]


def test_every_example_is_counted() -> None:
    assert {p.name for p in EXAMPLES} == set(EXPECTED)
