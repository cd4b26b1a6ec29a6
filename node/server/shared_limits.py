"""The per-peer buckets of ``serve --workers N``: one table every worker process maps.

Without it each worker kept buckets of its own, so a peer whose connections the kernel
spread over N workers (SO_REUSEPORT) was admitted N times its agreed burst and rate, and N
times its ``max_in_flight``: a deployment choice quietly weakened the owner's agreement.
Now the supervisor creates ``serve.limits`` in the node directory before it starts the
workers, each worker maps it (``mmap``, shared) and :class:`node.server.limits.PeerLimiter`
keeps every bucket there.  So a peer's tokens, the order they are promised in, and its
requests in flight are the whole node's, whatever worker a connection reaches.

The file holds no secret and nothing personal: a 16-byte BLAKE2b digest of each bucket's
name (a member id, or ``unlisted:`` and a certificate fingerprint), its tokens and stamp
(the system's monotonic clock, one for every process), and one in-flight count per worker.
A worker counts only its own requests in flight: when one dies, the supervisor clears
its counts (:func:`forget_worker`), and a worker clears its own again when it starts, so
calls that died with a worker never hold a peer's slots.  Every read and write of the
table is under ``flock`` on the file (and a thread lock inside a process): a few
microseconds per admission, against ~1 ms for an answered lookup.

The table has :data:`SLOTS` buckets (open addressing; a digest's slot is never emptied,
so a probe never loses a bucket placed past it).  A new bucket takes a free slot or,
when none is left, one idle for :data:`IDLE_REUSE_S` (nothing in flight; a full day, so
its bucket has long refilled for any usual rate); with neither, the request is refused
``rate_limited`` and ``limits_table_full`` logged (at most once a minute) -- fail closed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import structlog

__all__ = ["IDLE_REUSE_S", "LIMITS_FILE", "SLOTS", "SharedBuckets", "SharedLimitsError",
           "create_table", "forget_worker"]

log = structlog.get_logger("bxnode.server.limits")

#: The table's file, in the node directory, for as long as the supervisor runs.
LIMITS_FILE = "serve.limits"
SLOTS = 4096
#: Workers a table counts in flight for (node.server.workers.MAX_WORKERS).
MAX_WORKERS = 64
#: A slot with nothing in flight and no use for this long may hold another peer's bucket.
IDLE_REUSE_S = 86_400.0

_MAGIC = b"BXLIMIT1"
_HEADER = struct.Struct("<8sII")  # magic, slots, workers
_HEADER_SIZE = 64
_KEY = 16
_SLOT = struct.Struct(f"<{_KEY}sdd{MAX_WORKERS}I")  # key, tokens, stamp, in flight per worker
_TOKENS = struct.Struct("<dd")
_FLIGHT = struct.Struct(f"<{MAX_WORKERS}I")
_ONE = struct.Struct("<I")
_EMPTY = bytes(_KEY)
_MAX_SLOTS = 1 << 20
_FULL_LOG_EVERY_S = 60.0


class SharedLimitsError(Exception):
    """The table cannot be used (missing, not a bxnode table, made for other workers)."""


def _key(peer: str) -> bytes:
    return hashlib.blake2b(peer.encode(), digest_size=_KEY).digest()


def _size(slots: int) -> int:
    return _HEADER_SIZE + slots * _SLOT.size


def create_table(path: Path, *, workers: int, slots: int = SLOTS) -> None:
    """A new, empty table of ``slots`` buckets for ``workers`` processes at ``path``
    (replacing any left by a supervisor that did not stop cleanly), written whole and
    renamed into place."""
    if not 1 <= workers <= MAX_WORKERS:
        raise SharedLimitsError(f"a limits table counts 1..{MAX_WORKERS} workers, not {workers}")
    if not 1 <= slots <= _MAX_SLOTS:
        raise SharedLimitsError(f"a limits table holds 1..{_MAX_SLOTS} buckets, not {slots}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        head = _HEADER.pack(_MAGIC, slots, workers).ljust(_HEADER_SIZE, b"\0")
        os.write(fd, head)
        os.ftruncate(fd, _size(slots))
    finally:
        os.close(fd)
    os.replace(tmp, path)


def forget_worker(path: Path, *, worker: int, workers: int) -> None:
    """Clear ``worker``'s requests in flight (it died: so did its calls)."""
    table = SharedBuckets.attach(path, worker=worker, workers=workers)
    table.close()


