"""The durable on-disk spool: records that could not be delivered wait here, across restarts.

Layout under one directory (created 0700)::

    tmp/         partial writes; never read
    ready/       complete files, oldest first by name: <time_ns>-<pid>-<rand>.hps
    claimed/     files one process is replaying: <name>.<pid> (a rename is the lease)
    wal/<pid>/   ``durable=True`` records, one file each, until delivered
    quarantine/  files that failed their check; kept for inspection, never replayed

A file is a header line ``{"v": 1, "n": <records>, "crc": <crc32 of the body>}`` then one wire
payload per line. It is written to ``tmp/``, flushed (and fsynced when durable), then renamed
into ``ready/``: a crash leaves at worst a ``tmp/`` file, never a half-written one to replay.
Several processes may share a directory: claiming is an atomic rename, so each file is replayed
by one process.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Optional

import attrs

__all__ = ["Spool", "Claim", "SpoolStatus", "default_spool_dir", "SpoolCorrupt"]

SUFFIX = ".hps"
STALE_TMP_SECONDS = 60.0


def default_spool_dir(base_url: str, org_id: object) -> Path:
    """``$HUGGINGPLACE_SPOOL_DIR`` or the per-user cache, one sub-directory per endpoint and org
    so that a process never replays another org's records with its own key."""
    import hashlib

    root = os.environ.get("HUGGINGPLACE_SPOOL_DIR")
    if root:
        base = Path(root)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = Path(cache) / "huggingplace" / "spool"
    digest = hashlib.sha256(f"{base_url}|{org_id}".encode()).hexdigest()[:12]
    return base / digest


class SpoolCorrupt(Exception):
    def __init__(self, records: int) -> None:
        super().__init__(records)
        self.records = records


@attrs.frozen
class Claim:
    """A spool file this process holds for replay, with its records."""

    path: Path
    payloads: list[dict[str, Any]]


@attrs.frozen
class SpoolStatus:
    directory: str
    files: int
    records: int
    bytes: int
    claimed: int
    quarantined: int
    wal: int


def _encode(payloads: Iterable[dict[str, Any]]) -> bytes:
    lines = [json.dumps(p, ensure_ascii=False, separators=(",", ":")).encode("utf-8") for p in payloads]
    body = b"\n".join(lines) + b"\n"
    header = json.dumps({"v": 1, "n": len(lines), "crc": zlib.crc32(body)}).encode() + b"\n"
    return header + body


def _decode(data: bytes) -> list[dict[str, Any]]:
    """The records of a spool file; raises SpoolCorrupt (with what it could count) otherwise."""
    head, sep, body = data.partition(b"\n")
    try:
        header = json.loads(head) if sep else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("v") != 1:
        raise SpoolCorrupt(max(1, body.count(b"\n")))
    n = header.get("n")
    count = n if isinstance(n, int) and n >= 0 else body.count(b"\n")
    if zlib.crc32(body) != header.get("crc"):
        raise SpoolCorrupt(count)
    try:
        payloads = [json.loads(line) for line in body.splitlines() if line]
    except ValueError:
        raise SpoolCorrupt(count) from None
    if len(payloads) != n or not all(isinstance(p, dict) for p in payloads):
        raise SpoolCorrupt(count)
    return payloads


