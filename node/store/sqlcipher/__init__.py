"""The node's one encrypted database (SQLCipher 4 via sqlcipher3).

Holds the watchlist, nonces, daily usage, receipts and the audit log.  The
raw 256-bit key is handed to SQLCipher as ``PRAGMA key = "x'..'"`` (no KDF),
and is the first statement on every connection, as SQLCipher requires.  A
wrong key fails on the first read ("file is not a database"): we turn that
into :class:`ConfigError` with reason ``wrong_db_key``.

Durability: WAL journal with ``synchronous=FULL``: a committed transaction
survives power loss.  Every request's writes (nonce, usage, receipt, audit
entry) commit in one transaction, so nothing is ever half-written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlcipher3

from node.core.errors import ConfigError, EnvironmentFault
from node.store.db import Dialect, FieldCodec, PlainCodec

__all__ = ["ReceiptRow", "Store"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    issuing_state TEXT NOT NULL, number TEXT NOT NULL, doc_type TEXT NOT NULL,
    owner_ref TEXT NOT NULL, action TEXT NOT NULL, contact TEXT NOT NULL,
    expires TEXT NOT NULL, loss_type TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (number, issuing_state, doc_type, owner_ref)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS persons (
    owner_ref TEXT PRIMARY KEY, family_name TEXT NOT NULL, given_names TEXT NOT NULL,
    patronymic TEXT NOT NULL, dob TEXT NOT NULL, nationality TEXT NOT NULL, sex TEXT NOT NULL,
    action TEXT NOT NULL, contact TEXT NOT NULL, expires TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nonces (
    node_id TEXT NOT NULL, nonce BLOB NOT NULL, expires_ms INTEGER NOT NULL,
    PRIMARY KEY (node_id, nonce)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_ms);
CREATE TABLE IF NOT EXISTS usage (
    node_id TEXT NOT NULL, day TEXT NOT NULL, items INTEGER NOT NULL,
    PRIMARY KEY (node_id, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipts (
    id INTEGER PRIMARY KEY, direction TEXT NOT NULL, peer TEXT NOT NULL,
    request_digest BLOB NOT NULL, request_env BLOB NOT NULL, response_env BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_digest ON receipts (request_digest);
"""


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ReceiptRow:
    direction: str
    peer: str
    request_digest: bytes
    request_env: bytes
    response_env: bytes
    created_ms: int


