"""The collector's SQLite storage: the backend's ``chat`` and ``prompt_details`` tables, plus
``steps`` (nested steps keep their parent) and hashed API keys.

Every statement uses bound parameters. Writes are idempotent on ``(org_id, event_id)``.
One ``Store`` belongs to one thread; the server runs it on a single worker thread.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from .._models import utcnow
from .._serialize import format_timestamp
from ._query import SORTS, WINDOWS, Query, encode_cursor

__all__ = ["Store", "hash_key"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash   TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    label      TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chat (
    id             INTEGER PRIMARY KEY,
    event_id       TEXT NOT NULL,
    org_id         TEXT NOT NULL,
    mode           TEXT NOT NULL,
    session_id     TEXT,
    user_id        TEXT,
    user_uuid      TEXT,
    org_uuid       TEXT,
    user_roles     TEXT,
    user_prompt    TEXT NOT NULL,
    ai_response    TEXT NOT NULL,
    llm_model      TEXT,
    llm_model2     TEXT,
    file_name      TEXT,
    message_id     TEXT,
    mapping_table  TEXT,
    user_meta_data TEXT,
    status         TEXT NOT NULL,
    error          TEXT,
    timestamp      TEXT NOT NULL,
    received_at    TEXT NOT NULL,
    sdk            TEXT,
    extras         TEXT,
    UNIQUE (org_id, event_id)
);
CREATE INDEX IF NOT EXISTS chat_session ON chat (org_id, session_id, timestamp);
CREATE TABLE IF NOT EXISTS prompt_details (
    chat_id           INTEGER PRIMARY KEY REFERENCES chat (id) ON DELETE CASCADE,
    token_count       INTEGER,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    total_tokens      INTEGER,
    response_time     REAL,
    metadata          TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    id         INTEGER PRIMARY KEY,
    chat_id    INTEGER NOT NULL REFERENCES chat (id) ON DELETE CASCADE,
    parent_id  INTEGER REFERENCES steps (id),
    position   INTEGER NOT NULL,
    step_name  TEXT,
    type       TEXT,
    status     TEXT,
    time_ms    REAL,
    started_at TEXT,
    ended_at   TEXT,
    error      TEXT,
    data       TEXT
);
CREATE INDEX IF NOT EXISTS steps_chat ON steps (chat_id, parent_id, position);
CREATE INDEX IF NOT EXISTS chat_time ON chat (org_id, timestamp);
CREATE INDEX IF NOT EXISTS chat_model ON chat (org_id, llm_model);
CREATE INDEX IF NOT EXISTS chat_user ON chat (org_id, user_id);
CREATE TABLE IF NOT EXISTS sessions (
    org_id      TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    user_id     TEXT,
    first_at    TEXT NOT NULL,
    last_at     TEXT NOT NULL,
    records     INTEGER NOT NULL,
    errors      INTEGER NOT NULL,
    tokens      INTEGER NOT NULL,
    latency_sum REAL NOT NULL,
    latency_n   INTEGER NOT NULL,
    latency_avg REAL,
    PRIMARY KEY (org_id, session_id)
);
CREATE INDEX IF NOT EXISTS sessions_last ON sessions (org_id, last_at);
CREATE INDEX IF NOT EXISTS sessions_tokens ON sessions (org_id, tokens);
CREATE INDEX IF NOT EXISTS sessions_latency ON sessions (org_id, latency_avg);
CREATE TABLE IF NOT EXISTS rollup (
    org_id  TEXT NOT NULL,
    width   INTEGER NOT NULL,
    at      TEXT NOT NULL,
    model   TEXT NOT NULL,
    records INTEGER NOT NULL,
    errors  INTEGER NOT NULL,
    tokens  INTEGER NOT NULL,
    PRIMARY KEY (org_id, width, at, model)
);
CREATE TABLE IF NOT EXISTS rollup_latency (
    org_id TEXT NOT NULL,
    width  INTEGER NOT NULL,
    at     TEXT NOT NULL,
    bin    INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (org_id, width, at, bin)
);
CREATE VIRTUAL TABLE IF NOT EXISTS chat_fts USING fts5(
    user_prompt, ai_response, content='chat', content_rowid='id'
);
"""

