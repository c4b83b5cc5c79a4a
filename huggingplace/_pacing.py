"""How many requests the worker keeps in flight on the single-record route (no I/O).

An endpoint far away answers each request slowly but can take many at once: with a fixed 8 in
flight and 50 ms per answer, delivery stops at 160 records/s whatever the app logs, and the rest
waits on disk. So the lanes adapt, as TCP's window does, but only while waiting is what limits
them:

- while records wait, nothing fails, and the worker spent at least half of the last wave waiting
  for answers, the lanes double, up to ``concurrency`` (the ceiling);
- each doubling is on trial: the wave after it opens the new connections, and unless the one
  after that delivers a quarter more than before, the wait was not the endpoint's (a host app
  that keeps the worker from running looks the same from inside), so the lanes go back and stay
  there for a while (``RETRY_WAVES``) or until the backlog is gone;
- once the worker is busy (three quarters of the wave or more), its CPU is the limit (a
  loopback endpoint): more lanes would deliver nothing more and hold the app's CPU or GIL
  longer, so they go back towards the start;
- a failure (the endpoint struggles, or is down) halves them, and from there they open one at a
  time, so an endpoint that just failed is not flooded again at once;
- once nothing waits they drift back to the start.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["Pacing", "START", "GROW_IDLE", "SHRINK_IDLE", "GAIN", "RETRY_WAVES"]

START = 8  #: requests in flight to begin with, and the most an idle worker keeps
GROW_IDLE = 0.5  #: the share of a wave the worker waited for answers, at least, to open lanes
SHRINK_IDLE = 0.25  #: ... below which it is busy: lanes close towards the start
GAIN = 1.25  #: what doubled lanes must deliver, as a ratio to the wave before, to be kept
RETRY_WAVES = 32  #: waves held below a failed trial's lanes before another doubling is tried


class Pacing:
    """The lanes' count: within ``1..ceiling``, starting at ``min(START, ceiling)``."""

    __slots__ = ("ceiling", "floor", "lanes", "threshold", "cap", "_trial", "_held")

    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(1, ceiling)
        self.floor = min(START, self.ceiling)
        self.lanes = self.floor
        self.threshold = self.ceiling  # past it, lanes open one at a time (set by a failure)
        self.cap = self.ceiling  # past it, more lanes did not deliver more (set by a trial)
        self._trial: Optional[list[Any]] = None  # [lanes before a doubling, their rate, waves to skip]
        self._held = 0  # waves since a trial set the cap

    def failed(self) -> int:
        """A request failed (a timeout, a refused connection, a 5xx or a 429: not a record the
        endpoint refused): half the lanes, and from there they open one at a time."""
        self.lanes = max(1, self.lanes // 2)
        self.threshold = self.lanes
        self._trial = None
        return self.lanes

    def after_wave(self, *, waiting: int, idle: Optional[float] = None, rate: float = 0.0) -> int:
        """The lanes after a wave of answers (as many as lanes) in which nothing failed, given
        how many records wait now, the share of the wave the worker spent waiting for answers
        (None: not measured) and the wave's records per second (0: not measured)."""
        busy = idle is not None and idle < GROW_IDLE
        if self.cap < self.ceiling:
            self._held += 1
            if self._held >= RETRY_WAVES:
                self.cap = self.ceiling  # what the endpoint and the host allow may have changed
        trial = self._trial
        if trial is not None:
            if trial[2] > 0:
                trial[2] -= 1  # the doubled lanes' first wave opens connections: not yet judged
                return self.lanes
            self._trial = None
            if 0.0 < rate < trial[1] * GAIN:
                self.lanes = self.cap = trial[0]  # the doubled lanes did not pay: back, and no further
                self._held = 0
                return self.lanes
        if busy and self.lanes > self.floor:
            if idle is not None and idle < SHRINK_IDLE:
                self.lanes = max(self.floor, self.lanes // 2)
        elif waiting > self.lanes and not busy:
            if self.lanes < self.cap:
                doubling = self.lanes < self.threshold  # else one more at a time, after a failure
                grown = min(self.lanes * 2, self.threshold) if doubling else self.lanes + 1
                if doubling and rate > 0.0:
                    self._trial = [self.lanes, rate, 1]
                self.lanes = min(self.cap, grown)
        elif waiting <= self.lanes:
            self.drift()
        return self.lanes  # else: busy at the start, where more lanes would deliver nothing more

    def drift(self) -> int:
        """Little waits: back towards the start, from either side; at the start, the next
        backlog may double again."""
        self._trial = None
        if self.lanes > self.floor:
            self.lanes = max(self.floor, self.lanes // 2)
        elif self.lanes < self.floor:
            self.lanes = min(self.floor, self.lanes * 2)
        else:
            self.threshold = self.cap = self.ceiling
        return self.lanes

    def restart(self) -> None:
        """The endpoint is back after an outage: the lanes it closed may double again."""
        self.threshold = self.cap = self.ceiling
        self._trial = None
