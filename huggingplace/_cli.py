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


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from .collector import DEV_ORG, create_app
    from .collector._guard import GuardedRunner
    from .collector._store import Store

    env_keys = [k for k in os.environ.get("HUGGINGPLACE_COLLECTOR_KEYS", "").split(",") if k.strip()]
    keys = _parse_keys([*env_keys, *args.key])
    store = Store(args.db)
    for key, org in keys.items():
        store.add_key(key, org, label="given to huggingplace serve")
    created: Optional[str] = None
    if not keys and store.key_count() == 0:
        created = store.create_dev_key(DEV_ORG)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}, reachable from other machines", file=sys.stderr)

    async def run() -> None:
        runner = GuardedRunner(create_app(store), access_log=None, keepalive_timeout=75)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://{args.host}:{port}"
        print(f"huggingplace collector on {url}, storing into {os.path.abspath(args.db)}")
        if created:
            print("A dev key was created (shown once, kept hashed in the database). Paste these:")
            print(f"  export HUGGINGPLACE_API_KEY={created}")
            print(f"  export HUGGINGPLACE_ORG_ID={DEV_ORG}")
            print(f"  export HUGGINGPLACE_BASE_URL={url}")
        else:
            print(f"using the {store.key_count()} key(s) stored in the database; export HUGGINGPLACE_BASE_URL={url}")
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


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo()


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
    demo.set_defaults(func=_demo)
    spool = sub.add_parser("spool", help="inspect, send or delete records waiting in the on-disk spool")
    spool.add_argument("action", choices=["status", "replay", "purge"])
    spool.add_argument("--dir", help="one spool directory (default: all under HUGGINGPLACE_SPOOL_DIR or the cache)")
    spool.set_defaults(func=_spool)
    providers = sub.add_parser("providers", help="list the provider adapters installed, in the order they are tried")
    providers.set_defaults(func=_providers)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))
