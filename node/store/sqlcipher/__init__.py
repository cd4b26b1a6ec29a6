"""The node's one encrypted database (SQLCipher 4 via sqlcipher3).

Holds the watchlist, nonces, daily usage, receipts and the audit log.  The
raw 256-bit key is handed to SQLCipher as ``PRAGMA key = "x'..'"`` (no KDF),
and is the first statement on every connection, as SQLCipher requires.  A
wrong key fails on the first read ("file is not a database"): we turn that
into :class:`ConfigError` with reason ``wrong_db_key``.

Durability: WAL journal, and a transaction returns only once its commit is on disk, so
it survives power loss.  That is ``synchronous=FULL``'s guarantee ("an additional sync
operation of the WAL file happens after each transaction commit", SQLite's ``PRAGMA
synchronous``), taken one step later: the connection runs ``synchronous=NORMAL`` (SQLite
still syncs the WAL before each checkpoint, the database file after it and the WAL header
when the WAL is reused) and :meth:`Store.transaction` fsyncs the WAL file itself after
``COMMIT``, once the writers' lock is released, before it returns.  So the fsync is outside
the serial section every writer of the file shares (``serve --workers``): another process
commits while this one waits for the disk, and an fsync covers every commit written to the
WAL before it.  A later writer's answer that depends on this commit waits for its own
fsync, which comes after this commit's frames, so nothing is ever answered on data that
could roll back.  A failed fsync raises (``database_unavailable``): the caller answers
nothing.  Every request's writes (nonce, usage, receipt, audit entry) commit in one
transaction, so nothing is ever half-written.

Faults of the machine become :class:`EnvironmentFault` (UNAVAILABLE) with a precise
reason, by SQLite's primary result code (https://sqlite.org/rescode.html):
``SQLITE_FULL`` is ``database_full``; ``SQLITE_BUSY``/``SQLITE_LOCKED`` (another process
held the file longer than ``busy_timeout_s``, or another bxnode writer held the writers'
flock that long: flock.py) is ``database_locked``; ``SQLITE_IOERR``,
``SQLITE_CANTOPEN`` and ``SQLITE_PROTOCOL`` are ``database_unavailable``.  Other errors
(SQL errors: our bugs) pass unchanged.  A ``COMMIT`` that fails leaves no transaction
open behind it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlcipher3

from node.core.errors import ConfigError, EnvironmentFault
from node.core.ports import Receipt
from node.store.db import Dialect, FieldCodec, LockTimes, PlainCodec, SchemaNotApplied
from node.store.deferred import DeferredAccess, DeferredRows
from node.store.exchange import EXCHANGE_DDL, SqlNonceLedger, SqlReceiptStore, SqlUsageLedger
from node.store.sqlcipher.flock import WriterFlock
from node.store.watchlist import WATCHLIST_DDL, SqlWatchlistStore

__all__ = ["DEFAULT_BUSY_TIMEOUT_S", "ReceiptRow", "Store"]

#: How long a statement waits for another process's lock on the file before it fails with
#: ``database_locked`` (``[storage] busy_timeout_s``).  Below a peer's usual 10 s deadline,
#: so a border post's peer gets a precise refusal to retry elsewhere, not a timeout.
#: bxnode's own writers queue on ``<db>.lock`` first, for at most as long (flock.py).
DEFAULT_BUSY_TIMEOUT_S = 5.0

#: SQLite primary result codes that are the machine's fault, and their reasons.
_FAULTS = {13: "database_full",                                    # SQLITE_FULL
           5: "database_locked", 6: "database_locked",             # SQLITE_BUSY, _LOCKED
           10: "database_unavailable", 14: "database_unavailable",  # SQLITE_IOERR, _CANTOPEN
           15: "database_unavailable"}                             # SQLITE_PROTOCOL


def _fault(exc: sqlcipher3.Error) -> EnvironmentFault | None:
    code = getattr(exc, "sqlite_errorcode", None)
    reason = _FAULTS.get(code & 0xFF) if isinstance(code, int) else None
    return None if reason is None else EnvironmentFault(f"database: {exc}", reason=reason)


@contextlib.contextmanager
def _faults() -> Iterator[None]:
    """Turn SQLite's environment faults into :class:`EnvironmentFault` (see the module)."""
    try:
        yield
    except sqlcipher3.Error as exc:
        fault = _fault(exc)
        if fault is None:
            raise
        raise fault from exc

SCHEMA_VERSION = 2  # 2: documents and persons gained the column ``sealed`` (PostgreSQL)

