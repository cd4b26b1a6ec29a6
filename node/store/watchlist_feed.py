"""The watchlist's change feed: which persons each generation changed, so that every
replica's person index applies a delta instead of rebuilding from a million rows.

Written in the transaction of the change itself, through :class:`~node.store.watchlist.
SqlWatchlistStore` (so a rolled-back change leaves no row, and a committed one always has
its rows):

* every person row written or deleted adds a *pending* row (``generation = 0``) holding the
  owner reference;
* :meth:`WatchlistFeed.stamp`, called where the generation is bumped (under the
  ``watchlist`` lock, so generations commit in their order on every replica), gives this
  transaction's pending rows the new generation and records the generation itself in
  ``watchlist_feed_generations`` with how many references it changed — or ``-1``, "too
  many to list" (more than :data:`FEED_MAX_REFS`: a bulk import), which every reader answers
  with a full rebuild;
* only the last :data:`FEED_KEEP_GENERATIONS` generations are kept: a replica further
  behind finds a generation missing and rebuilds fully.

A reader (:meth:`WatchlistFeed.changes`) trusts the feed only where it is complete: every
generation of the range must be recorded with a count (one the feed does not know — never
stamped, pruned, or written by an older bxnode — means "rebuild").  So the feed can only
make a replica rebuild more often than needed, never miss a change.

No personal data: names and dates never enter the feed.  The reference is stored as the
backend stores sealed values: on PostgreSQL a fresh AES-GCM ciphertext (no blind index, so
nothing in the feed equals a value of the erased record), on SQLCipher the reference in the
encrypted file; a reference erased by retention has its rows removed from the feed
(SQLCipher: by value) and rows expire with their generation in any case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from node.store.db import Database
from node.store.schema import register

__all__ = ["FEED_KEEP_GENERATIONS", "FEED_MAX_REFS", "FEED_SCHEMA_NAME", "WatchlistFeed"]

FEED_SCHEMA_NAME: Final = "watchlist_feed"
FEED_SCHEMA: Final = register(FEED_SCHEMA_NAME, 1, """
CREATE TABLE IF NOT EXISTS watchlist_feed (
    generation INTEGER NOT NULL, op TEXT NOT NULL, sealed BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS watchlist_feed_generation ON watchlist_feed (generation);
CREATE TABLE IF NOT EXISTS watchlist_feed_generations (
    generation INTEGER PRIMARY KEY, refs INTEGER NOT NULL
)
""").ddl

#: A generation that changes more persons than this is recorded as "too many to list"
#: (readers rebuild): a delta is worth applying only while it is much smaller than the
#: watchlist, and the feed stays small.
FEED_MAX_REFS: Final = 20_000
#: Generations kept (a replica that many changes behind rebuilds fully).
FEED_KEEP_GENERATIONS: Final = 1024
#: ``op`` of a pending row standing for more references than one call may list.
_MANY: Final = "many"
_SEALED: Final = "watchlist_feed.sealed"
_PENDING: Final = 0


class WatchlistFeed:
    """The feed's two tables over one :class:`Database` (the caller's transaction)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def ensure_schema(self) -> None:
        """Every time (one meta read on SQLCipher, a cached check on PostgreSQL): a table
        created in a savepoint that rolled back must be created again."""
        self._db.ensure_schema(FEED_SCHEMA_NAME, FEED_SCHEMA)

    # --- writing (inside the change's transaction) ------------------------------------------

    def record(self, refs: Sequence[str], op: str, *, more: bool = False) -> None:
        """Pending rows for ``refs`` (``op``: ``put`` or ``delete``); ``more`` (or more than
        :data:`FEED_MAX_REFS` of them) records one "too many to list" row instead."""
        if not refs and not more:
            return
        self.ensure_schema()
        db = self._db
        sql = "INSERT INTO watchlist_feed (generation, op, sealed) VALUES (?, ?, ?)"
        # The transaction's pending rows so far (a bulk import writes in many calls):
        # past the limit they become one "too many to list" row, and stay one.
        row = db.query_one("SELECT count(*), max(CASE WHEN op = ? THEN 1 ELSE 0 END) FROM "
                           "watchlist_feed WHERE generation = ?", (_MANY, _PENDING))
        pending, many = (int(row[0]), bool(row[1])) if row is not None and row[0] else (0, False)
        if many:
            return
        if more or pending + len(refs) > FEED_MAX_REFS:
            db.execute("DELETE FROM watchlist_feed WHERE generation = ?", (_PENDING,))
            db.execute(sql, (_PENDING, _MANY, b""))
            return
        codec = db.codec
        db.executemany(sql, ((_PENDING, op, codec.seal(_SEALED, r.encode()))
                             for r in dict.fromkeys(refs)))

    def forget(self, ref: str) -> None:
        """Remove ``ref``'s rows (retention erased it).  Only where the stored value is the
        reference itself (SQLCipher); a sealed one is a fresh ciphertext, found by nothing."""
        if self._db.codec.protects:
            return
        self.ensure_schema()
        self._db.execute("DELETE FROM watchlist_feed WHERE sealed = ?", (ref.encode(),))

    def stamp(self, generation: int) -> int:
        """Give this transaction's pending rows ``generation`` and record it; prune what is
        older than :data:`FEED_KEEP_GENERATIONS`.  Returns the references recorded, -1 for
        "too many to list"."""
        self.ensure_schema()
        db = self._db
        n = db.execute("UPDATE watchlist_feed SET generation = ? WHERE generation = ?",
                       (generation, _PENDING))
        many = db.query_one("SELECT 1 FROM watchlist_feed WHERE generation = ? AND op = ? "
                            "LIMIT 1", (generation, _MANY))
        refs = n
        if many is not None or n > FEED_MAX_REFS:
            db.execute("DELETE FROM watchlist_feed WHERE generation = ?", (generation,))
            refs = -1
        # A generation recorded twice (a restored database, a number reused) is unknown.
        db.execute("INSERT INTO watchlist_feed_generations (generation, refs) VALUES (?, ?) "
                   "ON CONFLICT (generation) DO UPDATE SET refs = -1", (generation, refs))
        floor = generation - FEED_KEEP_GENERATIONS
        if floor > 0:
            db.execute("DELETE FROM watchlist_feed WHERE generation > 0 AND generation <= ?",
                       (floor,))
            db.execute("DELETE FROM watchlist_feed_generations WHERE generation <= ?",
                       (floor,))
        return refs

    # --- reading ------------------------------------------------------------------------------

    def changes(self, after: int, upto: int) -> list[str] | None:
        """Every reference changed in the generations ``after`` < g <= ``upto``, or None when
        the feed cannot say (a generation not recorded or "too many to list", more than
        :data:`FEED_MAX_REFS` references in all)."""
        if upto < after or upto - after > FEED_KEEP_GENERATIONS:
            return None
        if upto == after:
            return []
        self.ensure_schema()
        if not self._complete(after, upto):
            return None
        rows = self._db.query("SELECT sealed FROM watchlist_feed WHERE generation > ? AND "
                              "generation <= ?", (after, upto))
        # Read again after the rows: a prune committed in between removed generations of
        # this range (and their rows) in one transaction, so the rows read are complete
        # exactly when the range still is.
        if len(rows) > FEED_MAX_REFS or not self._complete(after, upto):
            return None
        codec = self._db.codec
        return list(dict.fromkeys(codec.open(_SEALED, bytes(r[0])).decode() for r in rows))

    def _complete(self, after: int, upto: int) -> bool:
        row = self._db.query_one(
            "SELECT count(*), min(refs), sum(refs) FROM watchlist_feed_generations "
            "WHERE generation > ? AND generation <= ?", (after, upto))
        if row is None or int(row[0]) != upto - after:
            return False
        return int(row[1]) >= 0 and int(row[2]) <= FEED_MAX_REFS
