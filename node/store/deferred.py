"""Rows written once per transaction: the exchange's inserts, buffered and sent per table.

Every request of a group-commit batch writes a nonce, a usage increment, an audit entry and
a receipt, each inside its own savepoints.  Sent one by one that is about ten statements a
request under the writers' lock (on PostgreSQL ten round trips).  Instead the ledgers
*defer* those rows (:meth:`DeferredRows.add`): they are kept in memory, in order, and
written with one ``executemany`` per statement when the transaction needs them in the
database -- at the latest just before ``COMMIT`` -- and savepoints become *lazy*: a
savepoint is issued in SQL only once something inside it writes directly.

What stays exact:

* **Savepoints.**  A lazy savepoint that rolls back drops the rows deferred since it
  opened; one already issued rolls back in SQL and drops every row deferred since (they
  were all deferred after it was issued: issuing writes out what came before).  So a
  request that fails leaves nothing, buffered or written.
* **Reads.**  A statement that reads a table with deferred rows first writes them (and
  issues the lazy savepoints around them, in order), so nothing reads around the buffer;
  a direct write does the same, so a later rollback undoes it.  The owners of deferred
  rows read past the buffer only where they add its rows themselves
  (:meth:`pending`, ``Database.query_past_deferred``): a nonce deferred earlier in the
  same batch is a replay, a usage increment counts toward the quota at once.
* **Writes.**  Every deferred statement must change exactly one row; a statement that
  changes fewer (a nonce another writer stored meanwhile: impossible under the writers'
  lock, which every writer of these tables holds) fails the transaction instead of
  letting it commit (fail closed).

No SQL of its own: the adapters hand in how to run a statement and a savepoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DeferredAccess", "DeferredRows", "DeferredWriteConflict"]

Row = tuple[Any, ...]


class DeferredWriteConflict(RuntimeError):
    """A deferred statement changed no row: the transaction must not commit."""


@dataclass(frozen=True, slots=True)
class _Entry:
    table: str
    sql: str
    row: Row
    key: Hashable | None


class DeferredRows:
    """The rows one transaction deferred, and its lazy savepoints (one per adapter)."""

    def __init__(self) -> None:
        self._rows: list[_Entry] = []
        self._tables: dict[str, int] = {}
        self._keyed: dict[tuple[str, Hashable], list[Row]] = {}
        #: One per open savepoint, outermost first: the number of rows deferred when it
        #: opened while it is lazy, None once issued in SQL (issued ones come first).
        self._levels: list[int | None] = []

    # --- rows ---------------------------------------------------------------------------------

    def add(self, table: str, sql: str, row: Sequence[Any], key: Hashable | None) -> None:
        entry = _Entry(table, sql, tuple(row), key)
        self._rows.append(entry)
        self._tables[table] = self._tables.get(table, 0) + 1
        if key is not None:
            self._keyed.setdefault((table, key), []).append(entry.row)

    def pending(self, table: str, key: Hashable) -> list[Row]:
        """The rows deferred for ``table`` under ``key``, oldest first."""
        return self._keyed.get((table, key), [])

    def last(self, table: str) -> Row | None:
        """The last row deferred for ``table``."""
        if not self._tables.get(table):
            return None
        for entry in reversed(self._rows):
            if entry.table == table:
                return entry.row
        return None  # pragma: no cover - the count says there is one

    def touches(self, sql: str) -> bool:
        """Whether ``sql`` names a table that has deferred rows."""
        return any(table in sql for table in self._tables)

    @property
    def dirty(self) -> bool:
        """Rows to write, or a lazy savepoint to issue."""
        return bool(self._rows) or (bool(self._levels) and self._levels[-1] is not None)

    def _truncate(self, n: int) -> None:
        for entry in self._rows[n:]:
            left = self._tables[entry.table] - 1
            if left:
                self._tables[entry.table] = left
            else:
                del self._tables[entry.table]
            if entry.key is not None:
                rows = self._keyed[(entry.table, entry.key)]
                rows.pop()
                if not rows:
                    del self._keyed[(entry.table, entry.key)]
        del self._rows[n:]

    def clear(self) -> None:
        """The transaction ended (committed or rolled back)."""
        self._rows.clear()
        self._tables.clear()
        self._keyed.clear()
        self._levels.clear()

    # --- savepoints ---------------------------------------------------------------------------

    def open_level(self) -> None:
        self._levels.append(len(self._rows))

    def release_level(self) -> bool:
        """The innermost savepoint ends well; True if it was issued (RELEASE it in SQL)."""
        return self._levels.pop() is None

    def rollback_level(self) -> bool:
        """The innermost savepoint rolls back; True if it was issued (ROLLBACK TO it in
        SQL).  Its deferred rows are dropped either way."""
        mark = self._levels.pop()
        self._truncate(0 if mark is None else mark)
        return mark is None

    # --- writing ------------------------------------------------------------------------------

    def materialize(self, run_many: Callable[[str, list[Row]], int],
                    savepoint: Callable[[int], None]) -> bool:
        """Write every deferred row and issue every lazy savepoint, in the order they came
        (``savepoint(i)`` issues the savepoint of level ``i``, 1 for the outermost).
        Returns whether any row was written."""
        wrote = False
        start = 0
        for i, mark in enumerate(self._levels):
            if mark is None:
                continue
            wrote |= self._write(run_many, start, mark)
            start = mark
            savepoint(i + 1)
            self._levels[i] = None
        wrote |= self._write(run_many, start, len(self._rows))
        self._rows.clear()
        self._tables.clear()
        self._keyed.clear()
        return wrote

    def _write(self, run_many: Callable[[str, list[Row]], int], start: int, end: int) -> bool:
        if start >= end:
            return False
        groups: dict[str, list[Row]] = {}
        for entry in self._rows[start:end]:
            groups.setdefault(entry.sql, []).append(entry.row)
        for sql, rows in groups.items():
            changed = run_many(sql, rows)
            if changed != len(rows):
                raise DeferredWriteConflict(
                    f"a deferred write changed {changed} of {len(rows)} rows "
                    f"({sql.split('(')[0].strip()}): the transaction rolls back")
        return True


class DeferredAccess:
    """What an adapter holding a :class:`DeferredRows` (``_deferred``) tells the owners of
    deferred rows (``Database.pending`` / ``Database.last_pending``), and the step before
    each of its direct writes (the adapter's ``_materialize`` issues the SQL)."""

    _deferred: DeferredRows
    _depth: int
    write_epoch: int
    #: Inside ``reading()``: nothing may write (Database.reading).
    _reading: bool = False
    _readings: int = 0

    @property
    def reading_epoch(self) -> int | None:
        """Which ``reading()`` is open (each one a new number), or None outside one."""
        return self._readings if self._reading else None

    @contextlib.contextmanager
    def _reads_only(self) -> Iterator[None]:
        """The body of a ``reading()``: a new reading epoch, and every write refused."""
        self._reading = True
        self._readings += 1
        try:
            yield
        finally:
            self._reading = False

    def _materialize(self) -> None:
        raise NotImplementedError

    def _direct_write(self) -> None:
        """Before a statement that may write: rows deferred before it go first, the lazy
        savepoints around it are issued, and what was read may no longer hold."""
        if self._reading:
            raise RuntimeError("nothing writes inside reading()")
        if self._depth:
            self._materialize()
            self.write_epoch += 1

    def pending(self, table: str, key: Hashable) -> list[Row]:
        """The rows deferred for ``table`` under ``key`` and not yet written."""
        return self._deferred.pending(table, key)

    def last_pending(self, table: str) -> Row | None:
        """The last row deferred for ``table`` and not yet written."""
        return self._deferred.last(table)
