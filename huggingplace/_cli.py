"""The ``huggingplace`` command: ``serve`` (the local collector) and ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Optional, Sequence

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
        runner = web.AppRunner(create_app(store), access_log=None)
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))
