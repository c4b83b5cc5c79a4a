"""The local collector: the contract's route, a batch route and read routes, stored in SQLite.

``huggingplace serve`` runs it in the foreground; :class:`Collector` runs it on a background
thread (the demo and the end-to-end tests use it)::

    with Collector("records.db") as c:
        hp = HuggingPlace(api_key=c.dev_key, org_id=c.dev_org, base_url=c.url)
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Mapping, Optional

from aiohttp import web

from ._app import BATCH_ROUTE, create_app
from ._guard import GuardedRunner
from ._store import Store

__all__ = ["Collector", "Store", "create_app", "BATCH_ROUTE", "DEV_ORG", "dev_key", "dev_key_file"]

DEV_ORG = "local"


def dev_key_file(db: str) -> str:
    """Where the dev key of a loopback collector is kept (mode 0600, beside the database), so
    that a later ``huggingplace serve`` can show it again; the database holds only its hash."""
    return os.path.abspath(db) + ".devkey"


def dev_key(store: Store, db: str) -> Optional[str]:
    """The dev key kept beside ``db``, or a new one when the database has no key at all."""
    path = dev_key_file(db)
    try:
        with open(path, encoding="utf-8") as f:
            key = f.read().strip()
        if store.org_for_key(key) == DEV_ORG:
            return key
    except OSError:
        pass
    if store.key_count():
        return None
    key = store.create_dev_key(DEV_ORG)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key + "\n")
    except OSError:  # a read-only folder: the key is still printed this once
        pass
    return key


class Collector:
    """A collector on a loopback port, served from its own thread and event loop.

    ``keys`` maps API keys to org ids; with none given (and none stored) a dev key is created
    for org ``"local"`` and kept in ``dev_key``.
    """

    def __init__(
        self,
        db_path: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        keys: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.db_path = db_path
        self.host = host
        self.port = port
        self._keys = dict(keys or {})
        self.dev_key: Optional[str] = None
        self.dev_org = DEV_ORG
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._runner: Optional[web.AppRunner] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Collector:
        store = Store(self.db_path)
        for key, org in self._keys.items():
            store.add_key(key, str(org))
        if not self._keys:
            self.dev_key = dev_key(store, self.db_path) or store.create_dev_key(DEV_ORG)
        self._store = store
        self._thread = threading.Thread(target=self._run, name="huggingplace-collector", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._app = create_app(self._store)
            self._runner = GuardedRunner(self._app, access_log=None, keepalive_timeout=75)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            loop.run_until_complete(site.start())
            self.port = self._runner.addresses[0][1]
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def login_link(self, org: Optional[str] = None) -> str:
        """A one-time link that logs a browser into the viewer for ``org`` (the dev org by default)."""
        from .viewer import mint_login_link

        return self.url + mint_login_link(self._app, org or self.dev_org)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._store.close()
            self._loop = None

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
