"""SQLCipher when the machine fails: a full file, another process's lock (issue 12 §4).

The faults are SQLite's own: ``PRAGMA max_page_count`` makes the file "full" exactly as a
full disk does (SQLITE_FULL), and a second connection holding ``BEGIN EXCLUSIVE`` is
another process's lock (SQLITE_BUSY after the busy timeout); a second descriptor holding
``<db>.lock`` is another bxnode writer stuck holding the writers' flock.  The real disk and
the real process are tests/integration/test_faults.py.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest
import sqlcipher3

from node.config import StorageSettings, load_config
from node.core.errors import ConfigError, EnvironmentFault
from node.store.sqlcipher import DEFAULT_BUSY_TIMEOUT_S, Store
from tests.waiting import until

KEY = bytes(range(32))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "node.db", KEY, create=True, busy_timeout_s=0.3)


def _fill_to_the_limit(store: Store) -> None:
    (pages,) = store.query_one("PRAGMA page_count") or (0,)
    store.query_one(f"PRAGMA max_page_count = {int(pages) + 2}")
    store.execute("CREATE TABLE IF NOT EXISTS filler (v BLOB)")


def test_a_full_file_is_database_full_and_leaves_no_transaction_open(store: Store) -> None:
    _fill_to_the_limit(store)
    with pytest.raises(EnvironmentFault) as exc, store.transaction():
        for _ in range(50):
            store.execute("INSERT INTO filler VALUES (randomblob(4000))")
    assert (exc.value.status, exc.value.reason) == ("UNAVAILABLE", "database_full")
    assert "database or disk is full" in str(exc.value)
    assert not store.in_transaction
    # a nested savepoint that hits the limit raises the same, not "no such savepoint"
    with pytest.raises(EnvironmentFault) as exc, store.transaction(), store.savepoint():
        for _ in range(50):
            store.execute("INSERT INTO filler VALUES (randomblob(4000))")
    assert exc.value.reason == "database_full"
    # room again: the same connection writes on, no reopening
    store.query_one("PRAGMA max_page_count = 1000000")
    with store.transaction():
        store.set_meta("after", "full")
    assert store.get_meta("after") == "full"


def test_sql_errors_are_not_environment_faults(store: Store) -> None:
    with pytest.raises(sqlcipher3.OperationalError):
        store.query("SELECT * FROM no_such_table")


def test_another_processs_lock_is_database_locked_after_the_busy_timeout(
        store: Store, tmp_path: Path) -> None:
    other = sqlcipher3.connect(str(tmp_path / "node.db"), isolation_level=None)
    other.execute(f"PRAGMA key = \"x'{KEY.hex()}'\"")
    other.execute("BEGIN EXCLUSIVE")
    other.execute("INSERT INTO meta VALUES ('held', '1')")
    try:
        started = time.monotonic()
        with pytest.raises(EnvironmentFault) as exc, store.transaction():
            store.set_meta("k", "v")
        waited = time.monotonic() - started
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert (exc.value.status, exc.value.reason) == ("UNAVAILABLE", "database_locked")
    assert 0.25 < waited < 3, waited
    assert not store.in_transaction
    with store.transaction():  # released: the next transaction goes through
        store.set_meta("k", "v")
    assert store.get_meta("k") == "v"


def _hold_writers_lock(db: Path) -> int:
    """The writers' flock on ``<db>.lock`` as another bxnode writer holds it (a separate
    open file description: it conflicts exactly as another process's does)."""
    fd = os.open(f"{db}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _free(db: Path) -> bool:
    """Whether another writer could take the writers' flock now."""
    fd = os.open(f"{db}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also releases it
    return True


def test_a_writer_stuck_holding_the_writers_lock_is_database_locked_not_a_hang(
        store: Store, tmp_path: Path) -> None:
    """Another bxnode writer holds ``<db>.lock`` and stops (suspended, its disk hung): the
    store's transaction waits the busy timeout for it and fails ``database_locked`` (it
    used to wait for ever), leaves nothing open, and when the holder lets go the lock
    comes back to whoever asks, not to the writer that gave up."""
    db = tmp_path / "node.db"
    holder = _hold_writers_lock(db)
    try:
        for _ in range(2):  # the second waits for the same pending flock
            started = time.monotonic()
            with pytest.raises(EnvironmentFault) as exc, store.transaction():
                store.set_meta("k", "v")
            waited = time.monotonic() - started
            assert (exc.value.status, exc.value.reason) == ("UNAVAILABLE", "database_locked")
            assert "busy_timeout_s" in str(exc.value)
            assert 0.25 < waited < 3, waited
            assert not store.in_transaction
    finally:
        os.close(holder)  # the holder lets go
    assert store.get_meta("k") is None  # nothing was written
    until("the lock handed back", lambda: _free(db))  # the one that gave up keeps none
    with store.transaction():  # and the next transaction goes through
        store.set_meta("k", "v")
    assert store.get_meta("k") == "v"
    assert _free(db)  # released after its commit


def test_a_writer_waiting_for_the_writers_lock_gets_it_when_it_frees(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    store = Store.open(db, KEY, create=True, busy_timeout_s=10)
    holder = _hold_writers_lock(db)
    threading.Timer(0.1, os.close, (holder,)).start()  # let go within the busy timeout
    with store.transaction():
        store.set_meta("k", "waited")
    assert store.get_meta("k") == "waited" and _free(db)
    holder = _hold_writers_lock(db)  # and a second time, through a new helper
    threading.Timer(0.1, os.close, (holder,)).start()
    with store.transaction():
        store.set_meta("k", "again")
    assert store.get_meta("k") == "again" and _free(db)
    store.close()  # no helper left behind holding the file
    assert _free(db)


def _config(tmp_path: Path, storage: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f'[node]\nid = "KAZ-BS"\ncountry = "KAZ"\n\n[storage]\n{storage}\n')
    return path


def test_busy_timeout_s_is_read_checked_and_defaults_below_a_peers_deadline(
        tmp_path: Path) -> None:
    assert StorageSettings().busy_timeout_s == DEFAULT_BUSY_TIMEOUT_S == 5
    cfg = load_config(_config(tmp_path, "busy_timeout_s = 2"))
    assert cfg.storage.busy_timeout_s == 2
    for bad in ("0", "301", '"5"', "true", "2.5"):
        with pytest.raises(ConfigError) as exc:
            load_config(_config(tmp_path, f"busy_timeout_s = {bad}"))
        assert str(exc.value) == "config: [storage] busy_timeout_s must be 1..300"
    # on PostgreSQL it is the sessions' lock_timeout (tests/unit/store/test_postgresql.py)
    cfg = load_config(_config(tmp_path, 'backend = "postgresql"\ndsn = "host=x dbname=y"\n'
                                        "busy_timeout_s = 2"))
    assert (cfg.storage.backend, cfg.storage.busy_timeout_s) == ("postgresql", 2)
    assert load_config(_config(tmp_path, 'backend = "postgresql"\ndsn = "host=x dbname=y"'
                               )).storage.busy_timeout_s == 5
    with pytest.raises(ConfigError) as exc:
        load_config(_config(tmp_path, 'backend = "postgresql"\ndsn = "host=x dbname=y"\n'
                                      "busy_timeout_s = 0"))
    assert str(exc.value) == "config: [storage] busy_timeout_s must be 1..300"


def test_a_schema_step_another_process_applied_meanwhile_is_not_applied_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `serve --workers` siblings start together: both read "not applied", one applies
    the step; the other must see that under the write lock instead of re-running an
    ALTER TABLE that now fails ("duplicate column name", seen in CI)."""
    path = tmp_path / "node.db"
    first = Store.open(path, KEY, create=True)
    second = Store.open(path, KEY)
    step = "CREATE TABLE IF NOT EXISTS t (a INTEGER); ALTER TABLE t ADD COLUMN b BLOB"
    real_get_meta = second.get_meta
    reads: list[str] = []

    def stale_first_read(key: str) -> str | None:
        reads.append(key)
        if len(reads) == 1:  # the read before BEGIN IMMEDIATE: the sibling applies it now
            first.ensure_schema("race", step)
            return None
        return real_get_meta(key)

    monkeypatch.setattr(second, "get_meta", stale_first_read)
    second.ensure_schema("race", step)
    assert reads == ["schema:race", "schema:race"]
    assert [r[1] for r in second.query("PRAGMA table_info(t)")] == ["a", "b"]
    first.close()
    second.close()