# the sessions list's summary row, kept as records arrive (the list never aggregates 100k rows)
_SESSION_UPSERT = """
INSERT INTO sessions (org_id, session_id, user_id, first_at, last_at, records, errors, tokens, latency_sum,
                      latency_n, latency_avg)
VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)
ON CONFLICT (org_id, session_id) DO UPDATE SET
    user_id = COALESCE(excluded.user_id, user_id),
    first_at = MIN(first_at, excluded.first_at),
    last_at = MAX(last_at, excluded.last_at),
    records = records + 1,
    errors = errors + excluded.errors,
    tokens = tokens + excluded.tokens,
    latency_sum = latency_sum + excluded.latency_sum,
    latency_n = latency_n + excluded.latency_n,
    latency_avg = CASE WHEN latency_n + excluded.latency_n > 0
                  THEN (latency_sum + excluded.latency_sum) / (latency_n + excluded.latency_n) END
"""
_BACKFILL = """
INSERT OR REPLACE INTO sessions (org_id, session_id, user_id, first_at, last_at, records, errors, tokens, latency_sum,
                                 latency_n, latency_avg)
SELECT c.org_id, c.session_id, MAX(c.user_id), MIN(c.timestamp), MAX(c.timestamp), COUNT(*), SUM(c.status = 'error'),
       COALESCE(SUM(COALESCE(p.total_tokens, p.token_count)), 0), COALESCE(SUM(p.response_time), 0),
       COUNT(p.response_time), AVG(p.response_time)
FROM chat c LEFT JOIN prompt_details p ON p.chat_id = c.id
WHERE c.session_id IS NOT NULL GROUP BY c.org_id, c.session_id
"""
# the overview's counts, kept per minute (a timestamp's first 16 characters) and per hour (13), so
# a 7-day window reads a few hundred rows, never 100k records; latencies as a log histogram
ROLLUP_WIDTHS = (16, 13)
_ROLLUP_UPSERT = (
    "INSERT INTO rollup (org_id, width, at, model, records, errors, tokens) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (org_id, width, at, model) DO UPDATE SET records = records + excluded.records, "
    "errors = errors + excluded.errors, tokens = tokens + excluded.tokens"
)
_LATENCY_UPSERT = (
    "INSERT INTO rollup_latency (org_id, width, at, bin, n) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (org_id, width, at, bin) DO UPDATE SET n = n + excluded.n"
)
_BIN = math.log(1.05)  # a bin spans 5%: a percentile read from it is within 2.5% of the true value


def latency_bin(ms: float) -> int:
    return int(math.log1p(max(ms, 0.0)) / _BIN)


def bin_value(b: int) -> float:
    """The middle of a latency bin, in milliseconds."""
    return math.expm1((b + 0.5) * _BIN)


def _percentile(histogram: Mapping[int, int], p: float) -> Optional[float]:
    total = sum(histogram.values())
    if not total:
        return None
    rank = min(total - 1, int(p * total))
    seen = 0
    for b in sorted(histogram):
        seen += histogram[b]
        if seen > rank:
            return round(bin_value(b), 3)
    return None  # pragma: no cover


_SUMMARY = (
    "SELECT c.id, c.event_id, c.session_id, c.user_id, c.llm_model, c.status, c.timestamp, "
    "substr(c.user_prompt, 1, 240) AS user_prompt, substr(c.ai_response, 1, 240) AS ai_response, "
    "COALESCE(p.total_tokens, p.token_count) AS tokens, p.response_time "
    "FROM chat c LEFT JOIN prompt_details p ON p.chat_id = c.id"
)
_SESSION_COLUMNS = ("session_id", "user_id", "first_at", "last_at", "records", "errors", "tokens", "latency_avg")

