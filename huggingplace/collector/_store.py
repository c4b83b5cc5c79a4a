"""The collector's SQLite storage: the backend's ``chat`` and ``prompt_details`` tables, plus
``steps`` (nested steps keep their parent) and hashed API keys.

Every statement uses bound parameters. Writes are idempotent on ``(org_id, event_id)``.
One ``Store`` belongs to one thread; the server runs it on a single worker thread.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from .._models import utcnow
from .._serialize import format_timestamp

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
"""

_CHAT_COLUMNS = (
    "event_id", "org_id", "mode", "session_id", "user_id", "user_uuid", "org_uuid", "user_roles",
    "user_prompt", "ai_response", "llm_model", "llm_model2", "file_name", "message_id", "mapping_table",
    "user_meta_data", "status", "error", "timestamp", "received_at", "sdk", "extras",
)
_JSON_CHAT = {"user_roles", "mapping_table", "user_meta_data", "error", "sdk", "extras"}
_STEP_COLUMNS = ("step_name", "type", "status", "time_ms", "started_at", "ended_at", "error")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _now() -> str:
    return format_timestamp(utcnow())


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
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # ---- keys -----------------------------------------------------------------------------
    def add_key(self, key: str, org_id: str, label: str = "") -> None:
        self._db.execute(
            "INSERT INTO api_keys (key_hash, org_id, label, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key_hash) DO UPDATE SET org_id = excluded.org_id",
            (hash_key(key), org_id, label, _now()),
        )

    def org_for_key(self, key: str) -> Optional[str]:
        row = self._db.execute("SELECT org_id FROM api_keys WHERE key_hash = ?", (hash_key(key),)).fetchone()
        return None if row is None else str(row["org_id"])

    def key_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0])

    def create_dev_key(self, org_id: str = "local") -> str:
        key = "hp_dev_" + secrets.token_hex(16)
        self.add_key(key, org_id, label="dev key created by huggingplace serve")
        return key

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
        return True

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
