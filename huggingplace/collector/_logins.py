"""The viewer's logins: a cookie token stands for an org for a while, and no longer than the key
it was made with. One-time links that ``serve`` prints expire too.

Held in memory (a restart logs everyone out), bounded, with the clock injectable for tests.
"""

from __future__ import annotations

import secrets
import time
from typing import Callable, Optional

import attrs

__all__ = ["Login", "Logins", "IDLE", "LIFETIME", "LINK_LIFETIME"]

IDLE = 12 * 3600.0  # a login unused this long ends
LIFETIME = 7 * 86400.0  # and any login ends this long after it was made
LINK_LIFETIME = 3600.0  # a one-time link not opened within this is refused
MAX_LOGINS = 10_000  # past this many, the least recently used ends


@attrs.define
class Login:
    org: str
    key_hash: Optional[str]  # the key it was made with (None: a one-time link)
    created: float
    seen: float


class Logins:
    """Cookie tokens and one-time link tokens, each mapped to its org, expiring."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._logins: dict[str, Login] = {}
        self._links: dict[str, tuple[str, float]] = {}  # token -> (org, made at)

    def __len__(self) -> int:
        return len(self._logins)

    def create(self, org: str, key_hash: Optional[str]) -> str:
        now = self._clock()
        if len(self._logins) >= MAX_LOGINS:
            oldest = min(self._logins, key=lambda t: self._logins[t].seen)
            del self._logins[oldest]
        token = secrets.token_urlsafe(32)
        self._logins[token] = Login(org, key_hash, now, now)
        return token

    def get(self, token: str) -> Optional[Login]:
        """The live login of ``token`` (its use noted), or None when unknown or expired."""
        login = self._logins.get(token)
        if login is None:
            return None
        now = self._clock()
        if now - login.seen > IDLE or now - login.created > LIFETIME:
            del self._logins[token]
            return None
        login.seen = now
        return login

    def end(self, token: str) -> None:
        self._logins.pop(token, None)

    def mint_link(self, org: str) -> str:
        now = self._clock()
        self._links = {t: v for t, v in self._links.items() if now - v[1] <= LINK_LIFETIME}
        token = secrets.token_urlsafe(24)
        self._links[token] = (org, now)
        return token

    def use_link(self, token: str) -> Optional[str]:
        """The org of a one-time link, once, within its lifetime."""
        link = self._links.pop(token, None)
        if link is None or self._clock() - link[1] > LINK_LIFETIME:
            return None
        return link[0]
