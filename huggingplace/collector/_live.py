"""New records as they are stored, to whoever follows them: the viewer's pages and
``huggingplace tail`` read the same server-sent event stream.

The hub lives on the collector's event loop. Publishing costs nothing without followers; with
them, each record is encoded once, and each follower gets one write per stored batch. A follower
that reads too slowly loses events (counted, and told so in the stream), never slowing ingestion.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Optional

import attrs

__all__ = ["Hub", "Follower", "sse", "summary"]

QUEUE = 1000  # batches a follower may fall behind by before it loses some


@attrs.define(eq=False)
class Follower:
    org_id: str
    session_id: Optional[str] = None
    errors_only: bool = False
    queue: asyncio.Queue[tuple[int, bytes]] = attrs.field(factory=lambda: asyncio.Queue(QUEUE))
    lost: int = 0

    def wants(self, org_id: str, record: Mapping[str, Any]) -> bool:
        if org_id != self.org_id:
            return False
        if self.session_id is not None and record.get("session_id") != self.session_id:
            return False
        return not self.errors_only or record.get("status") == "error"

    def end(self) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait((0, b""))


class Hub:
    def __init__(self) -> None:
        self.followers: set[Follower] = set()

    def __bool__(self) -> bool:
        return bool(self.followers)

    def publish(self, org_id: str, records: list[dict[str, Any]]) -> None:
        """Records just stored for ``org_id`` (as :func:`summary` gives them); called on the loop."""
        if not self.followers or not records:
            return
        encoded = [(r, sse("record", {"record": r})) for r in records]
        for follower in self.followers:
            mine = [data for record, data in encoded if follower.wants(org_id, record)]
            if not mine:
                continue
            try:
                follower.queue.put_nowait((len(mine), b"".join(mine)))
            except asyncio.QueueFull:
                follower.lost += len(mine)


def summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the stream says of a stored record (the same keys as the records list)."""
    usage = record.get("token_usage") or {}
    return {
        "event_id": record["event_id"], "session_id": record.get("session_id"), "user_id": record.get("user_id"),
        "llm_model": record.get("llm_model"), "status": record.get("status"), "timestamp": record["timestamp"],
        "user_prompt": record["user_prompt"][:240], "ai_response": record["ai_response"][:240],
        "tokens": usage.get("total_tokens", record.get("token_count")), "response_time": record.get("response_time"),
    }


def sse(event: str, data: Any) -> bytes:
    """One server-sent event; the data is one JSON line."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()