class Store:
    """One connection to the node database.  Not thread-safe: one owner at a time.

    Implements :class:`node.store.db.Database` for the embedded backend.
    """

    dialect: Dialect = "sqlite"
    codec: FieldCodec = PlainCodec()

    def __init__(self, *, conn: Any, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._depth = 0
        self._nonces_purged_ms = 0
        self._key = b""
        self._before_commit: dict[str, Callable[[], None]] = {}

    @classmethod
    def open(cls, path: Path, key: bytes, *, create: bool = False) -> Store:
        if len(key) != 32:
            raise ConfigError("database key must be 32 bytes", reason="bad_db_key")
        if not create and not path.exists():
            raise ConfigError(f"database {path} does not exist (run 'bxnode init')",
                              reason="no_database")
        try:
            conn = sqlcipher3.connect(str(path), isolation_level=None, timeout=30.0,
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
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA secure_delete = ON")
            store._migrate()
        except BaseException:
            conn.close()  # a refused database leaves no open file behind
            raise
        if create:
            os.chmod(path, 0o600)
        return store

    def close(self) -> None:
        self._conn.close()

    def reader_spec(self) -> tuple[Path, bytes]:
        """Path and key for another process to open this database (e.g. to verify in
        parallel).  Hand it over a pipe, never a file: it is the database key."""
        return self.path, self._key

    def _migrate(self) -> None:
        with self.transaction():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)
            row = self._conn.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                                   (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise ConfigError("database was written by a newer bxnode", reason="schema_newer")

    # --- transactions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; nested calls become savepoints."""
        if self._depth:
            with self.savepoint():
                yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
            while self._before_commit:  # hooks may register further hooks
                self._before_commit.pop(next(iter(self._before_commit)))()
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._depth = 0
            self._before_commit.clear()

    @property
    def in_transaction(self) -> bool:
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
        name = f"sp{self._depth}"
        self._conn.execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._conn.execute(f"ROLLBACK TO {name}")
            self._conn.execute(f"RELEASE {name}")
            raise
        else:
            self._conn.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    def lock(self, name: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` holds the file's write lock (Database.lock)."""
        if not self._depth:
            raise RuntimeError("lock needs an open transaction")

    # --- for modules that own tables of their own (crossings, Merkle log, registry) ----------

    def ensure_schema(self, name: str, ddl: str) -> None:
        """Apply ``ddl`` (CREATE ... IF NOT EXISTS statements) once; ``name`` versions it."""
        key = f"schema:{name}"
        if self.get_meta(key) == str(hash_text(ddl)):
            return
        with self.transaction():
            for stmt in ddl.split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)
            self.set_meta(key, str(hash_text(ddl)))

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; returns the row count."""
        return int(self._conn.execute(sql, tuple(args)).rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        return int(self._conn.executemany(sql, rows).rowcount)

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.execute(sql, tuple(args))]

    def stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows one by one, without building a list (full scans of large tables)."""
        yield from self._conn.execute(sql, tuple(args))

    def query_one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self._conn.execute(sql, tuple(args)).fetchone()
        return None if row is None else tuple(row)

    # --- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT v FROM meta WHERE k=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- watchlist --------------------------------------------------------------------------

    def insert_documents(self, rows: Iterable[tuple[str, ...]]) -> int:
        """Rows: (issuing_state, number, doc_type, owner_ref, action, contact, expires, loss)."""
        cur = self._conn.executemany(
            "INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?,?,?)", rows)
        return int(cur.rowcount)

    def insert_persons(self, rows: Iterable[tuple[str, ...]]) -> int:
        """Rows: (owner_ref, family, given, patronymic, dob, nationality, sex, action, contact,
        expires)."""
        cur = self._conn.executemany(
            "INSERT OR REPLACE INTO persons VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        return int(cur.rowcount)

    def find_documents_many(self, keys: Sequence[tuple[str, str, str]],
                            today: str) -> dict[tuple[str, str, str], list[tuple[str, str, str]]]:
        """Live records for many (number, issuing_state, doc_type) keys in one statement."""
        found: dict[tuple[str, str, str], list[tuple[str, str, str]]] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 5000):  # 3 parameters each, under SQLite's 32,766
            chunk = unique[i:i + 5000]
            values = ",".join("(?,?,?)" for _ in chunk)  # placeholders only, never data
            sql = ("SELECT number, issuing_state, doc_type, owner_ref, action, contact "
                   "FROM documents WHERE expires >= ? AND (number, issuing_state, doc_type) "
                   "IN (VALUES " + values + ") ORDER BY owner_ref")
            args: list[str] = [v for k in chunk for v in k]
            for r in self._conn.execute(sql, (today, *args)):
                found.setdefault((r[0], r[1], r[2]), []).append((r[3], r[4], r[5]))
        return found

    def iter_persons(self, today: str) -> Iterator[tuple[str, ...]]:
        yield from (tuple(r) for r in self._conn.execute(
            "SELECT owner_ref, family_name, given_names, patronymic, dob, nationality, sex, "
            "action, contact, expires FROM persons WHERE expires >= ?", (today,)))

    def person(self, owner_ref: str) -> tuple[str, ...] | None:
        row = self._conn.execute(
            "SELECT owner_ref, family_name, given_names, patronymic, dob, nationality, sex, "
            "action, contact, expires FROM persons WHERE owner_ref=?", (owner_ref,)).fetchone()
        return None if row is None else tuple(row)

    def watchlist_counts(self) -> tuple[int, int]:
        d = self._conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        p = self._conn.execute("SELECT count(*) FROM persons").fetchone()[0]
        return int(d), int(p)

    # --- nonces and usage -------------------------------------------------------------------

    def remember_nonce(self, node_id: str, nonce: bytes, *, expires_ms: int,
                       now_ms: int) -> bool:
        """Record a nonce; False when it was seen before and has not yet expired."""
        if now_ms - self._nonces_purged_ms > 1000:  # purge expired nonces once a second
            self._conn.execute("DELETE FROM nonces WHERE expires_ms < ?", (now_ms,))
            self._nonces_purged_ms = now_ms
        row = self._conn.execute("SELECT expires_ms FROM nonces WHERE node_id=? AND nonce=?",
                                 (node_id, nonce)).fetchone()
        if row is not None and int(row[0]) >= now_ms:
            return False
        cur = self._conn.execute(
            "INSERT OR REPLACE INTO nonces VALUES (?, ?, ?)", (node_id, nonce, expires_ms))
        return bool(cur.rowcount == 1)

    def items_today(self, node_id: str, day: str) -> int:
        row = self._conn.execute(
            "SELECT items FROM usage WHERE node_id=? AND day=?", (node_id, day)).fetchone()
        return 0 if row is None else int(row[0])

    def add_usage(self, node_id: str, day: str, items: int) -> None:
        self._conn.execute(
            "INSERT INTO usage VALUES (?, ?, ?) ON CONFLICT(node_id, day) "
            "DO UPDATE SET items = items + excluded.items", (node_id, day, items))

    # --- receipts ---------------------------------------------------------------------------

    def put_receipt(self, r: ReceiptRow) -> None:
        self._conn.execute(
            "INSERT INTO receipts (direction, peer, request_digest, request_env, response_env, "
            "created_ms) VALUES (?,?,?,?,?,?)",
            (r.direction, r.peer, r.request_digest, r.request_env, r.response_env, r.created_ms))

    def receipts(self, *, direction: str | None = None) -> list[ReceiptRow]:
        q = ("SELECT direction, peer, request_digest, request_env, response_env, created_ms "
             "FROM receipts")
        args: tuple[str, ...] = ()
        if direction:
            q += " WHERE direction=?"
            args = (direction,)
        return [ReceiptRow(*r) for r in self._conn.execute(q + " ORDER BY id", args)]
