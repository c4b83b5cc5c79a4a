"""Celery: prefork children leave through ``os._exit`` (no ``atexit``). The SDK connects
``worker_process_shutdown`` by itself when a child first logs; ``connect()`` does it up front,
for the children and the main process alike."""

from __future__ import annotations

from typing import Any

from .._exit import close_all

__all__ = ["connect"]


def _close(*args: Any, **kwargs: Any) -> None:
    close_all()


def connect() -> None:
    from celery import signals  # type: ignore[import-untyped]

    signals.worker_process_shutdown.connect(_close, weak=False)
    signals.worker_shutdown.connect(_close, weak=False)
