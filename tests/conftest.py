"""Shared fixtures: a clean environment, the real local collector, client factories."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from huggingplace import AsyncHuggingPlace, HuggingPlace, MemoryTransport
from huggingplace.collector import Collector

KEY = "hp_test_" + "k" * 24
OTHER_KEY = "hp_test_" + "o" * 24


@pytest.fixture(autouse=True)
def internal_errors() -> Iterator[list[tuple[str, BaseException]]]:
    """Every error the SDK swallows to protect the host app fails the test that caused it
    (sentry-python's ``internal_exceptions`` idea); a test that causes one on purpose takes this
    fixture and clears the list."""
    from huggingplace import _internal

    seen: list[tuple[str, BaseException]] = []
    hook = lambda where, exc: seen.append((where, exc))  # noqa: E731
    _internal.hooks.append(hook)
    yield seen
    _internal.hooks.remove(hook)
    assert not seen, f"the SDK swallowed internal errors: {seen!r}"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HUGGINGPLACE_* variable from the machine leaks into a test."""
    for name in list(os.environ):
        if name.startswith("HUGGINGPLACE_"):
            monkeypatch.delenv(name)


class LiveCollector:
    """The suite's collector: a real server on a loopback port with a real SQLite file."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.url = collector.url
        self.db_path = collector.db_path
        self.key = KEY
        self.org = "org-a"
        self.other_key = OTHER_KEY
        self.other_org = "org-b"

    def options(self, **overrides: Any) -> dict[str, Any]:
        return {"api_key": self.key, "org_id": self.org, "base_url": self.url, **overrides}

    def db(self) -> Any:
        import sqlite3

        conn = sqlite3.connect(self.db_path)
        conn.row_factory = sqlite3.Row
        return conn


@pytest.fixture(scope="session")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCollector]:
    db = tmp_path_factory.mktemp("collector") / "records.db"
    with Collector(str(db), keys={KEY: "org-a", OTHER_KEY: "org-b"}) as c:
        yield LiveCollector(c)


@pytest.fixture
def memory() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def hp(memory: MemoryTransport) -> Iterator[HuggingPlace]:
    client = HuggingPlace(api_key=KEY, org_id="org-a", base_url="http://127.0.0.1:9", transport=memory)
    yield client
    client.close()


@pytest.fixture
def session_id() -> str:
    return "s-" + secrets.token_hex(6)


def make_client(kind: str, **options: Any) -> Any:
    """A sync or async client, for tests parametrized over both."""
    return (HuggingPlace if kind == "sync" else AsyncHuggingPlace)(**options)