_META_DDL = "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);"
#: The core tables (meta, the exchange's ledgers, the watchlist), for node.store.schema.
_SCHEMA = _META_DDL + EXCHANGE_DDL + WATCHLIST_DDL


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: The receipt value (kept under its old name for callers of the embedded store).
ReceiptRow = Receipt


class Store(DeferredAccess):
    """One connection to the node database.  Not thread-safe: one owner at a time.

    Implements :class:`node.store.db.Database` for the embedded backend.
    """

    dialect: Dialect = "sqlite"
    codec: FieldCodec = PlainCodec()

    def __init__(self, *, conn: Any, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._depth = 0
        #: Changes whenever a transaction begins, anything rolls back in SQL or deferred rows
        #: are written: what was read inside the open transaction under the same epoch
        #: still holds (the audit log's next sequence number, node/store/audit_log.py).
        self.write_epoch = 0
        #: The open transaction's deferred rows and lazy savepoints (node/store/deferred.py).
        self._deferred = DeferredRows()
        self._key = b""
        self._before_commit: dict[str, Callable[[], None]] = {}
        self._flock: WriterFlock | None = None
        #: The WAL file, held open to fsync it after each commit (``_sync_wal``).
        self._wal_fd: int | None = None
        #: The writers' lock: time waited for it and held, per transaction (LockTimes).
        self.lock_times = LockTimes()

    @classmethod
    def open(cls, path: Path, key: bytes, *, create: bool = False,
             busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Store:
        if len(key) != 32:
            raise ConfigError("database key must be 32 bytes", reason="bad_db_key")
        if not create and not path.exists():
            raise ConfigError(f"database {path} does not exist (run 'bxnode init')",
                              reason="no_database")
        try:
            conn = sqlcipher3.connect(str(path), isolation_level=None, timeout=busy_timeout_s,
                                      check_same_thread=False)
        except sqlcipher3.Error as exc:
            raise EnvironmentFault(f"cannot open database {path}: {exc}") from exc
        conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlcipher3.DatabaseError as exc:
            conn.close()
            raise ConfigError(
                f"the database key does not open {path}: wrong key or not a bxnode database",
                reason="wrong_db_key",
            ) from exc
        store = cls(conn=conn, path=path)
        store._key = key
        store._flock = WriterFlock.open(f"{path}.lock", busy_timeout_s)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # + the WAL fsync after each commit
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA secure_delete = ON")
            store._migrate()
        except BaseException:
            store.close()  # a refused database leaves no open file behind
            raise
        if create:
            os.chmod(path, 0o600)
        return store

    def committed_view(self) -> Store:
        """A second, read-only connection to the file that sees only committed data (WAL
        readers never see an open transaction's writes): what the database held before
        this connection's transaction (the watchlist import asks it which documents were
        there before).  No migration, no writer lock; close it when done."""
        try:
            conn = sqlcipher3.connect(str(self.path), isolation_level=None,
                                      check_same_thread=False)
        except sqlcipher3.Error as exc:
            raise EnvironmentFault(f"cannot open database {self.path}: {exc}") from exc
        conn.execute(f"PRAGMA key = \"x'{self._key.hex()}'\"")
        conn.execute("PRAGMA query_only = ON")
        return Store(conn=conn, path=self.path)

    def close(self) -> None:
        self._conn.close()
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        if self._flock is not None:
            self._flock.close()
            self._flock = None

    def reader_spec(self) -> tuple[Path, bytes]:
        """Path and key for another process to open this database (e.g. to verify in
        parallel).  Hand it over a pipe, never a file: it is the database key."""
        return self.path, self._key

    def _migrate(self) -> None:
        with self.transaction():
            self._conn.execute(_META_DDL)
            row = self._conn.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise ConfigError("database was written by a newer bxnode", reason="schema_newer")
            if row is not None and int(row[0]) < 2:  # 1 -> 2: the column ``sealed``
                for table in ("documents", "persons"):
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN sealed BLOB")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                               (str(SCHEMA_VERSION),))
        self.nonces = SqlNonceLedger(self)
        self.usage = SqlUsageLedger(self)
        self.receipt_store = SqlReceiptStore(self)
        self.watchlist = SqlWatchlistStore(self)

    # --- transactions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Reads only, each statement its own snapshot as outside any transaction, with no
        writer lock (Database.reading); a write or a transaction inside raises."""
        if self._depth or self._reading:
            raise RuntimeError("reading() inside a transaction")
        with self._reads_only():
            yield

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; nested calls become savepoints."""
        if self._reading:
            raise RuntimeError("no transaction inside reading()")
        if self._depth:
            with self.savepoint():
                yield
            return
        committed = False
        with self._writer_lock():
            with _faults():
                self._conn.execute("BEGIN IMMEDIATE")
            self.write_epoch += 1
            self._depth = 1
            try:
                yield
                while self._before_commit:  # hooks may register further hooks
                    self._before_commit.pop(next(iter(self._before_commit)))()
                self._materialize()
            except BaseException:
                self.write_epoch += 1
                self._deferred.clear()
                if self._conn.in_transaction:  # SQLite may have rolled back already
                    self._conn.execute("ROLLBACK")
                raise
            else:
                try:
                    with _faults():
                        self._conn.execute("COMMIT")
                    committed = True
                except BaseException:
                    if self._conn.in_transaction:  # e.g. SQLITE_FULL: never left open
                        self._conn.execute("ROLLBACK")
                    raise
            finally:
                self._depth = 0
                self._before_commit.clear()
                self._deferred.clear()
        if committed:
            self._sync_wal()

    def _sync_wal(self) -> None:
        """fsync the WAL file: the commit just written is on disk (the module's
        "Durability").  No WAL file: it was checkpointed into the database file, which
        SQLite synced, and removed.  A new WAL file (another inode) has its directory
        entry synced too, as SQLite does for a WAL it creates."""
        wal = f"{self.path}-wal"
        try:
            inode = os.stat(wal).st_ino
            if self._wal_fd is None or os.fstat(self._wal_fd).st_ino != inode:
                if self._wal_fd is not None:
                    os.close(self._wal_fd)
                    self._wal_fd = None
                self._wal_fd = os.open(wal, os.O_RDONLY | os.O_CLOEXEC)
                folder = os.open(self.path.parent, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)
            os.fsync(self._wal_fd)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise EnvironmentFault(f"database: the commit could not be synced to disk: {exc}",
                                   reason="database_unavailable") from exc

    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """The file's writers queue on ``<db>.lock`` (flock) before ``BEGIN IMMEDIATE``.

        SQLite's own lock is what keeps the file consistent; but a writer it turns away
        waits in a busy handler that sleeps and polls, so several processes writing at
        once (``serve --workers``, the CLI beside a running node) would stall each other
        by milliseconds.  The kernel hands a flock to the next waiter the moment it is
        released; one held longer than the busy timeout is ``database_locked`` (flock.py).
        A database opened read-only for verification takes no lock.
        """
        if self._flock is None:
            yield
            return
        asked = time.perf_counter()
        self._flock.acquire()
        got = time.perf_counter()
        try:
            yield
        finally:
            self._flock.release()
            self.lock_times.add(wait_s=got - asked, hold_s=time.perf_counter() - got)

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @property
    def holds_writer_lock(self) -> bool:
        """Whether no other writer can change the database until this transaction ends
        (``BEGIN IMMEDIATE``: any open transaction)."""
        return self._depth > 0

    def before_commit(self, key: str, fn: Callable[[], None]) -> None:
        """Run ``fn`` inside the open transaction just before its outermost ``COMMIT``.

        Registered once per ``key`` and transaction; if ``fn`` raises, the whole
        transaction rolls back (the Merkle audit log seals its checkpoint this way).
        """
        if not self._depth:
            raise RuntimeError("before_commit needs an open transaction")
        self._before_commit.setdefault(key, fn)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A savepoint, issued in SQL only once something inside it writes directly (lazy:
        node/store/deferred.py); rows deferred inside it are dropped if it rolls back."""
        if not self._depth:  # outside a transaction a savepoint is one
            with self.transaction():
                yield
            return
        name = f"sp{self._depth}"
        self._deferred.open_level()
        self._depth += 1
        try:
            yield
        except BaseException:
            if self._deferred.rollback_level():
                self.write_epoch += 1
                if self._conn.in_transaction:  # SQLite may have rolled back the whole of it
                    self._conn.execute(f"ROLLBACK TO {name}")
                    self._conn.execute(f"RELEASE {name}")
            raise
        else:
            if self._deferred.release_level():
                self._conn.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    # --- deferred rows (node/store/deferred.py) ---------------------------------------------

    def defer(self, table: str, sql: str, row: Sequence[Any], *,
              key: Hashable | None = None) -> None:
        """Write ``sql`` with ``row`` (one row of ``table``) with the transaction's other
        rows of that statement, at the latest before ``COMMIT``; at once outside one."""
        if not self._depth:
            self.execute(sql, row)
            return
        self._deferred.add(table, sql, row, key)

    def query_past_deferred(self, sql: str, args: Sequence[Any] = ()
                            ) -> tuple[Any, ...] | None:
        """``query_one`` without writing the deferred rows first: for the owner of those
        rows, which adds what it deferred itself (:meth:`pending`)."""
        with _faults():
            row = self._conn.execute(sql, tuple(args)).fetchone()
        return None if row is None else tuple(row)

    def rows_past_deferred(self, sql: str, args: Sequence[Any] = ()
                           ) -> list[tuple[Any, ...]]:
        """``query`` without writing the deferred rows first (see query_past_deferred)."""
        with _faults():
            return [tuple(r) for r in self._conn.execute(sql, tuple(args))]

    def _materialize(self) -> None:
        """Write the deferred rows and issue the lazy savepoints (before a direct write, a
        read of a table with deferred rows, and ``COMMIT``)."""
        if not self._deferred.dirty:
            return
        with _faults():
            if self._deferred.materialize(self._write_many, self._issue_savepoint):
                self.write_epoch += 1

    def _write_many(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        return int(self._conn.executemany(sql, rows).rowcount)

    def _issue_savepoint(self, level: int) -> None:
        self._conn.execute(f"SAVEPOINT sp{level}")

    def lock(self, name: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` holds the file's write lock (Database.lock)."""
        if not self._depth:
            raise RuntimeError("lock needs an open transaction")

    # --- for modules that own tables of their own (crossings, Merkle log, registry) ----------

    def ensure_schema(self, name: str, ddl: str) -> None:
        """Apply ``ddl`` (CREATE ... IF NOT EXISTS statements) once; ``name`` versions it."""
        key = f"schema:{name}"
        digest = str(hash_text(ddl))
        if self.get_meta(key) == digest:
            return
        if self._reading:  # no write here: the caller learns the tables are not there yet
            raise SchemaNotApplied(f"schema {name} is not applied yet")
        with self.transaction():
            # Again under the write lock: another process (a --workers sibling, a CLI command)
            # may have applied it between the read above and BEGIN IMMEDIATE.
            if self.get_meta(key) == digest:
                return
            self._direct_write()
            for stmt in ddl.split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)
            self.set_meta(key, digest)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; returns the row count."""
        self._direct_write()
        with _faults():
            return int(self._conn.execute(sql, tuple(args)).rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        self._direct_write()
        with _faults():
            return int(self._conn.executemany(sql, rows).rowcount)

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._deferred.touches(sql):
            self._materialize()
        with _faults():
            return [tuple(r) for r in self._conn.execute(sql, tuple(args))]

    def stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows one by one, without building a list (full scans of large tables)."""
        if self._deferred.touches(sql):
            self._materialize()
        with _faults():
            yield from self._conn.execute(sql, tuple(args))

    def query_one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        if self._deferred.touches(sql):
            self._materialize()
        with _faults():
            row = self._conn.execute(sql, tuple(args)).fetchone()
        return None if row is None else tuple(row)

    # --- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with _faults():
            row = self._conn.execute("SELECT v FROM meta WHERE k=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._direct_write()
        with _faults():
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- the ports' adapters, kept as methods for the embedded store's older callers ------

    def insert_documents(self, rows: Iterable[tuple[str, ...]]) -> int:
        return self.watchlist.insert_documents(rows)

    def insert_persons(self, rows: Iterable[tuple[str, ...]]) -> int:
        return self.watchlist.insert_persons(rows)

    def find_documents_many(self, keys: Sequence[tuple[str, str, str]],
                            today: str) -> dict[tuple[str, str, str], list[tuple[str, str, str]]]:
        return self.watchlist.find_documents_many(keys, today)

    def iter_persons(self, today: str) -> Iterator[tuple[str, ...]]:
        return self.watchlist.iter_persons(today)

    def person(self, owner_ref: str) -> tuple[str, ...] | None:
        return self.watchlist.person(owner_ref)

    def watchlist_counts(self) -> tuple[int, int]:
        return self.watchlist.counts()

    def remember_nonce(self, node_id: str, nonce: bytes, *, expires_ms: int,
                       now_ms: int) -> bool:
        return self.nonces.remember(node_id, nonce, expires_ms=expires_ms, now_ms=now_ms)

    def items_today(self, node_id: str, day: str) -> int:
        return self.usage.items_today(node_id, day)

    def add_usage(self, node_id: str, day: str, items: int) -> None:
        self.usage.add(node_id, day, items)

    def put_receipt(self, r: Receipt) -> None:
        self.receipt_store.put(r)

    def receipts(self, *, direction: str | None = None) -> list[Receipt]:
        return self.receipt_store.all(direction=direction)