_CHAT_COLUMNS = (
    "event_id", "org_id", "mode", "session_id", "user_id", "user_uuid", "org_uuid", "user_roles",
    "user_prompt", "ai_response", "llm_model", "llm_model2", "file_name", "message_id", "mapping_table",
    "user_meta_data", "status", "error", "timestamp", "received_at", "sdk", "extras",
)
_JSON_CHAT = {"user_roles", "mapping_table", "user_meta_data", "error", "sdk", "extras"}
_STEP_COLUMNS = ("step_name", "type", "status", "time_ms", "started_at", "ended_at", "error")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


DEV_LABEL = "dev key created by huggingplace serve"


def _now() -> str:
    return format_timestamp(utcnow())


def _parse_time(text: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _dump(value: Any) -> Optional[str]:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _load(value: Optional[str]) -> Any:
    return None if value is None else json.loads(value)


class Store:
    """One SQLite connection in WAL mode with the collector's schema."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=30000")
        had_chat, had_sessions, had_rollup = (
            self._db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0] > 0
            for name in ("chat", "sessions", "rollup")
        )
        self._db.executescript(SCHEMA)
        if had_chat and not had_sessions:  # a database from before the viewer: index what it holds
            with _transaction(self._db):
                self._db.execute(_BACKFILL)
                self._db.execute("INSERT INTO chat_fts (chat_fts) VALUES ('rebuild')")
        if had_chat and not had_rollup:
            with _transaction(self._db):
                rows = self._db.execute(
                    "SELECT c.org_id, c.timestamp, c.llm_model, c.status, p.token_count, p.total_tokens, "
                    "p.response_time FROM chat c LEFT JOIN prompt_details p ON p.chat_id = c.id")
                for row in rows.fetchall():
                    self._roll(row["org_id"], row["timestamp"], row["llm_model"], row["status"] == "error",
                               row["total_tokens"] if row["total_tokens"] is not None else row["token_count"],
                               row["response_time"])

    def close(self) -> None:
        self._db.close()

    # ---- keys -----------------------------------------------------------------------------
    def add_key(self, key: str, org_id: str, label: str = "") -> None:
        self._db.execute(
            "INSERT INTO api_keys (key_hash, org_id, label, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key_hash) DO UPDATE SET org_id = excluded.org_id",
            (hash_key(key), org_id, label, _now()),
        )

    def org_for_hash(self, key_hash: str) -> Optional[str]:
        """The org of a key by its hash (a viewer login checks that its key still exists)."""
        row = self._db.execute("SELECT org_id FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
        return None if row is None else str(row["org_id"])

    def org_for_key(self, key: str) -> Optional[str]:
        row = self._db.execute("SELECT org_id FROM api_keys WHERE key_hash = ?", (hash_key(key),)).fetchone()
        return None if row is None else str(row["org_id"])

    def key_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0])

    def create_dev_key(self, org_id: str = "local") -> str:
        return self.create_key(org_id, label=DEV_LABEL, prefix="hp_dev_")

    def create_key(self, org_id: str, *, label: str = "", prefix: str = "hp_") -> str:
        """A new random key for ``org_id``; only its hash is stored, so show it now or never."""
        key = prefix + secrets.token_hex(16)
        self.add_key(key, org_id, label=label)
        return key

    def keys(self) -> list[dict[str, Any]]:
        """Every key as ``id`` (the first 12 hex of its hash, never the key), org, label, created."""
        rows = self._db.execute("SELECT key_hash, org_id, label, created_at FROM api_keys ORDER BY created_at")
        return [{"id": r["key_hash"][:12], "org_id": r["org_id"], "label": r["label"] or "",
                 "created_at": r["created_at"]} for r in rows]

    def revoke_key(self, key_id: str) -> int:
        """Delete the keys whose hash starts with ``key_id`` (at least 6 hex); how many went."""
        if len(key_id) < 6 or any(ch not in "0123456789abcdef" for ch in key_id):
            return 0
        return int(self._db.execute("DELETE FROM api_keys WHERE key_hash LIKE ?", (key_id + "%",)).rowcount)

    # ---- writes ---------------------------------------------------------------------------
    def insert(self, record: Mapping[str, Any]) -> bool:
        """Store one validated record; ``False`` when its ``(org_id, event_id)`` is already stored."""
        with _transaction(self._db):
            return self._insert(record)

    def insert_many(self, records: Iterable[Mapping[str, Any]]) -> list[bool]:
        with _transaction(self._db):
            return [self._insert(r) for r in records]

    def _insert(self, record: Mapping[str, Any]) -> bool:
        values = [
            _dump(record.get(c)) if c in _JSON_CHAT else record.get(c)
            for c in _CHAT_COLUMNS
        ]
        values[_CHAT_COLUMNS.index("received_at")] = _now()
        cursor = self._db.execute(
            f"INSERT INTO chat ({', '.join(_CHAT_COLUMNS)}) VALUES ({', '.join('?' * len(_CHAT_COLUMNS))}) "
            "ON CONFLICT (org_id, event_id) DO NOTHING",
            values,
        )
        if cursor.rowcount == 0:
            return False
        chat_id = cursor.lastrowid
        usage = record.get("token_usage") or {}
        self._db.execute(
            "INSERT INTO prompt_details (chat_id, token_count, prompt_tokens, completion_tokens, total_tokens, "
            "response_time, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                chat_id,
                record.get("token_count"),
                usage.get("prompt_tokens"),
                usage.get("completion_tokens"),
                usage.get("total_tokens"),
                record.get("response_time"),
                _dump(record.get("metaData")),
            ),
        )
        self._insert_steps(chat_id, None, record.get("step_data") or [])
        self._db.execute("INSERT INTO chat_fts (rowid, user_prompt, ai_response) VALUES (?, ?, ?)",
                         (chat_id, record["user_prompt"], record["ai_response"]))
        self._roll(record["org_id"], record["timestamp"], record.get("llm_model"), record.get("status") == "error",
                   usage.get("total_tokens", record.get("token_count")), record.get("response_time"))
        session_id = record.get("session_id")
        if session_id:
            latency = record.get("response_time")
            tokens = usage.get("total_tokens", record.get("token_count")) or 0
            self._db.execute(_SESSION_UPSERT, (
                record["org_id"], session_id, record.get("user_id"), record["timestamp"], record["timestamp"],
                int(record.get("status") == "error"), tokens, latency or 0.0, int(latency is not None), latency,
            ))
        return True

    def _roll(self, org: str, timestamp: str, model: Optional[str], error: bool, tokens: Optional[int],
              latency: Optional[float]) -> None:
        for width in ROLLUP_WIDTHS:
            at = timestamp[:width]
            self._db.execute(_ROLLUP_UPSERT, (org, width, at, model or "(none)", 1, int(error), tokens or 0))
            if latency is not None:
                self._db.execute(_LATENCY_UPSERT, (org, width, at, latency_bin(latency), 1))

    def _insert_steps(self, chat_id: Any, parent: Optional[int], steps: list[Any]) -> None:
        for position, step in enumerate(steps):
            data = {k: v for k, v in step.items() if k not in _STEP_COLUMNS and k != "steps"}
            cursor = self._db.execute(
                "INSERT INTO steps (chat_id, parent_id, position, step_name, type, status, time_ms, started_at, "
                "ended_at, error, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    chat_id,
                    parent,
                    position,
                    *(step.get(c) if c != "error" else _dump(step.get(c)) for c in _STEP_COLUMNS),
                    _dump(data) if data else None,
                ),
            )
            children = step.get("steps")
            if isinstance(children, list) and children:
                self._insert_steps(chat_id, cursor.lastrowid, children)

    # ---- reads ----------------------------------------------------------------------------
    def sessions(self, org_id: str, *, limit: int, offset: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT session_id, COUNT(*) AS records, MIN(timestamp) AS first_at, MAX(timestamp) AS last_at, "
            "SUM(status = 'error') AS errors "
            "FROM chat WHERE org_id = ? AND session_id IS NOT NULL "
            "GROUP BY session_id ORDER BY last_at DESC, session_id LIMIT ? OFFSET ?",
            (org_id, limit, offset),
        ).fetchall()
        return [dict(r) for r in rows]

    def sessions_page(self, org_id: str, query: Query) -> tuple[list[dict[str, Any]], Optional[str]]:
        """One page of the sessions list: filters match sessions that hold a matching record;
        ``median_latency`` is computed for the page's rows only. Returns (rows, next cursor)."""
        order = SORTS[query.sort]
        sql = f"SELECT {', '.join('s.' + c for c in _SESSION_COLUMNS)}, {order} AS sort_key, s.latency_n " \
              "FROM sessions s WHERE s.org_id = ?"
        args: list[Any] = [org_id]
        where, more = query.record_where()
        if where:
            sql += f" AND s.session_id IN (SELECT c.session_id FROM chat c WHERE c.org_id = ? AND {where})"
            args += [org_id, *more]
        if query.cursor is not None and len(query.cursor) == 2:
            sql += f" AND ({order} < ? OR ({order} = ? AND s.session_id < ?))"
            args += [query.cursor[0], query.cursor[0], query.cursor[1]]
        sql += f" ORDER BY {order} DESC, s.session_id DESC LIMIT ?"
        rows = self._db.execute(sql, (*args, query.limit + 1)).fetchall()
        page = [self._session_row(org_id, r) for r in rows[: query.limit]]
        more_rows = len(rows) > query.limit
        last = rows[query.limit - 1] if more_rows else None
        return page, encode_cursor((last["sort_key"], last["session_id"])) if last is not None else None

    def _session_row(self, org_id: str, row: sqlite3.Row) -> dict[str, Any]:
        out = {c: row[c] for c in _SESSION_COLUMNS}
        n = row["latency_n"]
        median = None
        if n:
            found = self._db.execute(
                "SELECT p.response_time FROM chat c JOIN prompt_details p ON p.chat_id = c.id "
                "WHERE c.org_id = ? AND c.session_id = ? AND p.response_time IS NOT NULL "
                "ORDER BY p.response_time LIMIT 1 OFFSET ?", (org_id, row["session_id"], (n - 1) // 2)).fetchone()
            median = found[0] if found else None
        out["median_latency"] = median
        return out

    def session_summary(self, org_id: str, session_id: str) -> Optional[dict[str, Any]]:
        row = self._db.execute(
            f"SELECT {', '.join('s.' + c for c in _SESSION_COLUMNS)}, s.last_at AS sort_key, s.latency_n "
            "FROM sessions s WHERE s.org_id = ? AND s.session_id = ?", (org_id, session_id)).fetchone()
        return None if row is None else self._session_row(org_id, row)

    def records_page(self, org_id: str, query: Query) -> tuple[list[dict[str, Any]], Optional[str]]:
        """One page of every record (with or without a session), newest first, as summaries."""
        sql = _SUMMARY + " WHERE c.org_id = ?"
        args: list[Any] = [org_id]
        where, more = query.record_where()
        if where:
            sql += " AND " + where
            args += more
        if query.cursor is not None and len(query.cursor) == 2:
            sql += " AND (c.timestamp < ? OR (c.timestamp = ? AND c.id < ?))"
            args += [query.cursor[0], query.cursor[0], query.cursor[1]]
        sql += " ORDER BY c.timestamp DESC, c.id DESC LIMIT ?"
        rows = self._db.execute(sql, (*args, query.limit + 1)).fetchall()
        page = [{k: r[k] for k in r.keys() if k != "id"} for r in rows[: query.limit]]  # noqa: SIM118
        last = rows[query.limit - 1] if len(rows) > query.limit else None
        return page, encode_cursor((last["timestamp"], last["id"])) if last is not None else None

    def record_summary(self, org_id: str, event_id: str) -> Optional[dict[str, Any]]:
        row = self._db.execute(_SUMMARY + " WHERE c.org_id = ? AND c.event_id = ?", (org_id, event_id)).fetchone()
        return None if row is None else {k: row[k] for k in row.keys() if k != "id"}  # noqa: SIM118

    def overview(self, org_id: str, window: str, now: str) -> dict[str, Any]:
        """Records per minute, error rate, latency p50/p95 (from 5% histogram bins) and tokens per
        model since ``now`` less the window, by minute (1h) or hour (24h, 7d), from the rollups."""
        seconds, width, minutes = WINDOWS[window]
        since = format_timestamp(_parse_time(now) - _dt.timedelta(seconds=seconds))
        span = (org_id, width, since[:width], now[:width])
        where = "WHERE org_id = ? AND width = ? AND at >= ? AND at <= ?"
        buckets = self._db.execute(
            f"SELECT at, SUM(records) AS records, SUM(errors) AS errors FROM rollup {where} GROUP BY at ORDER BY at",
            span).fetchall()
        models = self._db.execute(
            f"SELECT model, SUM(records) AS records, SUM(tokens) AS tokens FROM rollup {where} GROUP BY model "
            "ORDER BY tokens DESC, model", span).fetchall()
        by_bucket: dict[str, dict[int, int]] = {}
        overall: dict[int, int] = {}
        for at, b, n in self._db.execute(f"SELECT at, bin, n FROM rollup_latency {where}", span):
            by_bucket.setdefault(at, {})[b] = by_bucket.get(at, {}).get(b, 0) + n
            overall[b] = overall.get(b, 0) + n
        total = sum(b["records"] for b in buckets)
        errors = sum(b["errors"] for b in buckets)
        return {
            "window": window, "since": since, "until": now, "bucket_minutes": minutes, "records": total,
            "errors": errors, "error_rate": errors / total if total else 0.0,
            "latency_p50": _percentile(overall, 0.5), "latency_p95": _percentile(overall, 0.95),
            "buckets": [{"at": b["at"], "records": b["records"], "errors": b["errors"],
                         "per_minute": b["records"] / minutes,
                         "latency_p50": _percentile(by_bucket.get(b["at"], {}), 0.5),
                         "latency_p95": _percentile(by_bucket.get(b["at"], {}), 0.95)} for b in buckets],
            "models": [dict(m) for m in models],
        }

    def session_records(self, org_id: str, session_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM chat LEFT JOIN prompt_details ON prompt_details.chat_id = chat.id "
            "WHERE org_id = ? AND session_id = ? ORDER BY timestamp, chat.id",
            (org_id, session_id),
        ).fetchall()
        return [self._record(r) for r in rows]

    def record(self, org_id: str, event_id: str) -> Optional[dict[str, Any]]:
        row = self._db.execute(
            "SELECT * FROM chat LEFT JOIN prompt_details ON prompt_details.chat_id = chat.id "
            "WHERE org_id = ? AND event_id = ?",
            (org_id, event_id),
        ).fetchone()
        return None if row is None else self._record(row)

    def count(self, org_id: Optional[str] = None) -> int:
        if org_id is None:
            return int(self._db.execute("SELECT COUNT(*) FROM chat").fetchone()[0])
        return int(self._db.execute("SELECT COUNT(*) FROM chat WHERE org_id = ?", (org_id,)).fetchone()[0])

    def _record(self, row: sqlite3.Row) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for column in row.keys():  # noqa: SIM118 (sqlite3.Row iterates values)
            if column in ("id", "chat_id"):
                continue
            value = row[column]
            out[column] = _load(value) if column in _JSON_CHAT or column == "metadata" else value
        out["metaData"] = out.pop("metadata", None)
        usage = {k: out.pop(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        out["token_usage"] = usage if usage["total_tokens"] is not None else None
        out["step_data"] = self._steps(row["id"])
        return out

    def _steps(self, chat_id: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM steps WHERE chat_id = ? ORDER BY parent_id IS NOT NULL, parent_id, position", (chat_id,)
        ).fetchall()
        nodes: dict[int, dict[str, Any]] = {}
        roots: list[dict[str, Any]] = []
        for r in rows:
            node: dict[str, Any] = {c: r[c] for c in _STEP_COLUMNS if r[c] is not None}
            if "error" in node:
                node["error"] = _load(node["error"])
            node.update(_load(r["data"]) or {})
            node["steps"] = []
            nodes[r["id"]] = node
            (nodes[r["parent_id"]]["steps"] if r["parent_id"] is not None else roots).append(node)
        return roots


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on error (the connection is in autocommit)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
