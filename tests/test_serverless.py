"""flush_after: what a serverless handler logged is stored before it returns (the platform may
freeze the process right after); the gunicorn hooks close what the worker holds."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from huggingplace import HuggingPlace, flush_after
from huggingplace.collector import Collector
from huggingplace.integrations.gunicorn import worker_exit

from .conftest import KEY


def _count(db: str, prefix: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM chat WHERE user_prompt LIKE ?", (prefix + "%",)).fetchone()[0])


def _client(url: str, tmp_path: Path) -> HuggingPlace:
    # flush_interval=30: nothing would leave on its own before the handler returns
    return HuggingPlace(api_key=KEY, org_id="org-a", base_url=url, background=True, flush_interval=30,
                        spool_dir=str(tmp_path / "spool"), handle_signals=False)


def test_a_sync_handler_has_delivered_when_it_returns(tmp_path: Path) -> None:
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = _client(c.url, tmp_path)

        @flush_after
        def handler(event: dict[str, str], context: object) -> str:
            for i in range(20):
                hp.log(user_prompt=f"{event['q']}-{i}", response="a")
            return "done"

        assert handler({"q": "lambda"}, None) == "done"
        assert _count(c.db_path, "lambda-") == 20  # already stored: the decorator flushed
        hp.close()


def test_an_async_handler_has_delivered_even_when_it_raises(tmp_path: Path) -> None:
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = _client(c.url, tmp_path)

        @flush_after(timeout=5)
        async def handler(event: dict[str, str]) -> None:
            hp.log(user_prompt="async-fn", response="a")
            raise ValueError("the handler failed")

        try:
            asyncio.run(handler({}))
        except ValueError:
            pass
        assert _count(c.db_path, "async-fn") == 1
        hp.close()


def test_the_gunicorn_worker_exit_hook_closes_the_clients(tmp_path: Path) -> None:
    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = _client(c.url, tmp_path)
        hp.log(user_prompt="gunicorn-hook", response="a")
        worker_exit(None, None)
        assert _count(c.db_path, "gunicorn-hook") == 1 and hp._pipeline is not None and hp._pipeline.closed


def test_celery_connect_closes_the_clients_when_a_child_shuts_down(tmp_path: Path) -> None:
    import pytest

    signals = pytest.importorskip("celery.signals")
    from huggingplace.integrations.celery import _close, connect

    with Collector(str(tmp_path / "c.db"), keys={KEY: "org-a"}) as c:
        hp = _client(c.url, tmp_path)
        hp.log(user_prompt="celery-hook", response="a")
        connect()
        try:
            signals.worker_process_shutdown.send(sender=None, pid=0, exitcode=0)  # as billiard does in a child
            assert _count(c.db_path, "celery-hook") == 1 and hp._pipeline is not None and hp._pipeline.closed
        finally:
            signals.worker_process_shutdown.disconnect(_close)
            signals.worker_shutdown.disconnect(_close)
