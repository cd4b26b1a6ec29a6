"""Crossing tables in the node database: BCPs, facing pairs, crossings.

Converts between the crossing model and the rows of :mod:`node.store.crossings`, which
holds the SQL (and protects document numbers and names on PostgreSQL); callers hold the
transaction.
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
from node.store.crossings import BcpRow, CrossingRow, CrossingTables
from node.store.db import Database

__all__ = ["CrossingStore"]


def _row(r: CrossingRecord) -> CrossingRow:
    return CrossingRow(
        record_id=r.record_id, event=r.event.value, bcp=r.bcp, crossed_at_ms=r.crossed_at_ms,
        mode=r.mode.value, doc_number=r.document.number, doc_state=r.document.issuing_state,
        doc_type=r.document.doc_type, family_name=r.family_name, given_names=r.given_names,
        dob=str(r.date_of_birth) if r.date_of_birth else "", nationality=r.nationality)


def _record(row: CrossingRow) -> CrossingRecord:
    return CrossingRecord(
        record_id=row.record_id, event=CrossingEvent(row.event), bcp=row.bcp,
        crossed_at_ms=row.crossed_at_ms, mode=TravelMode(row.mode),
        document=DocumentQuery(number=row.doc_number, issuing_state=row.doc_state,
                               doc_type=row.doc_type),
        family_name=row.family_name, given_names=row.given_names,
        date_of_birth=PartialDate.parse(row.dob) if row.dob else None,
        nationality=row.nationality)


class CrossingStore:
    def __init__(self, store: Database) -> None:
        self._s = store
        self._t = CrossingTables(store)
        self._t.ensure_schema()

    @property
    def db(self) -> Database:
        """The node database these tables live in (for the caller's transaction)."""
        return self._s

    # --- BCPs -------------------------------------------------------------------------------

    def replace_bcps(self, bcp_map: BcpMap) -> None:
        """Replace the BCP list and pairs with ``bcp_map`` (the caller holds the transaction)."""
        self._t.replace_bcps(
            [BcpRow(b.code, b.country, b.name, tuple(m.value for m in b.modes))
             for b in bcp_map.bcps.values()], bcp_map.pairs)

    def bcp_map(self) -> BcpMap:
        bcps = {b.code: Bcp(b.code, b.country, b.name, tuple(TravelMode(m) for m in b.modes))
                for b in self._t.bcps()}
        return BcpMap(bcps=bcps, pairs=tuple(self._t.pairs()))

    # --- crossings --------------------------------------------------------------------------

    def insert(self, records: Iterable[CrossingRecord], *, now_ms: int) -> tuple[int, int]:
        """Store records; ``(new, duplicates)``.  A record id already stored with the same
        content is a duplicate (idempotent resend); with other content it raises
        InvalidInput(record_conflict) and the caller's transaction rolls back."""
        new = dup = 0
        for r in records:
            row = _row(r)
            old = self._t.get(r.record_id)
            if old is not None:
                if old != row:
                    raise InvalidInput(f"record {r.record_id} is already stored with other "
                                       "content", reason="record_conflict")
                dup += 1
                continue
            self._t.insert(row, recorded_ms=now_ms)
            new += 1
        return new, dup

    def find(self, q: CrossingQuestion, bcps: Sequence[str]) -> CrossingRecord | None:
        """The earliest crossing (never a refused entry) matching ``q`` at one of ``bcps``."""
        if not bcps:
            return None
        event = CrossingEvent.EXIT if q.direction is Direction.EXIT else CrossingEvent.ENTRY
        document = None
        if isinstance(q.subject, DocumentQuery):
            document = (q.subject.number, q.subject.issuing_state, q.subject.doc_type)
        for row in self._t.at(bcps=bcps, event=event.value, from_ms=q.window_start_ms,
                              to_ms=q.window_end_ms, document=document,
                              named_only=document is None):
            rec = _record(row)
            if rec.matches(q.subject):
                return rec
        return None

    def records(self, *, bcps: Sequence[str], event: CrossingEvent, from_ms: int,
                to_ms: int) -> list[CrossingRecord]:
        if not bcps:
            return []
        return [_record(r) for r in self._t.at(bcps=bcps, event=event.value, from_ms=from_ms,
                                               to_ms=to_ms)]

    def count(self) -> int:
        return self._t.count()
