"""``hp.context(...)``: fields every record inside a block carries, and ``track=False``.

A ``contextvars`` scope: nested blocks merge, leaving a block restores the outer scope, and
each asyncio task sees the scope it was created in.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any, Callable, Optional

import attrs

from ._mapping import merge_defaults

__all__ = ["Context", "Scope", "current_scope"]

Fields = dict[str, tuple[str, Any]]


@attrs.frozen
class Scope:
    fields: Fields = attrs.Factory(dict)
    track: bool = True


_scope: ContextVar[Optional[Scope]] = ContextVar("huggingplace_context", default=None)


#: the innermost ``context()`` block's scope here, if any (the ContextVar's own ``get``: it is
#: read by every ``log()``)
current_scope: Callable[[], Optional[Scope]] = _scope.get


class Context:
    """The handle ``hp.context()`` returns; use it with ``with`` or ``async with``."""

    def __init__(self, fields: Fields, track: Optional[bool]) -> None:
        self._fields = fields
        self._track = track
        self._token: Optional[Token[Optional[Scope]]] = None

    def __enter__(self) -> Context:
        outer = _scope.get() or Scope()
        track = outer.track if self._track is None else self._track
        self._token = _scope.set(Scope(merge_defaults(outer.fields, self._fields), track))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._token is not None:
            try:
                _scope.reset(self._token)
            except ValueError:  # left in another context than entered
                _scope.set(None)

    async def __aenter__(self) -> Context:
        return self.__enter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.__exit__(*exc_info)
