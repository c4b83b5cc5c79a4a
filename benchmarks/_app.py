"""The app bench_app.py serves: one route, a session with two timed steps logged per request
when HP_LOG=1 (HUGGINGPLACE_SENDER says from where it is delivered), nothing logged when HP_LOG=0.

HP_LOG=floor logs through :class:`Floor` instead: the least any in-process logger can do with the
same calls (tuples appended to a bounded deque; nothing validated, encoded or delivered). Its
ratio to the app without logging is the bound the SDK is measured against on this machine."""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Any

from fastapi import FastAPI

from huggingplace import HuggingPlace


class _FloorStep:
    __slots__ = ("session", "name", "type", "start")

    def __init__(self, session: _FloorSession, name: str, type: str | None) -> None:
        self.session, self.name, self.type = session, name, type

    def __enter__(self) -> _FloorStep:
        self.start = time.perf_counter_ns()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.session.steps.append((self.name, self.type, self.start, time.perf_counter_ns()))


class _FloorSession:
    __slots__ = ("floor", "session_id", "steps")

    def __init__(self, floor: Floor, session_id: str) -> None:
        self.floor, self.session_id, self.steps = floor, session_id, []

    def __enter__(self) -> _FloorSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def step(self, name: str, type: str | None = None) -> _FloorStep:
        return _FloorStep(self, name, type)

    def log(self, **fields: Any) -> None:
        self.floor.records.append((self.session_id, fields, self.steps, time.time()))
        self.steps = []


class Floor:
    """``start_session`` / ``step`` / ``log`` at their cheapest: the records stay in memory."""

    def __init__(self) -> None:
        self.records: deque[tuple[Any, ...]] = deque(maxlen=10_000)

    def start_session(self, session_id: str) -> _FloorSession:
        return _FloorSession(self, session_id)


LOG = os.environ.get("HP_LOG", "0")
hp: Any = HuggingPlace(background=True) if LOG == "1" else Floor() if LOG == "floor" else None
app = FastAPI()


@app.get("/ask")
async def ask(q: str) -> dict[str, str]:
    answer = f"Refunds take 14 days ({q})"
    if hp is not None:
        with hp.start_session(f"bench-{q}") as session:
            with session.step("retrieve", type="retrieval"):
                pass
            with session.step("generate", type="llm"):
                pass
            session.log(user_prompt=q, response=answer, llm_model="gpt-4o", token_count=42)
    return {"answer": answer}
