"""One place for errors the SDK swallows to protect the host app: logged (without payload
values) and counted, never raised into the caller.

Tests register a hook (``tests/conftest.py``) that collects every swallowed error and fails the
test that caused it, as sentry-python's ``internal_exceptions`` fixture does, so a silent
``except`` never hides a bug from the suite.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

__all__ = ["swallow", "hooks"]

logger = logging.getLogger("huggingplace")

#: called with (where, exception) for every swallowed error; the test suite appends to it
hooks: list[Callable[[str, BaseException], None]] = []


def swallow(where: str, exc: BaseException, *, stats: Optional[object] = None, count: str = "internal_error") -> None:
    """Log ``exc`` (its type and where, never its message: it may quote a prompt) and count it."""
    if stats is not None:
        try:
            stats.drop(count)  # type: ignore[attr-defined]
        except Exception:  # pragma: no cover - counting must never raise either
            pass
    logger.error("huggingplace: internal error in %s (%s); the host app is unaffected", where, type(exc).__name__)
    logger.debug("huggingplace: internal error details", exc_info=exc)
    for hook in list(hooks):
        hook(where, exc)
