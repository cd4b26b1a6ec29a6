"""SQLCipher durability with the fsync outside the writers' lock: a transaction returns only
after the WAL file holding its commit was fsynced, the lock is free while it waits for the
disk (another writer may commit meanwhile), and a failed fsync is an error the caller
sees (``database_unavailable``), never a silent success."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from node.core.errors import EnvironmentFault
from node.store.sqlcipher import Store

KEY = bytes(range(100, 132))


def fsync_in_this_thread(monkeypatch: pytest.MonkeyPatch, fake: Callable[[int], None]) -> None:
    """``os.fsync`` is ``fake`` in the test's thread only: it is the whole process's, and
    another test's thread still finishing may call it meanwhile."""
    mine, real = threading.get_ident(), os.fsync

    def fsync(fd: int) -> None:
        (fake if threading.get_ident() == mine else real)(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_commit_returns_after_its_wal_is_fsynced_with_the_lock_released(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Store.open(tmp_path / "node.db", KEY, create=True)
    assert db.query_one("PRAGMA synchronous") == (1,)  # NORMAL: the WAL sync is ours
    wal = os.stat(tmp_path / "node.db-wal").st_ino
    synced: list[tuple[int, bool]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        probe = os.open(tmp_path / "node.db.lock", os.O_RDWR)
        try:  # another writer could take the lock now
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(probe, fcntl.LOCK_UN)
            free = True
        except BlockingIOError:
            free = False
        finally:
            os.close(probe)
        synced.append((os.fstat(fd).st_ino, free))
        real(fd)

    fsync_in_this_thread(monkeypatch, fsync)
    with db.transaction():
        db.set_meta("k", "1")
        assert synced == []  # not before COMMIT
    assert (wal, True) in synced and synced[-1] == (wal, True)
    synced.clear()
    with db.transaction():
        db.set_meta("k", "2")
    assert synced == [(wal, True)]  # the WAL file held open: no directory sync again
    db.close()


def test_a_failed_fsync_fails_the_transaction(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    db = Store.open(tmp_path / "node.db", KEY, create=True)

    def fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    fsync_in_this_thread(monkeypatch, fsync)
    with pytest.raises(EnvironmentFault) as exc, db.transaction():
        db.set_meta("k", "1")
    assert exc.value.reason == "database_unavailable"
    assert "synced" in exc.value.message
    monkeypatch.undo()
    with db.transaction():  # the next transaction works again
        db.set_meta("k", "2")
    assert db.get_meta("k") == "2"
    db.close()
