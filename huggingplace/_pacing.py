"""How many requests the worker keeps in flight on the single-record route (no I/O).

An endpoint far away answers each request slowly but can take many at once: with a fixed 8 in
flight and 50 ms per answer, delivery stops at 160 records/s whatever the app logs, and the rest
waits on disk. So the lanes adapt as TCP's window does. While records wait and nothing fails they
double, up to ``concurrency`` (the ceiling). A failure (the endpoint struggles, or is down)
halves them, and from there they open one at a time: an endpoint that just failed is not flooded
again at once. Once nothing waits they drift back to the start, and may double again.
"""

from __future__ import annotations

__all__ = ["Pacing", "START"]

START = 8  #: requests in flight to begin with, and the most an idle worker keeps


class Pacing:
    """The lanes' count: within ``1..ceiling``, starting at ``min(START, ceiling)``."""

    __slots__ = ("ceiling", "floor", "lanes", "threshold")

    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(1, ceiling)
        self.floor = min(START, self.ceiling)
        self.lanes = self.floor
        self.threshold = self.ceiling  # past it, lanes open one at a time (set by a failure)

    def after_round(self, *, failed: bool, waiting: int) -> int:
        """The lanes for the next round (or wave), given whether a request of this one failed (a
        timeout, a refused connection, a 5xx or a 429: not a record the endpoint refused) and
        how many records wait now."""
        if failed:
            self.lanes = max(1, self.lanes // 2)
            self.threshold = self.lanes
        elif waiting > self.lanes:
            grown = min(self.lanes * 2, self.threshold) if self.lanes < self.threshold else self.lanes + 1
            self.lanes = min(self.ceiling, grown)
        elif self.lanes > self.floor:
            self.lanes = max(self.floor, self.lanes // 2)
        elif self.lanes < self.floor:  # recovered from failures, and little waits: back to the start
            self.lanes = min(self.floor, self.lanes * 2)
        else:  # idle at the start: the next backlog may double again
            self.threshold = self.ceiling
        return self.lanes

    def restart(self) -> None:
        """The endpoint is back after an outage: the lanes it closed may double again."""
        self.threshold = self.ceiling
