"""The durable on-disk spool: records that could not be delivered wait here, across restarts.

Layout under one directory (created 0700)::

    tmp/         partial writes; never read
    ready/       complete files, oldest first by name: <time_ns>-<pid>-<rand>.hps
    claimed/     files one process is replaying: <name>.<pid> (a rename is the lease)
    wal/<pid>/   ``durable=True`` records, one file each, until delivered
    quarantine/  files that failed their check; kept for inspection, never replayed

A file is a header line ``{"v": 2, "n": <records>, "crc": <crc32 of the body>}`` then one record
per line: its event_id, a tab, and its JSON body exactly as it is sent (version 1 files, one JSON
payload per line, are still read). It is written to ``tmp/``, flushed (and fsynced when durable), then renamed
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

__all__ = ["Spool", "Claim", "Entry", "SpoolStatus", "default_spool_dir", "SpoolCorrupt"]

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


Entry = tuple[str, bytes]  # (event_id, encoded JSON body)


@attrs.frozen
class Claim:
    """A spool file this process holds for replay, with its records."""

    path: Path
    entries: list[Entry]

    @property
    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.entries]


@attrs.frozen
class SpoolStatus:
    directory: str
    files: int
    records: int
    bytes: int
    claimed: int
    quarantined: int
    wal: int
    oldest: Optional[float] = None  #: epoch seconds when the oldest waiting record was spooled


def _encode(entries: Iterable[Entry]) -> bytes:
    lines = [event_id.encode("ascii") + b"\t" + body for event_id, body in entries]
    data = b"\n".join(lines) + b"\n"
    header = json.dumps({"v": 2, "n": len(lines), "crc": zlib.crc32(data)}).encode() + b"\n"
    return header + data


def _entry_v1(line: bytes) -> Entry:
    payload = json.loads(line)
    if not isinstance(payload, dict):
        raise ValueError("not a record")
    return str(payload.get("event_id", "")), line


def _entry_v2(line: bytes) -> Entry:
    event_id, tab, body = line.partition(b"\t")
    if not tab or not body.startswith(b"{"):
        raise ValueError("not a record")
    return event_id.decode("ascii"), body


def _proven(body: bytes) -> int:
    """How many records a damaged file provably holds: the lines that still parse as one."""
    count = 0
    for line in body.splitlines():
        for parse in (_entry_v2, _entry_v1):
            try:
                parse(line)
            except (ValueError, UnicodeDecodeError):
                continue
            count += 1
            break
    return count


def _decode_entries(data: bytes) -> list[Entry]:
    """The records of a spool file; raises SpoolCorrupt (with what it provably held) otherwise."""
    head, sep, body = data.partition(b"\n")
    try:
        header = json.loads(head) if sep else None
    except ValueError:
        header = None
    version = header.get("v") if isinstance(header, dict) else None
    if version not in (1, 2) or not isinstance(header, dict):
        raise SpoolCorrupt(_proven(body if sep else data))
    if zlib.crc32(body) != header.get("crc"):
        raise SpoolCorrupt(_proven(body))
    parse = _entry_v2 if version == 2 else _entry_v1
    try:
        entries = [parse(line) for line in body.splitlines() if line]
    except (ValueError, UnicodeDecodeError):
        raise SpoolCorrupt(_proven(body)) from None
    if len(entries) != header.get("n"):
        raise SpoolCorrupt(_proven(body))
    return entries


def _decode(data: bytes) -> list[dict[str, Any]]:
    """The records of a spool file as payloads (for tools and tests)."""
    return [json.loads(body) for _, body in _decode_entries(data)]


def _records_in(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline())
        n = header.get("n") if isinstance(header, dict) else None
        return n if isinstance(n, int) and 0 <= n < 1_000_000 else 0
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
        self._size: Optional[int] = None  # bytes in ready/, kept as we go; rescanned now and then
        self._writes = 0
        self._made = False

    def ensure(self) -> None:
        """Create the directory tree (0700) if it is missing; raises OSError when it cannot.
        Called before every write, so a directory deleted mid-outage is made again."""
        if self._made and (self.directory / "ready").is_dir() and (self.directory / "tmp").is_dir():
            return
        for sub in ("tmp", "ready", "claimed", "quarantine", "wal"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        self._made = True
        self._size = None

    def reset_lock(self) -> None:
        """After fork: the parent may have held the lock."""
        self._lock = threading.Lock()

    # ---- writing ----------------------------------------------------------------------------
    def _name(self) -> str:
        return f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"

    def _write(self, target_dir: Path, entries: list[Entry], *, fsync: bool) -> tuple[Path, int]:
        self.ensure()
        target_dir.mkdir(exist_ok=True, mode=0o700)
        data = _encode(entries)
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
        return target, len(data)

    def write(self, entries: list[Entry], *, fsync: bool = False) -> int:
        """Spool records as one ready file; returns how many older records were evicted to fit.
        Raises OSError when the disk refuses (the caller keeps or counts the records). Writes
        and evictions of one process are serialized, so a file is never counted twice."""
        if not entries:
            return 0
        with self._lock:
            path, size = self._write(self.directory / "ready", entries, fsync=fsync)
            self._writes += 1
            if self._size is None or self._writes % 64 == 0:  # other processes write here too
                self._size = self._scan_size()
            else:
                self._size += size
            if self._size <= self.max_bytes:
                return 0
            return self._evict(keep=path)

    def _scan_size(self) -> int:
        total = 0
        for p in self._ready_files():
            try:
                total += p.stat().st_size
            except FileNotFoundError:
                continue
        return total

    def write_ahead(self, entry: Entry) -> Path:
        """``durable=True``: one record, fsynced into this process's wal/ before log() returns."""
        self.ensure()
        wal = self.directory / "wal" / str(os.getpid())
        return self._write(wal, [entry], fsync=True)[0]

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
        try:
            return sorted(p for p in (self.directory / "ready").iterdir() if p.name.endswith(SUFFIX))
        except OSError:  # missing, or a file where the directory was: nothing to replay
            return []

    def _evict(self, keep: Path) -> int:
        """Delete the oldest ready files while the spool is over its bound (never ``keep``, the
        file just written); returns the records lost. Called with the lock held."""
        files = self._ready_files()
        sizes = {}
        for p in files:
            try:
                sizes[p] = p.stat().st_size
            except FileNotFoundError:
                continue
        total = sum(sizes.values())
        evicted = 0
        for p in files:
            if total <= self.max_bytes:
                break
            if p == keep or p not in sizes:
                continue
            n = _records_in(p)
            try:
                p.unlink()
            except FileNotFoundError:
                continue  # another process replayed or evicted it: not ours to count
            total -= sizes[p]
            evicted += n
        self._size = total
        return evicted

    # ---- replay -----------------------------------------------------------------------------
    def claim_oldest(self) -> Optional[Claim]:
        """Take the oldest ready file for replay, or None. Corrupt files are set aside in
        quarantine/ (renamed, never deleted) and reported by raising SpoolCorrupt after the move."""
        for path in self._ready_files():
            claimed = self.directory / "claimed" / f"{path.name}.{os.getpid()}"
            try:
                os.replace(path, claimed)
            except FileNotFoundError:
                continue  # another process won it
            try:
                entries = _decode_entries(claimed.read_bytes())
            except SpoolCorrupt:
                os.replace(claimed, self.directory / "quarantine" / path.name)
                raise
            except OSError:
                self.release(Claim(claimed, []))
                raise
            return Claim(claimed, entries)
        return None

    def release(self, claim: Claim) -> None:
        """Give a claim back as it was, for the next replay (records in it that were delivered
        meanwhile are sent again; the endpoint stores an event_id once)."""
        original = claim.path.name.rsplit(".", 1)[0]
        try:
            os.replace(claim.path, self.directory / "ready" / original)
        except FileNotFoundError:
            pass

    def finish(self, claim: Claim, remaining: list[Entry]) -> None:
        """Close a claim: what is left undelivered goes back as a new file, the claim is removed.
        If that write fails (a full disk), the whole claim goes back instead; nothing is lost."""
        if remaining:
            try:
                self._write(self.directory / "ready", remaining, fsync=False)
            except OSError:
                self.release(claim)
                raise
        self.discard(claim.path)

    # ---- upkeep -----------------------------------------------------------------------------
    def recover(self) -> None:
        """Return claims and write-ahead files of dead processes to ready/; clear stale tmp/.
        Raises OSError when the directory cannot be used (the caller warns and goes on)."""
        if not self.directory.is_dir():
            return
        self.ensure()
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
        try:
            return (
                any(p.name.endswith(SUFFIX) for p in (self.directory / "ready").iterdir())
                or any(True for _ in (self.directory / "claimed").iterdir())
                or any(p.name != own for p in (self.directory / "wal").iterdir())
            )
        except OSError:
            return False

    def waiting(self) -> tuple[int, Optional[float]]:
        """Records waiting in ready/, and the wall-clock time (epoch seconds) the oldest was spooled."""
        files = self._ready_files()
        oldest: Optional[float] = None
        if files:
            try:
                oldest = int(files[0].name.split("-", 1)[0]) / 1e9
            except ValueError:
                oldest = None
        return sum(_records_in(p) for p in files), oldest

    def _files(self, sub: str) -> Iterator[Path]:
        root = self.directory / sub
        if not root.is_dir():
            return
        for path in root.rglob("*"):
            if path.is_file():
                yield path

    def status(self) -> SpoolStatus:
        ready = self._ready_files()
        wal = list(self._files("wal"))
        _, oldest = self.waiting()
        return SpoolStatus(
            directory=str(self.directory),
            files=len(ready),
            records=sum(_records_in(p) for p in ready) + sum(_records_in(p) for p in wal),
            bytes=sum(p.stat().st_size for p in ready if p.exists()),
            claimed=sum(1 for _ in self._files("claimed")),
            quarantined=sum(1 for _ in self._files("quarantine")),
            wal=len(wal),
            oldest=oldest,
        )

    def purge(self) -> int:
        """Delete every ready and quarantined file; returns the records deleted."""
        removed = 0
        for path in [*self._ready_files(), *self._files("quarantine")]:
            removed += _records_in(path)
            self.discard(path)
        return removed
