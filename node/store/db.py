"""The one shape every storage backend gives the SQL modules under ``node/store/``.

Both backends (SQLCipher, the embedded default, and PostgreSQL for replicated nodes)
implement :class:`Database`.  The SQL modules beside this file (``node/store/*.py``)
are written once against it, in the portable subset both engines accept:

* placeholders are ``?`` (the PostgreSQL adapter rewrites them to ``%s``; our SQL never
  holds a literal ``?``);
* upserts are ``INSERT ... ON CONFLICT (...) DO UPDATE/NOTHING`` (never ``INSERT OR
  REPLACE``);
* DDL uses ``INTEGER``, ``TEXT``, ``BLOB`` and ``INTEGER PRIMARY KEY`` (an automatic row
  id); the PostgreSQL adapter maps them to ``BIGINT``, ``TEXT``, ``BYTEA`` and an identity
  column, and drops ``WITHOUT ROWID``.

Personal identifiers pass through :attr:`Database.codec` before they reach a column:
``index`` for a value that is looked up (a keyed HMAC "blind index" on PostgreSQL, the
value itself in the already encrypted SQLCipher file) and ``seal``/``open`` for contents
(AES-GCM on PostgreSQL, identity in SQLCipher).  So a PostgreSQL administrator with full
read access sees no document number, name, owner reference or contact.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["Database", "Dialect", "FieldCodec", "LockTimes", "PlainCodec", "SchemaNotApplied",
           "ping"]

Dialect = Literal["sqlite", "postgresql"]


class FieldCodec(Protocol):
    """How a backend protects personal identifiers inside its columns."""

    #: True where :meth:`index` and :meth:`seal` really transform (PostgreSQL).
    protects: bool

    def index(self, kind: str, value: str) -> str | bytes:
        """The column value to look ``value`` up by; equal inputs give equal outputs."""
        ...

    def seal(self, kind: str, value: bytes) -> bytes:
        """Contents as stored; ``kind`` is bound in (a value sealed for one column does
        not open for another)."""
        ...

    def open(self, kind: str, value: bytes) -> bytes:
        """The inverse of :meth:`seal`; raises on tampering."""
        ...


class PlainCodec:
    """Identity codec for a store whose whole file is encrypted (SQLCipher)."""

    protects = False

    def index(self, kind: str, value: str) -> str:
        return value

    def seal(self, kind: str, value: bytes) -> bytes:
        return value

    def open(self, kind: str, value: bytes) -> bytes:
        return bytes(value)


class SchemaNotApplied(RuntimeError):
    """:meth:`Database.ensure_schema` inside :meth:`Database.reading`, for a schema this
    database does not have yet (SQLCipher creates it on first use, which needs a write):
    its tables do not exist, so they hold nothing; a reader may say so instead."""


@dataclass(slots=True)
class LockTimes:
    """How long one handle's transactions waited for the writers' lock and held it.

    The serial section of every writer of the node (``serve --workers``, replicas): on
    SQLCipher the ``<db>.lock`` flock taken before ``BEGIN IMMEDIATE`` and held until
    ``COMMIT`` returns; on PostgreSQL the ``audit`` advisory lock, from the moment
    ``pg_advisory_xact_lock`` returns to the end of ``COMMIT``.  Totals since the handle
    opened; the group-commit writer logs them (``writer_lock``).
    """

    #: Transactions that took the lock.
    held: int = 0
    wait_s: float = 0.0
    hold_s: float = 0.0

    def add(self, *, wait_s: float, hold_s: float) -> None:
        self.held += 1
        self.wait_s += wait_s
        self.hold_s += hold_s

    def since(self, earlier: LockTimes) -> LockTimes:
        return LockTimes(self.held - earlier.held, self.wait_s - earlier.wait_s,
                         self.hold_s - earlier.hold_s)

    def copy(self) -> LockTimes:
        return LockTimes(self.held, self.wait_s, self.hold_s)


class Database(Protocol):
    """One connection's worth of storage: transactions and portable SQL."""

    dialect: Dialect
    codec: FieldCodec

    def transaction(self) -> AbstractContextManager[None]:
        """Begin ... commit (durable); nested calls become savepoints."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A savepoint, issued in SQL only once something inside it writes directly."""
        ...

    def reading(self) -> AbstractContextManager[None]:
        """Reads only, outside any transaction of this connection and without the writers'
        lock (a group-commit batch's reads before its transaction): SQLCipher reads as
        ever (each statement its own snapshot), PostgreSQL in one ``BEGIN`` ... ``COMMIT``
        (a round trip each instead of three).  Anything inside that tries to write, or to
        open a transaction, raises RuntimeError."""
        ...

    @property
    def reading_epoch(self) -> int | None:
        """Which :meth:`reading` is open (a new number each time), or None outside one."""
        ...

    @property
    def in_transaction(self) -> bool: ...

    @property
    def holds_writer_lock(self) -> bool:
        """Whether no other writer of the node can write until this transaction ends (what
        it read of the exchange's ledgers then stays true but for its own writes)."""
        ...

    def before_commit(self, key: str, fn: Callable[[], None]) -> None:
        """Run ``fn`` inside the open transaction just before its outermost commit."""
        ...

    def lock(self, name: str) -> None:
        """Serialise every writer of ``name``, on every replica, until this transaction ends.

        SQLCipher: nothing to do (``BEGIN IMMEDIATE`` already holds the file's write lock).
        PostgreSQL: ``pg_advisory_xact_lock`` on a key derived from ``name``.
        """
        ...

    def ensure_schema(self, name: str, ddl: str) -> None:
        """Apply ``ddl`` (portable ``CREATE ... IF NOT EXISTS`` statements) once.  Inside
        :meth:`reading` a schema not yet applied raises :class:`SchemaNotApplied`."""
        ...

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int: ...

    def defer(self, table: str, sql: str, row: Sequence[Any], *,
              key: Hashable | None = None) -> None:
        """Write one row of ``table`` with the open transaction's other rows of ``sql``
        (one ``executemany``, at the latest before ``COMMIT``; at once outside a
        transaction).  ``sql`` must change exactly one row, or the transaction fails.
        ``key`` files the row for :meth:`pending`.  See node/store/deferred.py."""
        ...

    def pending(self, table: str, key: Hashable) -> list[tuple[Any, ...]]:
        """The rows deferred for ``table`` under ``key`` and not yet written."""
        ...

    def last_pending(self, table: str) -> tuple[Any, ...] | None:
        """The last row deferred for ``table`` and not yet written."""
        ...

    def query_past_deferred(self, sql: str, args: Sequence[Any] = ()
                            ) -> tuple[Any, ...] | None:
        """``query_one`` without writing deferred rows first (their owner adds them)."""
        ...

    def rows_past_deferred(self, sql: str, args: Sequence[Any] = ()
                           ) -> list[tuple[Any, ...]]:
        """``query`` without writing deferred rows first (their owner adds them)."""
        ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int: ...

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def query_one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    def stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...


def ping(db: Database) -> None:
    """One round trip to the database; raises when it does not answer (health checks)."""
    db.query_one("SELECT 1")
