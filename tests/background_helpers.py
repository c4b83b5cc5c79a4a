"""Helpers for background-delivery tests: fast clients, the spool's contents, conservation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import attrs

from huggingplace import HuggingPlace
from huggingplace._spool import _decode

from .conftest import KEY


def fast(hp: Any, **config: Any) -> Any:
    """Millisecond backoffs and pauses; the decisions stay the real ones."""
    hp._policy = attrs.evolve(hp._policy, initial=0.01, maximum=0.05)
    if hp._pipeline is not None:
        hp._pipeline.policy = hp._policy
        hp._pipeline.config = attrs.evolve(hp._pipeline.config, **{"auth_pause": 0.3, **config})
    return hp


def bg_client(base_url: str, spool_dir: Path, **options: Any) -> HuggingPlace:
    settings = {
        "api_key": KEY, "org_id": "org-a", "base_url": base_url, "background": True, "spool_dir": str(spool_dir),
        "flush_interval": 0.05, "replay_interval": 0.2, "timeout": 2.0, "max_retries": 2, **options,
    }
    return fast(HuggingPlace(**settings))


def entries(*payloads: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Spool entries (event_id, body) for payloads, as the worker writes them."""
    from huggingplace._serialize import dumps

    return [(str(p.get("event_id", "")), dumps(p)) for p in payloads]


def spooled_payloads(directory: Path) -> list[dict[str, Any]]:
    """Every record waiting in a spool directory (ready and write-ahead files), as sent."""
    payloads: list[dict[str, Any]] = []
    if not directory.is_dir():
        return payloads
    for sub in ("ready", "wal"):
        for path in sorted((directory / sub).rglob("*.hps")):
            payloads.extend(_decode(path.read_bytes()))
    return payloads


def spooled_ids(directory: Path) -> list[str]:
    """event_ids of every record waiting in a spool directory."""
    return [p["event_id"] for p in spooled_payloads(directory)]


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def assert_conserved(produced: list[str], stored: set[str], spool_dir: Path, stats: Any) -> None:
    """produced == stored_unique + spooled + counted drops, and every record is accounted for."""
    spooled = spooled_ids(spool_dir)
    assert len(spooled) == len(set(spooled)), "a record is in the spool twice"
    drops = stats.rejected + stats.dropped_total
    known = set(produced)
    assert known <= stored | set(spooled) or drops, "a record is neither stored, spooled nor counted"
    assert len(known) == len((stored | set(spooled)) & known) + drops


def holds_a_set(value: Any, depth: int = 0) -> bool:
    """True when a set is anywhere inside (a set read back may iterate in another order)."""
    if isinstance(value, (set, frozenset)):
        return True
    if depth > 50:
        return False
    if isinstance(value, dict):
        return any(holds_a_set(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(holds_a_set(v, depth + 1) for v in value)
    return False


def outcome(draft: Any) -> Any:
    """What the sender would make of a draft: the encoded body, or the refusal's field."""
    from huggingplace._config import resolve_options
    from huggingplace._exceptions import ValidationError
    from huggingplace._privacy import PrivacyConfig, Processor
    from huggingplace._stats import Stats
    from huggingplace._wire import to_payload

    try:
        record = draft.build()
    except ValidationError as exc:
        return ("refused", exc.field)
    options = resolve_options(api_key=KEY, org_id="o", base_url="http://127.0.0.1:9")
    return Processor(PrivacyConfig(), Stats()).body(to_payload(record, options))
