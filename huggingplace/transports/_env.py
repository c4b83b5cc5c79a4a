"""Proxy settings read once from the environment, so that no request consults the environment
(``requests`` does so on every call; aiohttp does it in a thread pool, which is dead at exit)."""

from __future__ import annotations

import urllib.parse
import urllib.request
from typing import Optional

__all__ = ["Proxies"]


class Proxies:
    """``HTTP(S)_PROXY`` / ``NO_PROXY`` as they were when the transport was built; one answer per
    host, cached."""

    def __init__(self) -> None:
        self._env = urllib.request.getproxies_environment()
        self._cache: dict[tuple[str, str], Optional[str]] = {}
        self._urls: dict[str, Optional[str]] = {}  # a client posts to one or two URLs, over and over

    def for_url(self, url: str) -> Optional[str]:
        try:
            return self._urls[url]
        except KeyError:
            pass
        if len(self._urls) > 64:
            self._urls.clear()
        self._urls[url] = proxy = self._for_host(url)
        return proxy

    def _for_host(self, url: str) -> Optional[str]:
        parts = urllib.parse.urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if key not in self._cache:
            proxy = self._env.get(parts.scheme)
            bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009 (not in typeshed)
            if proxy and bypass(parts.hostname or "", self._env):
                proxy = None
            self._cache[key] = proxy or None
        return self._cache[key]
