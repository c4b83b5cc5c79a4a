"""The ``huggingplace`` command: ``serve`` (the local collector) and ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any, Optional, Sequence

__all__ = ["main"]


def _parse_keys(values: Sequence[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for value in values:
        key, sep, org = value.rpartition(":")
        if not sep or not key or not org:
            raise SystemExit("huggingplace serve: --key takes KEY:ORG, got a value without both parts")
        keys[key] = org
    return keys


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _bind(host: str, port: int) -> Any:
    """The listening socket, before anything else is touched: a busy port changes nothing."""
    import socket

    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        reason = "is in use" if exc.errno in (48, 98, 10048) else f"cannot be opened ({exc.strerror})"
        raise SystemExit(f"huggingplace serve: port {port} on {host} {reason}; pass --port N, or --port 0 for any "
                         "free port") from None


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from .collector import DEV_ORG, create_app, dev_key
    from .collector._guard import GuardedRunner
    from .collector._store import Store
    from .collector.viewer import available, mint_login_link

    env_keys = [k for k in os.environ.get("HUGGINGPLACE_COLLECTOR_KEYS", "").split(",") if k.strip()]
    keys = _parse_keys([*env_keys, *args.key])
    sock = _bind(args.host, args.port)
    store = Store(args.db)
    for key, org in keys.items():
        store.add_key(key, org, label="given to huggingplace serve")
    dev = dev_key(store, args.db) if not keys and args.host in LOOPBACK else None
    if not keys and dev is None and store.key_count() == 0:
        dev = store.create_dev_key(DEV_ORG)  # off loopback: shown once, never written to a file
    if args.host not in LOOPBACK:
        print(f"warning: listening on {args.host}, reachable from other machines", file=sys.stderr)

    async def run() -> None:
        app = create_app(store)
        runner = GuardedRunner(app, access_log=None, keepalive_timeout=75)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        port = sock.getsockname()[1]
        host = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{host}:{port}"
        print(f"huggingplace collector on {url}, storing into {os.path.abspath(args.db)}")
        if dev:
            print("Send records with these (the dev key, for org 'local'):")
            print(f"  export HUGGINGPLACE_API_KEY={dev}")
            print(f"  export HUGGINGPLACE_ORG_ID={DEV_ORG}")
            print(f"  export HUGGINGPLACE_BASE_URL={url}")
        else:
            print(f"{store.key_count()} key(s) stored (huggingplace keys list --db {args.db}); "
                  f"export HUGGINGPLACE_BASE_URL={url}")
        if not available():
            print("viewer off: pip install 'huggingplace[viewer]' to see your records at " + url)
        elif dev and args.host in LOOPBACK:
            print(f"See what you logged: {url}{mint_login_link(app, DEV_ORG)}  (a one-time login link)")
        else:
            print(f"See what you logged: {url}/  (log in with a key)")
        sys.stdout.flush()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0


def _keys(args: argparse.Namespace) -> int:
    """List, create and revoke the collector's API keys (only their hashes are stored)."""
    from .collector._store import Store

    if not os.path.exists(args.db):
        raise SystemExit(f"huggingplace keys: no database at {args.db} (pass --db, or run huggingplace serve first)")
    store = Store(args.db)
    try:
        if args.action == "create":
            if not args.org:
                raise SystemExit("huggingplace keys create: pass --org ORG (the org the key may write and read)")
            key = store.create_key(args.org, label=args.label or "created by huggingplace keys")
            print(f"{key}\n(shown once: only its hash is stored; org {args.org})")
        elif args.action == "revoke":
            if not args.id:
                raise SystemExit("huggingplace keys revoke: pass the key's id from `huggingplace keys list`")
            gone = store.revoke_key(args.id)
            if gone != 1:
                print(f"huggingplace keys revoke: {gone} keys match {args.id!r}; nothing revoked" if gone else
                      f"huggingplace keys revoke: no key with id {args.id!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.id}")
        else:
            rows = store.keys()
            print(f"{'id':12}  {'org':16}  {'created (UTC)':24}  label")
            for row in rows:
                print(f"{row['id']:12}  {row['org_id']:16}  {row['created_at']:24}  {row['label']}")
    finally:
        store.close()
    return 0


