"""Counters of what happened to every record, safe to bump from any thread."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Mapping, Optional

import attrs

__all__ = ["Stats", "StatsSnapshot"]


@attrs.frozen
class StatsSnapshot:
    """A copy of the counters at one moment.

    ``sent`` records the endpoint stored; ``retried`` extra attempts; ``failed`` records a
    foreground call gave up on; ``rejected`` records refused as invalid (by the SDK or the
    endpoint); ``queued`` / ``spooled`` / ``replayed`` belong to background mode;
    ``redaction_failures`` records sent with their content replaced because redaction or
    ``before_send`` raised; ``dropped`` counts records given up on (or left out on purpose:
    ``sampled``, ``before_send``, ``disabled``), by reason.
    """

    queued: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    rejected: int = 0
    spooled: int = 0
    replayed: int = 0
    redaction_failures: int = 0
    dropped: Mapping[str, int] = attrs.Factory(dict)
    on_disk: int = 0  #: records waiting in the spool (background mode)
    on_disk_since: Optional[float] = None  #: epoch seconds when the oldest of them was spooled

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class Stats:
    """The live counters behind :meth:`HuggingPlace.stats`."""

    _names = ("queued", "sent", "retried", "failed", "rejected", "spooled", "replayed", "redaction_failures")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero every counter with a new lock (a forked child starts its own accounting)."""
        self._lock = threading.RLock()  # an RLock: a signal handler may snapshot mid-add
        self._counts: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        if name not in self._names:
            raise KeyError(name)
        with self._lock:
            self._counts[name] += n

    def drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self._dropped[reason] += n

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            counts = {name: self._counts[name] for name in self._names}
            return StatsSnapshot(**counts, dropped=dict(self._dropped))
