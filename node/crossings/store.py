"""Crossing tables in the node's encrypted database: BCPs, facing pairs, crossings.

Owns its SQL (docs/extending.md, "Storage"); callers hold the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from node.core.errors import InvalidInput
from node.core.model import DocumentQuery, PartialDate
from node.crossings.bcps import Bcp, BcpMap
from node.crossings.model import (
    CrossingEvent,
    CrossingQuestion,
    CrossingRecord,
    Direction,
    TravelMode,
)
from node.store.sqlcipher import Store

__all__ = ["CrossingStore"]

_DDL = """
CREATE TABLE IF NOT EXISTS crossing_bcps (
    code TEXT PRIMARY KEY, country TEXT NOT NULL, name TEXT NOT NULL, modes TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS crossing_pairs (
    a TEXT NOT NULL, b TEXT NOT NULL, section TEXT NOT NULL, PRIMARY KEY (a, b)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS crossings (
    record_id TEXT PRIMARY KEY, event TEXT NOT NULL, bcp TEXT NOT NULL,
    crossed_at_ms INTEGER NOT NULL, mode TEXT NOT NULL, doc_number TEXT NOT NULL,
    doc_state TEXT NOT NULL, doc_type TEXT NOT NULL, family_name TEXT NOT NULL,
    given_names TEXT NOT NULL, dob TEXT NOT NULL, nationality TEXT NOT NULL,
    recorded_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS crossings_doc ON crossings (doc_number, doc_state, crossed_at_ms);
CREATE INDEX IF NOT EXISTS crossings_bcp_time ON crossings (bcp, crossed_at_ms)
"""

_COLS = ("record_id, event, bcp, crossed_at_ms, mode, doc_number, doc_state, doc_type, "
         "family_name, given_names, dob, nationality")


def _row(r: CrossingRecord) -> tuple[object, ...]:
    return (r.record_id, r.event.value, r.bcp, r.crossed_at_ms, r.mode.value, r.document.number,
            r.document.issuing_state, r.document.doc_type, r.family_name, r.given_names,
            str(r.date_of_birth) if r.date_of_birth else "", r.nationality)


def _record(row: Sequence[object]) -> CrossingRecord:
    dob = str(row[10])
    return CrossingRecord(
        record_id=str(row[0]), event=CrossingEvent(str(row[1])), bcp=str(row[2]),
        crossed_at_ms=int(str(row[3])), mode=TravelMode(str(row[4])),
        document=DocumentQuery(number=str(row[5]), issuing_state=str(row[6]),
                               doc_type=str(row[7])),
        family_name=str(row[8]), given_names=str(row[9]),
        date_of_birth=PartialDate.parse(dob) if dob else None, nationality=str(row[11]))


class CrossingStore:
    def __init__(self, store: Store) -> None:
        self._s = store
        store.ensure_schema("crossings", _DDL)

    @property
    def db(self) -> Store:
        """The node database these tables live in (for the caller's transaction)."""
        return self._s

    # --- BCPs -------------------------------------------------------------------------------

    def replace_bcps(self, bcp_map: BcpMap) -> None:
        """Replace the BCP list and pairs with ``bcp_map`` (the caller holds the transaction)."""
        self._s.execute("DELETE FROM crossing_pairs")
        self._s.execute("DELETE FROM crossing_bcps")
        self._s.executemany("INSERT INTO crossing_bcps VALUES (?,?,?,?)", [
            (b.code, b.country, b.name, ",".join(m.value for m in b.modes))
            for b in bcp_map.bcps.values()])
        self._s.executemany("INSERT INTO crossing_pairs VALUES (?,?,?)", bcp_map.pairs)

    def bcp_map(self) -> BcpMap:
        bcps = {
            str(code): Bcp(str(code), str(country), str(name),
                           tuple(TravelMode(m) for m in str(modes).split(",") if m))
            for code, country, name, modes in self._s.query(
                "SELECT code, country, name, modes FROM crossing_bcps ORDER BY code")}
        pairs = tuple((str(a), str(b), str(s)) for a, b, s in self._s.query(
            "SELECT a, b, section FROM crossing_pairs ORDER BY a, b"))
        return BcpMap(bcps=bcps, pairs=pairs)

    # --- crossings --------------------------------------------------------------------------

    def insert(self, records: Iterable[CrossingRecord], *, now_ms: int) -> tuple[int, int]:
        """Store records; ``(new, duplicates)``.  A record id already stored with the same
        content is a duplicate (idempotent resend); with other content it raises
        InvalidInput(record_conflict) and the caller's transaction rolls back."""
        new = dup = 0
        for r in records:
            row = _row(r)
            old = self._s.query_one(f"SELECT {_COLS} FROM crossings WHERE record_id=?",  # noqa: S608 - constant columns
                                    (r.record_id,))
            if old is not None:
                if tuple(old) != row:
                    raise InvalidInput(f"record {r.record_id} is already stored with other "
                                       "content", reason="record_conflict")
                dup += 1
                continue
            self._s.execute(f"INSERT INTO crossings ({_COLS}, recorded_ms) VALUES "  # noqa: S608 - constant columns
                            "(?,?,?,?,?,?,?,?,?,?,?,?,?)", (*row, now_ms))
            new += 1
        return new, dup

    def find(self, q: CrossingQuestion, bcps: Sequence[str]) -> CrossingRecord | None:
        """The earliest crossing (never a refused entry) matching ``q`` at one of ``bcps``."""
        if not bcps:
            return None
        marks = ",".join("?" * len(bcps))
        events = (CrossingEvent.EXIT.value,) if q.direction is Direction.EXIT else (
            CrossingEvent.ENTRY.value,)
        sql = (f"SELECT {_COLS} FROM crossings WHERE bcp IN ({marks}) AND event=? AND "  # noqa: S608 - constant columns
               "crossed_at_ms BETWEEN ? AND ?")
        args: list[object] = [*bcps, events[0], q.window_start_ms, q.window_end_ms]
        if isinstance(q.subject, DocumentQuery):
            sql += " AND doc_number=? AND doc_state=? AND doc_type=?"
            args += [q.subject.number, q.subject.issuing_state, q.subject.doc_type]
        else:
            sql += " AND family_name != ''"
        for row in self._s.query(sql + " ORDER BY crossed_at_ms, record_id", args):
            rec = _record(row)
            if rec.matches(q.subject):
                return rec
        return None

    def records(self, *, bcps: Sequence[str], event: CrossingEvent, from_ms: int,
                to_ms: int) -> list[CrossingRecord]:
        if not bcps:
            return []
        marks = ",".join("?" * len(bcps))
        return [_record(r) for r in self._s.query(
            f"SELECT {_COLS} FROM crossings WHERE bcp IN ({marks}) AND event=? AND "  # noqa: S608 - constant columns
            "crossed_at_ms BETWEEN ? AND ? ORDER BY crossed_at_ms, record_id",
            [*bcps, event.value, from_ms, to_ms])]

    def count(self) -> int:
        row = self._s.query_one("SELECT count(*) FROM crossings")
        return int(str(row[0])) if row else 0