def _tail(args: argparse.Namespace) -> int:
    """Follow new records as they are stored: one line each (the viewer's live stream). When the
    stream drops (the collector restarted), reconnect with backoff and first print what was
    stored meanwhile, from the records route, so that no record is skipped or shown twice."""
    import json
    import time

    import requests

    from ._config import resolve_options

    options = resolve_options(api_key=None, org_id=None, base_url=None)
    base = options.base_url.rstrip("/")
    url = base + "/v2/stream"
    headers = {"Authorization": f"Bearer {options.api_key}"}
    params = {k: v for k, v in (("session_id", args.session), ("errors", "1" if args.errors else None)) if v}
    shown = _Shown()
    delay, following = 1.0, False
    while True:
        try:
            with requests.get(url, params=params, stream=True, timeout=(5, None),
                              headers={**headers, "Accept": "text/event-stream"}) as r:
                if r.status_code != 200:
                    print(f"huggingplace tail: {url} answered {r.status_code}: {r.text[:200]}", file=sys.stderr)
                    if r.status_code < 500 or not following:
                        return 1
                    raise requests.ConnectionError(f"HTTP {r.status_code}")
                if not following:
                    print(f"following {url}" + (f" (session {args.session})" if args.session else "")
                          + (" (errors only)" if args.errors else ""), flush=True)
                    following = True
                else:
                    print("huggingplace tail: reconnected", file=sys.stderr, flush=True)
                    for record in _stored_since(base, headers, shown.last, args):
                        shown.show(record)
                delay = 1.0
                event = ""
                for line in r.iter_lines(decode_unicode=True):
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "record":
                        shown.show(json.loads(line[6:])["record"])
                    elif line.startswith("data: ") and event == "lost":
                        print(f"... {json.loads(line[6:])['records']} records not shown (reading too slowly)",
                              flush=True)
        except KeyboardInterrupt:
            return 0
        except requests.RequestException as exc:
            if not following:
                print(f"huggingplace tail: cannot reach {url} ({type(exc).__name__})", file=sys.stderr)
                return 1
        try:
            print(f"huggingplace tail: the stream ended; reconnecting in {delay:g} s", file=sys.stderr, flush=True)
            time.sleep(delay)
        except KeyboardInterrupt:
            return 0
        delay = min(delay * 2, 30.0)


class _Shown:
    """The records ``tail`` printed: each once (a reconnect's catch-up and the stream overlap),
    and the newest timestamp, where the next catch-up starts."""

    def __init__(self, keep: int = 10_000) -> None:
        from collections import deque

        self.last: Optional[str] = None
        self._ids: set[str] = set()
        self._order: deque[str] = deque()
        self._keep = keep

    def show(self, record: dict[str, Any]) -> None:
        event_id = str(record.get("event_id"))
        if event_id in self._ids:
            return
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self._keep:
            self._ids.discard(self._order.popleft())
        if self.last is None or record["timestamp"] > self.last:
            self.last = record["timestamp"]
        print(_tail_line(record), flush=True)


def _stored_since(base: str, headers: dict[str, str], since: Optional[str], args: argparse.Namespace) -> list[Any]:
    """Records stored from ``since`` on (the same filters as the stream), oldest first."""
    import requests

    if since is None:
        return []
    params = {k: v for k, v in (("since", since), ("session_id", args.session),
                                ("status", "error" if args.errors else None), ("limit", "200")) if v}
    found: list[Any] = []
    for _ in range(50):  # 10,000 records at most: past that, the gap is told, not printed
        page = requests.get(base + "/v2/records", params=params, headers=headers, timeout=10)
        if page.status_code != 200:
            break
        data = page.json()
        found.extend(data.get("records") or [])
        if not data.get("next_cursor"):
            break
        params["cursor"] = data["next_cursor"]
    else:
        print("... more records were stored while disconnected than are shown", flush=True)
    return found[::-1]


def _tail_line(r: dict[str, Any]) -> str:
    latency = f"{r['response_time']:.0f}ms" if isinstance(r.get("response_time"), (int, float)) else "-"
    prompt = (r.get("user_prompt") or "").replace("\n", " ")
    prompt = prompt if len(prompt) <= 60 else prompt[:59] + "…"
    who = f"{r.get('session_id') or '-':24.24}  {r.get('user_id') or '-':12.12}"
    return (f"{r['timestamp'][11:23]}  {r['status']:5}  {who}  "
            f"{r.get('llm_model') or '-':16.16}  {r.get('tokens') if r.get('tokens') is not None else '-':>6}  "
            f"{latency:>8}  {prompt}")


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(serve=args.serve)