def _records_in(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline())
        n = header.get("n") if isinstance(header, dict) else None
        return n if isinstance(n, int) else 0
    except (OSError, ValueError):
        return 0


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    """One spool directory. Thread-safe within a process; safe across processes by renames."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        for sub in ("tmp", "ready", "claimed", "quarantine", "wal"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        self._size: Optional[int] = None  # bytes in ready/, kept as we go; rescanned now and then
        self._writes = 0

    def reset_lock(self) -> None:
        """After fork: the parent may have held the lock."""
        self._lock = threading.Lock()

    # ---- writing ----------------------------------------------------------------------------
    def _name(self) -> str:
        return f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"

    def _write(self, target_dir: Path, payloads: list[dict[str, Any]], *, fsync: bool) -> Path:
        data = _encode(payloads)
        name = self._name()
        tmp = self.directory / "tmp" / (name + ".part")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(tmp, flags, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if fsync:
                    os.fsync(f.fileno())
            target = target_dir / name
            os.replace(tmp, target)
        except BaseException:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise
        return target

    def write(self, payloads: list[dict[str, Any]], *, fsync: bool = False) -> int:
        """Spool records as one ready file; returns how many older records were evicted to fit."""
        if not payloads:
            return 0
        path = self._write(self.directory / "ready", payloads, fsync=fsync)
        with self._lock:
            self._writes += 1
            if self._size is None or self._writes % 64 == 0:  # other processes write here too
                self._size = self._scan_size()
            else:
                self._size += path.stat().st_size
            over = self._size > self.max_bytes
        return self._evict() if over else 0

    def _scan_size(self) -> int:
        total = 0
        for p in (self.directory / "ready").iterdir():
            try:
                total += p.stat().st_size
            except FileNotFoundError:
                continue
        return total

    def write_ahead(self, payload: dict[str, Any]) -> Path:
        """``durable=True``: one record, fsynced into this process's wal/ before log() returns."""
        wal = self.directory / "wal" / str(os.getpid())
        wal.mkdir(exist_ok=True, mode=0o700)
        return self._write(wal, [payload], fsync=True)

    def promote(self, wal_file: Path) -> None:
        """Hand a write-ahead record over to replay (it was not delivered in time)."""
        try:
            os.replace(wal_file, self.directory / "ready" / wal_file.name)
        except FileNotFoundError:
            pass

    @staticmethod
    def discard(path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def _ready_files(self) -> list[Path]:
        return sorted(p for p in (self.directory / "ready").iterdir() if p.name.endswith(SUFFIX))

    def _evict(self) -> int:
        """Delete the oldest ready files while the spool is over its bound; returns records lost."""
        with self._lock:
            files = self._ready_files()
            sizes = {}
            for p in files:
                try:
                    sizes[p] = p.stat().st_size
                except FileNotFoundError:
                    continue
            total = sum(sizes.values())
            evicted = 0
            for p in files[:-1]:  # never the newest: it is what was just written
                if total <= self.max_bytes:
                    break
                n = _records_in(p)
                try:
                    p.unlink()
                except FileNotFoundError:
                    continue
                total -= sizes.get(p, 0)
                evicted += n
            self._size = total
            return evicted

    # ---- replay -----------------------------------------------------------------------------
    def claim_oldest(self) -> Optional[Claim]:
        """Take the oldest ready file for replay, or None. Corrupt files are quarantined and
        reported by raising SpoolCorrupt after the move."""
        for path in self._ready_files():
            claimed = self.directory / "claimed" / f"{path.name}.{os.getpid()}"
            try:
                os.replace(path, claimed)
            except FileNotFoundError:
                continue  # another process won it
            try:
                payloads = _decode(claimed.read_bytes())
            except SpoolCorrupt:
                os.replace(claimed, self.directory / "quarantine" / path.name)
                raise
            return Claim(claimed, payloads)
        return None

    def release(self, claim: Claim) -> None:
        """Give a claim back unchanged (nothing in it was delivered)."""
        original = claim.path.name.rsplit(".", 1)[0]
        try:
            os.replace(claim.path, self.directory / "ready" / original)
        except FileNotFoundError:
            pass

    def finish(self, claim: Claim, remaining: list[dict[str, Any]]) -> None:
        """Close a claim: what is left undelivered goes back as a new file, the claim is removed."""
        if remaining:
            self._write(self.directory / "ready", remaining, fsync=False)
        self.discard(claim.path)

    # ---- upkeep -----------------------------------------------------------------------------
    def recover(self) -> None:
        """Return claims and write-ahead files of dead processes to ready/; clear stale tmp/."""
        for path in (self.directory / "claimed").iterdir():
            name, _, pid = path.name.rpartition(".")
            if pid.isdigit() and not _pid_alive(int(pid)):
                try:
                    os.replace(path, self.directory / "ready" / name)
                except FileNotFoundError:
                    pass
        for wal in (self.directory / "wal").iterdir():
            if wal.name.isdigit() and not _pid_alive(int(wal.name)):
                for path in wal.iterdir():
                    try:
                        os.replace(path, self.directory / "ready" / path.name)
                    except FileNotFoundError:
                        pass
                try:
                    wal.rmdir()
                except OSError:
                    pass
        now = time.time()
        for path in (self.directory / "tmp").iterdir():
            try:
                if now - path.stat().st_mtime > STALE_TMP_SECONDS:
                    path.unlink()
            except FileNotFoundError:
                pass

    def has_backlog(self) -> bool:
        """Anything to replay: ready files, or claims and write-ahead files of other processes."""
        own = str(os.getpid())
        return (
            any(p.name.endswith(SUFFIX) for p in (self.directory / "ready").iterdir())
            or any(True for _ in (self.directory / "claimed").iterdir())
            or any(p.name != own for p in (self.directory / "wal").iterdir())
        )

    def _files(self, sub: str) -> Iterator[Path]:
        root = self.directory / sub
        for path in root.rglob("*"):
            if path.is_file():
                yield path

    def status(self) -> SpoolStatus:
        ready = self._ready_files()
        wal = list(self._files("wal"))
        return SpoolStatus(
            directory=str(self.directory),
            files=len(ready),
            records=sum(_records_in(p) for p in ready) + sum(_records_in(p) for p in wal),
            bytes=sum(p.stat().st_size for p in ready if p.exists()),
            claimed=sum(1 for _ in self._files("claimed")),
            quarantined=sum(1 for _ in self._files("quarantine")),
            wal=len(wal),
        )

    def purge(self) -> int:
        """Delete every ready and quarantined file; returns the records deleted."""
        removed = 0
        for path in [*self._ready_files(), *self._files("quarantine")]:
            removed += _records_in(path)
            self.discard(path)
        return removed