class SharedBuckets:
    """A :class:`node.server.limits.BucketTable` in a file every worker maps."""

    def __init__(self, path: Path, fd: int, mm: mmap.mmap, worker: int, slots: int,
                 workers: int) -> None:
        self.path = path
        self.slots = slots
        #: The in-flight counts of the table's workers (the rest of each slot's are zero).
        self._flights = struct.Struct(f"<{workers}I")
        self._fd = fd
        self._mm = mm
        self._worker = worker
        self._own = _SLOT.size - _FLIGHT.size + 4 * worker  # this worker's count, in a slot
        self._thread_lock = threading.Lock()
        #: bucket name -> (its slot's offset, its digest), checked on every use
        self._slot_of: dict[str, tuple[int, bytes]] = {}
        self._full_logged = 0.0

    @classmethod
    def attach(cls, path: Path, *, worker: int, workers: int) -> SharedBuckets:
        """Map the table the supervisor made for ``workers`` processes, as worker
        ``worker``, and clear this worker's requests in flight (left by a previous process
        with its index, if any)."""
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            raise SharedLimitsError(f"{path} does not exist: a worker needs the limits table "
                                    "its supervisor (bxnode serve --workers N) makes") from None
        try:
            size = os.fstat(fd).st_size
            head = os.pread(fd, _HEADER.size, 0)
            magic, slots, count = _HEADER.unpack(head) if len(head) == _HEADER.size else (
                b"", 0, 0)
            if magic != _MAGIC or not 1 <= slots <= _MAX_SLOTS or size != _size(slots):
                raise SharedLimitsError(f"{path} is not a bxnode limits table")
            if count != workers or not 0 <= worker < workers:
                raise SharedLimitsError(f"{path} was made for {count} workers, not worker "
                                        f"{worker} of {workers}")
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        table = cls(path, fd, mm, worker, slots, count)
        with table.locked():
            table._clear_own()
        return table

    def close(self) -> None:
        with self._thread_lock:
            if self._fd < 0:
                return
            self._mm.close()
            os.close(self._fd)
            self._fd = -1

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    # --- with locked() held ------------------------------------------------------------

    def read(self, peer: str) -> tuple[float, float, int] | None:
        off = self._find(peer)
        if off is None:
            return None
        tokens, stamp = _TOKENS.unpack_from(self._mm, off + _KEY)
        return tokens, stamp, sum(self._flights.unpack_from(self._mm, off + _KEY + _TOKENS.size))

    def write(self, peer: str, tokens: float, stamp: float, *, now: float) -> bool:
        off = self._find(peer)
        if off is None:
            off = self._claim(peer, now)
            if off is None:
                return False
        _TOKENS.pack_into(self._mm, off + _KEY, tokens, stamp)
        return True

    def take_flight(self, peer: str, delta: int) -> bool:
        off = self._find(peer)
        if off is None:
            return False
        (own,) = _ONE.unpack_from(self._mm, off + self._own)
        if own + delta < 0:
            return False
        _ONE.pack_into(self._mm, off + self._own, own + delta)
        return True

    # --- the slots ---------------------------------------------------------------------

    def _find(self, peer: str) -> int | None:
        cached = self._slot_of.get(peer)
        if cached is not None:  # still this peer's, unless another process reused it
            off, key = cached
            if self._mm[off:off + _KEY] == key:
                return off
        else:
            key = _key(peer)
        for off in self._probe(key):
            k = self._mm[off:off + _KEY]
            if k == key:
                self._slot_of[peer] = (off, key)
                return off
            if k == _EMPTY:
                return None
        return None

    def _claim(self, peer: str, now: float) -> int | None:
        """A slot for a bucket not in the table: the first free one on its probe, else the
        first idle one; None (and a log line) if there is neither."""
        key = _key(peer)
        idle = None
        for off in self._probe(key):
            k = self._mm[off:off + _KEY]
            if k == _EMPTY:
                idle = off
                break
            if idle is None and self._idle(off, now):
                idle = off
        if idle is None:
            if time.monotonic() - self._full_logged > _FULL_LOG_EVERY_S or not self._full_logged:
                self._full_logged = time.monotonic()
                log.error("limits_table_full", slots=self.slots, path=str(self.path))
            return None
        _SLOT.pack_into(self._mm, idle, key, 0.0, now, *bytes(MAX_WORKERS))
        self._slot_of[peer] = (idle, key)
        return idle

    def _idle(self, off: int, now: float) -> bool:
        (_, stamp) = _TOKENS.unpack_from(self._mm, off + _KEY)
        return (now - stamp >= IDLE_REUSE_S
                and not any(self._flights.unpack_from(self._mm, off + _KEY + _TOKENS.size)))

    def _probe(self, key: bytes) -> Iterator[int]:
        n = self.slots
        first = int.from_bytes(key[:8], "little") % n
        for i in range(n):
            yield _HEADER_SIZE + ((first + i) % n) * _SLOT.size

    def _clear_own(self) -> None:
        mm = self._mm
        for i in range(self.slots):
            off = _HEADER_SIZE + i * _SLOT.size
            if mm[off:off + _KEY] != _EMPTY:
                _ONE.pack_into(mm, off + self._own, 0)
