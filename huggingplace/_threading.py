"""Conversation threading for wrapped clients: one ``session_id`` across the turns of a
conversation, with no id passed and no state shared between processes.

The rule: a conversation is named by its org, its user and its opening exchange: the system
prompt, the first user message **and the first assistant answer**. On turn one the answer is the response being
logged; on every later turn it is the first assistant message the request carries. So every
turn, in any process, computes the same id, while two conversations that both open with "Hi"
get different ids because their first answers differ (Moda hashes only the system prompt and
the first user message, so those collide), and two users never share one: a greeting bot at
temperature 0 answers every user's "Hi" alike, so the user id is part of the name. Conversations
of one user (or of calls that name no user) whose opening exchange is identical word for word
share an id: pass ``session_id`` or use ``hp.context(session_id=...)`` to separate them. An
explicit session or context always wins.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any, Optional, Sequence

__all__ = ["conversation_id", "ResponseChains"]


def conversation_id(
    system: str, messages: Sequence[dict[str, Any]], answer: str, *, user: Optional[str] = None, org: str = ""
) -> Optional[str]:
    first_user = next((str(m.get("content") or "") for m in messages if m.get("role") == "user"), None)
    if first_user is None:
        return None
    first_answer = next((str(m.get("content") or "") for m in messages if m.get("role") == "assistant"), answer)
    opening = json.dumps([system, first_user, first_answer], ensure_ascii=False)
    if user is not None or org:
        opening = json.dumps([org, user, opening], ensure_ascii=False)
    return "conv_" + hashlib.sha256(opening.encode("utf-8")).hexdigest()[:24]


class ResponseChains:
    """The Responses API chains turns by ``previous_response_id``: remember which conversation
    each response id belongs to (bounded, most recent kept)."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._ids: OrderedDict[str, str] = OrderedDict()

    def lookup(self, previous: str) -> str:
        found = self._ids.get(previous)
        return found or "conv_" + hashlib.sha256(previous.encode("utf-8")).hexdigest()[:24]

    def remember(self, response_id: Optional[str], thread: Optional[str]) -> None:
        if response_id and thread:
            self._ids[response_id] = thread
            self._ids.move_to_end(response_id)
            while len(self._ids) > self._size:
                self._ids.popitem(last=False)
