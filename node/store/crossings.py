"""Crossing tables: border crossing points, which of them face each other, and this
country's crossing records (:mod:`node.crossings.store`).

Personal identifiers go through the backend's :class:`~node.store.db.FieldCodec`:

* SQLCipher (the whole file is encrypted): every column holds its value, as always, and
  ``sealed`` is NULL;
* PostgreSQL: ``doc_number`` holds a blind index (one indexed equality still finds a
  document's crossings), ``family_name`` and ``given_names`` are blank, and ``sealed``
  holds ``[doc_number, family_name, given_names]`` as AES-GCM ciphertext.

Dates of birth, country codes, BCP codes, times and record ids are stored as they are.
Text is never ordered in SQL (PostgreSQL's collation need not be SQLite's binary one):
rows are sorted here, in code point order, as SQLite's ``ORDER BY`` did.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from node.store._fields import check_placed, index_text, marks
from node.store.db import Database
from node.store.schema import register

__all__ = ["CROSSINGS_SCHEMA", "CROSSINGS_SCHEMA_NAME", "CROSSINGS_SEALED_SCHEMA_NAME",
           "CROSSINGS_SEALED_STEP", "BcpRow", "CrossingRow", "CrossingTables"]

CROSSINGS_SCHEMA_NAME: Final = "crossings"
CROSSINGS_SCHEMA: Final = register(CROSSINGS_SCHEMA_NAME, 1, """
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
""").ddl
#: The sealed identifiers (NULL in SQLCipher, where the file is encrypted).  A schema name
#: of its own, not version 2 of ``crossings``: SQLCipher's ``ensure_schema`` keeps one DDL
#: digest per name, so two steps under one name would re-run each other on every open.
CROSSINGS_SEALED_SCHEMA_NAME: Final = "crossings_sealed"
CROSSINGS_SEALED_STEP: Final = register(
    CROSSINGS_SEALED_SCHEMA_NAME, 1, "ALTER TABLE crossings ADD COLUMN sealed BLOB").ddl

_DOC_NUMBER: Final = "crossings.doc_number"
_SEALED: Final = "crossings.sealed"

_COLS: Final = ("record_id, event, bcp, crossed_at_ms, mode, doc_number, doc_state, doc_type, "
                "family_name, given_names, dob, nationality, sealed")
_INSERT: Final = (f"INSERT INTO crossings ({_COLS}, recorded_ms) VALUES "  # noqa: S608 - constant columns
                  "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


@dataclass(frozen=True, slots=True)
class BcpRow:
    code: str
    country: str
    name: str
    modes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CrossingRow:
    """One crossing record, in plain values (``dob`` is ``""`` when unknown)."""

    record_id: str
    event: str
    bcp: str
    crossed_at_ms: int
    mode: str
    doc_number: str
    doc_state: str
    doc_type: str
    family_name: str
    given_names: str
    dob: str
    nationality: str


def _order(r: CrossingRow) -> tuple[int, str]:
    return r.crossed_at_ms, r.record_id


class CrossingTables:
    """The crossing tables over one :class:`~node.store.db.Database` (callers hold the
    transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._protects = db.codec.protects

    def ensure_schema(self) -> None:
        self.db.ensure_schema(CROSSINGS_SCHEMA_NAME, CROSSINGS_SCHEMA)
        self.db.ensure_schema(CROSSINGS_SEALED_SCHEMA_NAME, CROSSINGS_SEALED_STEP)

    # --- BCPs -------------------------------------------------------------------------------

    def replace_bcps(self, bcps: Iterable[BcpRow], pairs: Iterable[tuple[str, str, str]]) -> None:
        """Replace every BCP and facing pair."""
        self.db.execute("DELETE FROM crossing_pairs")
        self.db.execute("DELETE FROM crossing_bcps")
        self.db.executemany("INSERT INTO crossing_bcps (code, country, name, modes) "
                            "VALUES (?,?,?,?)",
                            [(b.code, b.country, b.name, ",".join(b.modes)) for b in bcps])
        self.db.executemany("INSERT INTO crossing_pairs (a, b, section) VALUES (?,?,?)",
                            list(pairs))

    def bcps(self) -> list[BcpRow]:
        """Every BCP, by code."""
        rows = [BcpRow(str(code), str(country), str(name),
                       tuple(m for m in str(modes).split(",") if m))
                for code, country, name, modes in self.db.query(
                    "SELECT code, country, name, modes FROM crossing_bcps")]
        return sorted(rows, key=lambda b: b.code)

    def pairs(self) -> list[tuple[str, str, str]]:
        """Every facing pair ``(a, b, section)``, by ``a`` then ``b``."""
        return sorted((str(a), str(b), str(s)) for a, b, s in self.db.query(
            "SELECT a, b, section FROM crossing_pairs"))

    # --- crossings --------------------------------------------------------------------------

    def get(self, record_id: str) -> CrossingRow | None:
        row = self.db.query_one(f"SELECT {_COLS} FROM crossings WHERE record_id=?",  # noqa: S608 - constant columns
                                (record_id,))
        return None if row is None else self._row(row)

    def insert(self, r: CrossingRow, *, recorded_ms: int) -> None:
        """Store a new record (its id must not be stored yet)."""
        self.db.execute(_INSERT, self._stored(r, recorded_ms))

    def insert_many(self, rows: Iterable[tuple[CrossingRow, int]]) -> int:
        """Store new records ``(record, recorded_ms)`` (none of their ids stored yet), as
        :meth:`insert` does one by one; returns how many."""
        batch = [self._stored(r, recorded_ms) for r, recorded_ms in rows]
        self.db.executemany(_INSERT, batch)
        return len(batch)

    def _stored(self, r: CrossingRow, recorded_ms: int) -> tuple[Any, ...]:
        """The column values of ``r`` as stored (identifiers protected on PostgreSQL)."""
        c = self.db.codec
        if self._protects:
            number: str = index_text(c, _DOC_NUMBER, r.doc_number)
            family = given = ""
            sealed: bytes | None = c.seal(_SEALED, json.dumps(
                [r.doc_number, r.family_name, r.given_names]).encode())
        else:
            number, family, given, sealed = r.doc_number, r.family_name, r.given_names, None
        return (r.record_id, r.event, r.bcp, r.crossed_at_ms, r.mode, number, r.doc_state,
                r.doc_type, family, given, r.dob, r.nationality, sealed, recorded_ms)

    def all(self) -> Iterator[tuple[CrossingRow, int]]:
        """Every record and the time it was recorded, decoded; streamed in no particular
        order (``bxnode store copy``)."""
        for row in self.db.stream(f"SELECT {_COLS}, recorded_ms FROM crossings"):  # noqa: S608 - constant columns
            yield self._row(row), int(row[13])

    def at(self, *, bcps: Sequence[str], event: str, from_ms: int, to_ms: int,
           document: tuple[str, str, str] | None = None,
           named_only: bool = False) -> list[CrossingRow]:
        """Records of ``event`` at one of ``bcps`` with ``from_ms <= crossed_at_ms <= to_ms``
        (of one ``(number, issuing_state, doc_type)`` document, or only those with a family
        name), by time and then record id."""
        if not bcps:
            return []
        sql = (f"SELECT {_COLS} FROM crossings WHERE bcp IN ({marks(bcps)}) AND event=? AND "  # noqa: S608 - constant columns
               "crossed_at_ms BETWEEN ? AND ?")
        args: list[Any] = [*bcps, event, from_ms, to_ms]
        if document is not None:
            sql += " AND doc_number=? AND doc_state=? AND doc_type=?"
            args += [index_text(self.db.codec, _DOC_NUMBER, document[0]), document[1],
                     document[2]]
        elif named_only and not self._protects:  # sealed names are tested below instead
            sql += " AND family_name != ''"
        rows = [self._row(r) for r in self.db.query(sql, args)]
        if named_only:
            rows = [r for r in rows if r.family_name]
        return sorted(rows, key=_order)

    def count(self) -> int:
        row = self.db.query_one("SELECT count(*) FROM crossings")
        return int(row[0]) if row else 0

    def _row(self, row: Sequence[Any]) -> CrossingRow:
        number, family, given = str(row[5]), str(row[8]), str(row[9])
        if row[12] is not None:
            number, family, given = (str(v) for v in json.loads(
                self.db.codec.open(_SEALED, bytes(row[12]))))
            check_placed(self.db.codec, _SEALED, _DOC_NUMBER, number, row[5])
        return CrossingRow(
            record_id=str(row[0]), event=str(row[1]), bcp=str(row[2]),
            crossed_at_ms=int(row[3]), mode=str(row[4]), doc_number=number,
            doc_state=str(row[6]), doc_type=str(row[7]), family_name=family,
            given_names=given, dob=str(row[10]), nationality=str(row[11]))
