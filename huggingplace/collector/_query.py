"""What a reader asks of the stored records: filters, sort orders and cursors, checked and turned
into SQL. Pure: query parameters in, a :class:`Query` (or a :class:`QueryError` naming the
parameter) out. The JSON routes and the viewer read the same parameters through this module.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
from collections.abc import Mapping
from typing import Any, Optional

import attrs

from .._serialize import format_timestamp

__all__ = ["Query", "QueryError", "parse_query", "encode_cursor", "SORTS", "WINDOWS"]

#: sort name -> the sessions column it orders by (descending), ties broken by session id
SORTS = {"recent": "s.last_at", "latency": "COALESCE(s.latency_avg, -1)", "tokens": "s.tokens"}
#: overview window -> (seconds, bucket: characters of the timestamp kept, minutes per bucket)
WINDOWS = {"1h": (3600, 16, 1), "24h": (86400, 13, 60), "7d": (7 * 86400, 13, 60)}
FILTERS = ("q", "model", "user_id", "status", "since", "until")
MAX_LIMIT = 200


class QueryError(ValueError):
    """A parameter the reader got wrong; ``param`` names it."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@attrs.frozen
class Query:
    q: Optional[str] = None
    model: Optional[str] = None
    user_id: Optional[str] = None
    status: Optional[str] = None
    since: Optional[str] = None
    until: Optional[str] = None
    session_id: Optional[str] = None
    sort: str = "recent"
    limit: int = 50
    cursor: Optional[tuple[Any, ...]] = None
    window: str = "1h"

    @property
    def filtered(self) -> bool:
        return any(getattr(self, name) for name in FILTERS)

    def record_where(self, alias: str = "c") -> tuple[str, list[Any]]:
        """SQL conditions (after ``org_id = ?``) matching records, with their parameters."""
        sql: list[str] = []
        args: list[Any] = []
        for column, value in (("llm_model", self.model), ("user_id", self.user_id), ("status", self.status),
                              ("session_id", self.session_id)):
            if value is not None:
                sql.append(f"{alias}.{column} = ?")
                args.append(value)
        if self.since is not None:
            sql.append(f"{alias}.timestamp >= ?")
            args.append(self.since)
        if self.until is not None:
            sql.append(f"{alias}.timestamp <= ?")
            args.append(self.until)
        if self.q:
            sql.append(f"{alias}.id IN (SELECT rowid FROM chat_fts WHERE chat_fts MATCH ?)")
            args.append(fts_phrase(self.q))
        return " AND ".join(sql), args

    def to_params(self, **changes: Any) -> dict[str, str]:
        """The query as URL parameters (for links to the next page or another sort)."""
        values = {**{name: getattr(self, name) for name in (*FILTERS, "session_id", "sort")}, **changes}
        return {k: str(v) for k, v in values.items() if v not in (None, "") and not (k == "sort" and v == "recent")}


def fts_phrase(text: str) -> str:
    """User text as an FTS5 query: every word a quoted phrase, all required (no FTS syntax).

    NUL ends a string in FTS5's query parser ("unterminated string"), so it separates words here.
    """
    words = [w.replace('"', '""') for w in text.replace("\x00", " ").split()]
    return " ".join(f'"{w}"' for w in words) or '""'


def _time(value: str, param: str) -> str:
    try:
        parsed = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"`{param}` must be a date and time such as 2026-11-29T10:00:00Z", param) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.timezone.utc)
    try:
        return format_timestamp(parsed.astimezone(_dt.timezone.utc))
    except OverflowError:  # 0001-01-01T00:00+02:00 is before the first representable UTC time
        raise QueryError(f"`{param}` is out of range in UTC (years 1 to 9999)", param) from None


def encode_cursor(values: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def _cursor(value: str) -> tuple[Any, ...]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        decoded = None
    if not isinstance(decoded, list) or not decoded:
        raise QueryError("`cursor` is not one this server gave; start again without it", "cursor")
    return tuple(decoded)


def parse_query(params: Mapping[str, str], allowed: tuple[str, ...]) -> Query:
    """Check ``params`` against the names ``allowed`` here; unknown names are refused together."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        names = ", ".join(f"`{n}`" for n in unknown)
        raise QueryError(f"unknown query parameter(s) {names}; this route takes: {', '.join(allowed)}", unknown[0])
    values: dict[str, Any] = {}
    for name in ("q", "model", "user_id", "session_id"):
        value = params.get(name, "").strip()
        if value:
            values[name] = value
    status = params.get("status", "")
    if status:
        if status not in ("ok", "error"):
            raise QueryError("`status` must be `ok` or `error`", "status")
        values["status"] = status
    for name in ("since", "until"):
        if params.get(name):
            values[name] = _time(params[name], name)
    sort = params.get("sort", "recent") or "recent"
    if sort not in SORTS:
        raise QueryError(f"`sort` must be one of {', '.join(SORTS)}", "sort")
    values["sort"] = sort
    limit = params.get("limit", "")
    if limit:
        if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= MAX_LIMIT:
            raise QueryError(f"`limit` must be a whole number from 1 to {MAX_LIMIT}", "limit")
        values["limit"] = int(limit)
    if params.get("cursor"):
        values["cursor"] = _cursor(params["cursor"])
    window = params.get("window", "1h") or "1h"
    if window not in WINDOWS:
        raise QueryError(f"`window` must be one of {', '.join(WINDOWS)}", "window")
    values["window"] = window
    return Query(**values)
