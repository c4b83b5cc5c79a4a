"""gunicorn hooks; in ``gunicorn.conf.py``: ``from huggingplace.integrations.gunicorn import worker_exit, on_exit``.

Sync and gthread workers need neither (they leave through ``sys.exit`` and the SDK's exit hook
runs); the hooks make the close explicit and bounded by the exit deadline in every worker class.
"""

from __future__ import annotations

from typing import Any

from .._exit import close_all

__all__ = ["worker_exit", "on_exit"]


def worker_exit(server: Any, worker: Any) -> None:
    """Runs in the worker before it exits: send what it holds."""
    close_all()


def on_exit(server: Any) -> None:
    """Runs in the master (``--preload`` apps may log there too)."""
    close_all()
