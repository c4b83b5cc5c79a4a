"""Serverless handlers: the platform may freeze the process the moment a handler returns, so
what a handler logged is sent before it does."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional, TypeVar

from ._exit import flush_all

__all__ = ["flush_after"]

F = TypeVar("F", bound=Callable[..., Any])


def flush_after(func: Optional[F] = None, *, timeout: Optional[float] = None) -> Any:
    """Decorate a handler (sync or async): after it returns or raises, every background client
    of the process flushes, within ``timeout`` (default: the clients' exit deadline)."""

    def decorate(handler: F) -> F:
        if inspect.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                import asyncio

                try:
                    return await handler(*args, **kwargs)
                finally:
                    await asyncio.to_thread(flush_all, timeout)

            return run_async  # type: ignore[return-value]

        @functools.wraps(handler)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            finally:
                flush_all(timeout)

        return run  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate
