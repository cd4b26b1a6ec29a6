"""Snapshots of the SQLCipher database, and putting a restored one in place.

:func:`snapshot` copies the database with SQLite's online backup API
(https://sqlite.org/backup.html, ``sqlite3_backup_step(-1)``: every page in one step, under
one read transaction) into a new file under the same SQLCipher key: a consistent state as
of one commit, while ``serve`` goes on writing (WAL: readers do not block the writer).
The copy never exists unencrypted: it is a SQLCipher file, and the backup encrypts it again
to the operator's key.

:func:`install` moves the current database aside (with its ``-wal`` and ``-shm``, which
may hold committed transactions) to ``<db>.replaced-<time>`` -- it may hold the very tail a
restored log needs (``bxnode audit recover-tail --from``) -- and renames the restored file
into place.  Nothing is deleted.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import sqlcipher3

from node.core.errors import EnvironmentFault

__all__ = ["install", "private_temp", "snapshot"]


def _connect(path: Path, key: bytes, *, timeout_s: float) -> sqlcipher3.Connection:
    conn = sqlcipher3.connect(str(path), isolation_level=None, timeout=timeout_s,
                              check_same_thread=False)
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    return conn


@contextlib.contextmanager
def private_temp(beside: Path, what: str) -> Iterator[Path]:
    """A new, empty 0600 file next to ``beside`` (same file system: renamed atomically);
    removed on exit unless it was renamed away."""
    path = beside.with_name(f".{beside.name}.{what}-{os.getpid()}")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        yield path
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def snapshot(path: Path, key: bytes, dest: Path, *, timeout_s: float = 5.0) -> None:
    """Copy the database at ``path`` into ``dest`` (an empty file), consistently."""
    src = _connect(path, key, timeout_s=timeout_s)
    try:
        dst = _connect(dest, key, timeout_s=timeout_s)
        try:
            src.backup(dst, pages=-1)
        finally:
            dst.close()
    except sqlcipher3.Error as exc:
        raise EnvironmentFault(f"the database snapshot failed: {exc}",
                               reason="database_unavailable") from exc
    finally:
        src.close()


def install(restored: Path, db_path: Path, *, stamp: str) -> Path | None:
    """Put ``restored`` in place of ``db_path``; returns where the old database went
    (None if there was none)."""
    aside: Path | None = db_path.with_name(f"{db_path.name}.replaced-{stamp}")
    moved = False
    # every one of them, the main file first: a -wal left behind would be applied to the
    # restored file; one left by an earlier, interrupted restore goes aside as well
    for suffix in ("", "-wal", "-shm"):
        old = Path(f"{db_path}{suffix}")
        if old.exists():
            os.replace(old, f"{aside}{suffix}")
            moved = True
    os.replace(restored, db_path)
    fd = os.open(db_path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return aside if moved else None
