"""The life of an alert beyond the lookup tables: its source agency, withdrawn alerts kept
until their retention ends, and the sequence numbers of delta feeds (issue 13).

The lookup tables (``documents``, ``persons``: :mod:`node.store.watchlist`) hold only live
and expired alerts; a withdrawn alert's rows are *deleted* from them in the transaction
that withdraws it (so it can never hit again, on any replica, from that commit on) and
kept here, in ``alerts_withdrawn``, until ``[retention] withdrawn_alerts_days`` ends.

Personal identifiers go through the backend's :class:`~node.store.db.FieldCodec`:

* ``owner_ref`` is a blind index (the value itself on SQLCipher, as in ``documents``);
* ``alerts_withdrawn.record`` (the withdrawn rows) is sealed (AES-GCM on PostgreSQL).

Source agencies, kinds, operator ids and times are stored as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from node.core.errors import ConfigError
from node.store._fields import any_of, check_placed, index_text, misplaced
from node.store.db import Database
from node.store.schema import register

__all__ = ["ALERTS_SCHEMA", "ALERTS_SCHEMA_NAME", "AlertMeta", "AlertTables", "WithdrawnRow"]

ALERTS_SCHEMA_NAME: Final = "alerts"
ALERTS_SCHEMA: Final = register(ALERTS_SCHEMA_NAME, 1, """
CREATE TABLE IF NOT EXISTS alert_meta (
    owner_ref TEXT PRIMARY KEY, kind TEXT NOT NULL, source TEXT NOT NULL,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_meta_source ON alert_meta (source);
CREATE TABLE IF NOT EXISTS alerts_withdrawn (
    owner_ref TEXT PRIMARY KEY, kind TEXT NOT NULL, source TEXT NOT NULL,
    withdrawn_ms INTEGER NOT NULL, operator TEXT NOT NULL, record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_withdrawn_time ON alerts_withdrawn (withdrawn_ms);
CREATE TABLE IF NOT EXISTS alert_feeds (
    source TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_ms INTEGER NOT NULL
)
""").ddl

_OWNER: Final = "watchlist.owner_ref"  # the same blind index as the lookup tables'
_RECORD: Final = "alerts_withdrawn.record"
_CHUNK: Final = 500


@dataclass(frozen=True, slots=True)
class AlertMeta:
    kind: str
    source: str
    created_ms: int
    updated_ms: int


@dataclass(frozen=True, slots=True)
class WithdrawnRow:
    """A withdrawn alert as kept until its retention ends.  ``record`` is what the lookup
    tables held: ``{"documents": [[state, number, type, ref, action, contact, expires,
    loss], ...], "person": [ref, family, ..., expires] | null}``."""

    owner_ref: str
    kind: str
    source: str
    withdrawn_ms: int
    operator: str
    record: dict[str, Any]


class AlertTables:
    """The alert lifecycle tables over one :class:`Database` (callers hold the
    transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        self.db.ensure_schema(ALERTS_SCHEMA_NAME, ALERTS_SCHEMA)

    def _ix(self, ref: str) -> str:
        return index_text(self.db.codec, _OWNER, ref)

    # --- source agencies ------------------------------------------------------------------

    def put_meta(self, ref: str, *, kind: str, source: str, now_ms: int) -> None:
        """Record (or change) an alert's kind and source; ``created_ms`` is kept."""
        self.db.execute(
            "INSERT INTO alert_meta (owner_ref, kind, source, created_ms, updated_ms) "
            "VALUES (?,?,?,?,?) ON CONFLICT (owner_ref) DO UPDATE SET kind=excluded.kind, "
            "source=excluded.source, updated_ms=excluded.updated_ms",
            (self._ix(ref), kind, source, now_ms, now_ms))

    def meta(self, ref: str) -> AlertMeta | None:
        r = self.db.query_one("SELECT kind, source, created_ms, updated_ms FROM alert_meta "
                              "WHERE owner_ref=?", (self._ix(ref),))
        return None if r is None else AlertMeta(str(r[0]), str(r[1]), int(r[2]), int(r[3]))

    def meta_many(self, refs: Sequence[str]) -> dict[str, AlertMeta]:
        return {ref: AlertMeta(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for ref, r in
                self._rows_many("kind, source, created_ms, updated_ms", "", refs)}

    def sources_many(self, refs: Sequence[str]) -> dict[str, str]:
        """The source agency of each listed alert recorded with one (a lookup's hits)."""
        return {ref: str(r[0]) for ref, r in self._rows_many("source", " AND source <> ''",
                                                              refs)}

    def _rows_many(self, columns: str, where: str, refs: Sequence[str]
                   ) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """(reference, the row's ``columns``) of the listed alerts that have metadata, one
        statement per 500 (``columns`` and ``where`` are this module's text, never data)."""
        unique = list(dict.fromkeys(refs))
        plain = not self.db.codec.protects  # the index is the reference itself
        for i in range(0, len(unique), _CHUNK):
            chunk = unique[i:i + _CHUNK]
            by_ix = dict(zip(chunk, chunk, strict=True)) if plain else {
                self._ix(r): r for r in chunk}
            cond, args = any_of(self.db.dialect, "owner_ref", list(by_ix))
            for r in self.db.query(
                    f"SELECT owner_ref, {columns} FROM alert_meta "  # noqa: S608 - placeholders
                    f"WHERE {cond}{where}", args):
                yield by_ix[str(r[0])], r[1:]

    def all_meta(self) -> Iterator[tuple[str, AlertMeta]]:
        """Every alert's reference and metadata, streamed (``bxnode store copy``).  Only
        where references are stored as they are (SQLCipher): a blind index cannot be
        turned back into the reference."""
        if self.db.codec.protects:
            raise ConfigError("alert references in this database are blind indexes; they "
                              "cannot be read back", reason="unreadable_index")
        for r in self.db.stream(
                "SELECT owner_ref, kind, source, created_ms, updated_ms FROM alert_meta"):
            yield str(r[0]), AlertMeta(str(r[1]), str(r[2]), int(r[3]), int(r[4]))

    def restore_meta(self, rows: Iterable[tuple[str, AlertMeta]]) -> int:
        """Insert metadata as it was, times included (a copied store; the references must
        not be stored yet); returns how many."""
        batch = [(self._ix(ref), m.kind, m.source, m.created_ms, m.updated_ms)
                 for ref, m in rows]
        self.db.executemany("INSERT INTO alert_meta (owner_ref, kind, source, created_ms, "
                            "updated_ms) VALUES (?,?,?,?,?)", batch)
        return len(batch)

    def delete_meta(self, ref: str) -> None:
        self.db.execute("DELETE FROM alert_meta WHERE owner_ref=?", (self._ix(ref),))

    def source_counts(self) -> dict[str, int]:
        return {str(s): int(n) for s, n in self.db.query(
            "SELECT source, count(*) FROM alert_meta GROUP BY source")}

    # --- withdrawn alerts -----------------------------------------------------------------

    def put_withdrawn(self, w: WithdrawnRow) -> None:
        """Keep a withdrawn alert (a ref withdrawn again replaces its earlier record)."""
        sealed = self.db.codec.seal(_RECORD, json.dumps(w.record, ensure_ascii=False).encode())
        self.db.execute(
            "INSERT INTO alerts_withdrawn (owner_ref, kind, source, withdrawn_ms, operator, "
            "record) VALUES (?,?,?,?,?,?) ON CONFLICT (owner_ref) DO UPDATE SET "
            "kind=excluded.kind, source=excluded.source, withdrawn_ms=excluded.withdrawn_ms, "
            "operator=excluded.operator, record=excluded.record",
            (self._ix(w.owner_ref), w.kind, w.source, w.withdrawn_ms, w.operator, sealed))

    def withdrawn(self, ref: str) -> WithdrawnRow | None:
        r = self.db.query_one("SELECT kind, source, withdrawn_ms, operator, record FROM "
                              "alerts_withdrawn WHERE owner_ref=?", (self._ix(ref),))
        if r is None:
            return None
        record = json.loads(self.db.codec.open(_RECORD, bytes(r[4])))
        if _record_ref(record) not in ("", ref):  # another row's record (check_placed)
            raise misplaced(_RECORD)
        return WithdrawnRow(ref, str(r[0]), str(r[1]), int(r[2]), str(r[3]), record)

    def forget_withdrawn(self, ref: str) -> None:
        """A withdrawn ref issued again: it is live, no longer withdrawn."""
        self.db.execute("DELETE FROM alerts_withdrawn WHERE owner_ref=?", (self._ix(ref),))

    def all_withdrawn(self, *, source: str | None = None) -> list[WithdrawnRow]:
        """Every withdrawn alert kept (its reference opened from the sealed record)."""
        sql = ("SELECT kind, source, withdrawn_ms, operator, record, owner_ref FROM "
               "alerts_withdrawn")
        args: tuple[str, ...] = ()
        if source is not None:
            sql += " WHERE source=?"
            args = (source,)
        out = []
        for r in self.db.query(sql, args):
            record = json.loads(self.db.codec.open(_RECORD, bytes(r[4])))
            ref = _record_ref(record)
            if ref:
                check_placed(self.db.codec, _RECORD, _OWNER, ref, r[5])
            out.append(WithdrawnRow(ref, str(r[0]), str(r[1]), int(r[2]),
                                    str(r[3]), record))
        return sorted(out, key=lambda w: (w.withdrawn_ms, w.owner_ref))

    def withdrawn_count(self) -> int:
        row = self.db.query_one("SELECT count(*) FROM alerts_withdrawn")
        return int(row[0]) if row else 0

    def withdrawn_before(self, cutoff_ms: int) -> list[WithdrawnRow]:
        return [w for w in self.all_withdrawn() if w.withdrawn_ms < cutoff_ms]

    # --- delta feeds ----------------------------------------------------------------------

    def feed_seq(self, source: str) -> int:
        """The last sequence number applied from ``source``'s feed (0: none yet)."""
        r = self.db.query_one("SELECT seq FROM alert_feeds WHERE source=?", (source,))
        return 0 if r is None else int(r[0])

    def set_feed_seq(self, source: str, seq: int, *, now_ms: int) -> None:
        self.db.execute(
            "INSERT INTO alert_feeds (source, seq, updated_ms) VALUES (?,?,?) "
            "ON CONFLICT (source) DO UPDATE SET seq=excluded.seq, updated_ms=excluded.updated_ms",
            (source, seq, now_ms))


def _record_ref(record: dict[str, Any]) -> str:
    person = record.get("person")
    if person:
        return str(person[0])
    docs: Iterable[Sequence[Any]] = record.get("documents") or ()
    return next((str(d[3]) for d in docs), "")