def _spool_dirs(args: argparse.Namespace) -> list[Any]:
    from pathlib import Path

    from ._spool import default_spool_dir

    if args.dir:
        return [Path(args.dir)]
    root = default_spool_dir("", "").parent
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _spool(args: argparse.Namespace) -> int:
    from ._spool import Spool

    dirs = _spool_dirs(args)
    if args.action == "replay":
        return _replay(args)
    if not dirs:
        print("no spool directory found (set HUGGINGPLACE_SPOOL_DIR or pass --dir)")
        return 0
    for directory in dirs:
        spool = Spool(directory)
        if args.action == "status":
            st = spool.status()
            since = ""
            if st.oldest is not None:
                import datetime as _dt

                when = _dt.datetime.fromtimestamp(st.oldest, _dt.timezone.utc)
                since = f", oldest spooled {when:%Y-%m-%d %H:%M:%S} UTC"
            print(
                f"{st.directory}: {st.records} record(s) in {st.files} file(s), {st.bytes} bytes{since}; "
                f"{st.wal} write-ahead, {st.claimed} claimed, {st.quarantined} quarantined"
            )
        else:
            print(f"{directory}: purged {spool.purge()} record(s)")
    return 0


def _replay(args: argparse.Namespace) -> int:
    """Send every spooled record now with a foreground client from HUGGINGPLACE_* settings."""
    from ._client import HuggingPlace
    from ._exceptions import HuggingPlaceError
    from ._retry import Outcome, outcome
    from ._spool import Spool, SpoolCorrupt, default_spool_dir
    from ._wire import request_for_body

    with HuggingPlace() as hp:
        spool = Spool(args.dir or default_spool_dir(hp.options.base_url, hp.options.org_id))
        spool.recover()
        sent = rejected = corrupt = 0
        while True:
            try:
                claim = spool.claim_oldest()
            except SpoolCorrupt as exc:
                corrupt += exc.records
                continue
            if claim is None:
                break
            remaining = []
            for i, (event_id, body) in enumerate(claim.entries):
                try:
                    hp._send(request_for_body(body, event_id, hp.options))
                    sent += 1
                except HuggingPlaceError as exc:
                    if outcome(exc) is Outcome.REJECT:
                        rejected += 1
                        continue
                    remaining = claim.entries[i:]
                    print(f"stopped: {exc}", file=sys.stderr)
                    break
            spool.finish(claim, remaining)
            if remaining:
                break
        left = spool.status().records
    print(f"replayed {sent} record(s), {rejected} refused, {corrupt} in quarantine; {left} left in the spool")
    return 0 if left == 0 else 1


def _providers(args: argparse.Namespace) -> int:
    from .providers import registry

    for name, source in registry.adapters():
        print(f"{name:20s} {source}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="huggingplace", description="HuggingPlace SDK tools")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the local collector (SQLite) on a loopback port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--db", default="./huggingplace.db", help="SQLite file (created if missing)")
    serve.add_argument(
        "--key", action="append", default=[], metavar="KEY:ORG",
        help="accept this API key for this org (repeatable; also HUGGINGPLACE_COLLECTOR_KEYS=K:O,K:O)",
    )
    serve.set_defaults(func=_serve)
    demo = sub.add_parser("demo", help="run a multi-step session against a temporary local collector")
    demo.add_argument("--serve", action="store_true", help="keep the collector and its viewer running afterwards")
    demo.set_defaults(func=_demo)
    keys = sub.add_parser("keys", help="list, create or revoke the local collector's API keys")
    keys.add_argument("action", choices=["list", "create", "revoke"])
    keys.add_argument("id", nargs="?", help="revoke: the key's id, as `keys list` shows it")
    keys.add_argument("--db", default="./huggingplace.db", help="the collector's SQLite file")
    keys.add_argument("--org", help="create: the org the key belongs to")
    keys.add_argument("--label", help="create: a note kept beside the key")
    keys.set_defaults(func=_keys)
    tail = sub.add_parser("tail", help="follow new records as they arrive (HUGGINGPLACE_* settings)")
    tail.add_argument("--session", help="only this session's records")
    tail.add_argument("--errors", action="store_true", help="only records with status error")
    tail.set_defaults(func=_tail)
    spool = sub.add_parser("spool", help="inspect, send or delete records waiting in the on-disk spool")
    spool.add_argument("action", choices=["status", "replay", "purge"])
    spool.add_argument("--dir", help="one spool directory (default: all under HUGGINGPLACE_SPOOL_DIR or the cache)")
    spool.set_defaults(func=_spool)
    providers = sub.add_parser("providers", help="list the provider adapters installed, in the order they are tried")
    providers.set_defaults(func=_providers)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))
