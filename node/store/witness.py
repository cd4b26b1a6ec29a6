"""Witnessing's tables: the checkpoints we witnessed, evidence of misbehaviour, and which
size of our own log each peer last cosigned (:mod:`node.audit.witnessing`).

Nothing here is a personal identifier (origins, node ids, sizes, hashes, signed notes).
Text is never ordered in SQL (PostgreSQL's collation need not be SQLite's binary one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from node.store.db import Database
from node.store.schema import register

__all__ = ["WITNESS_SCHEMA", "WITNESS_SCHEMA_NAME", "EvidenceRow", "WitnessStateRow",
           "WitnessTables"]

WITNESS_SCHEMA_NAME: Final = "audit_witness"
WITNESS_SCHEMA: Final = register(WITNESS_SCHEMA_NAME, 1, """
CREATE TABLE IF NOT EXISTS witness_state (
    origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, note BLOB NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS witness_evidence (
    id INTEGER PRIMARY KEY, origin TEXT NOT NULL, time_ms INTEGER NOT NULL,
    reason TEXT NOT NULL, stored_note BLOB, submitted_note BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_witnessed (
    peer TEXT PRIMARY KEY, size INTEGER NOT NULL, updated_ms INTEGER NOT NULL
);
""").ddl


@dataclass(frozen=True, slots=True)
class WitnessStateRow:
    """The latest checkpoint of ``origin``'s log that this node cosigned."""

    origin: str
    size: int
    root: bytes
    note: bytes


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    origin: str
    time_ms: int
    reason: str
    stored_note: bytes | None
    submitted_note: bytes


class WitnessTables:
    """Witnessing's rows over one :class:`~node.store.db.Database` (callers hold the
    transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        self.db.ensure_schema(WITNESS_SCHEMA_NAME, WITNESS_SCHEMA)

    # --- witness side -----------------------------------------------------------------------

    def state(self, origin: str) -> WitnessStateRow | None:
        row = self.db.query_one(
            "SELECT origin, size, root, note FROM witness_state WHERE origin=?", (origin,))
        return None if row is None else WitnessStateRow(
            str(row[0]), int(row[1]), bytes(row[2]), bytes(row[3]))

    def insert_state(self, new: WitnessStateRow, *, now_ms: int) -> None:
        """The first state of ``new.origin`` (raises if one exists: a racing writer)."""
        self.db.execute(
            "INSERT INTO witness_state (origin, size, root, note, updated_ms) "
            "VALUES (?,?,?,?,?)", (new.origin, new.size, new.root, new.note, now_ms))

    def swap_state(self, new: WitnessStateRow, *, expected: WitnessStateRow,
                   now_ms: int) -> bool:
        """Compare-and-swap: replace the state only if it is still ``expected``."""
        return self.db.execute(
            "UPDATE witness_state SET size=?, root=?, note=?, updated_ms=? "
            "WHERE origin=? AND size=? AND root=?",
            (new.size, new.root, new.note, now_ms, new.origin, expected.size,
             expected.root)) == 1

    def states(self) -> dict[str, int]:
        """Every witnessed log's origin and size, by origin."""
        rows = self.db.query("SELECT origin, size FROM witness_state")
        return dict(sorted((str(o), int(s)) for o, s in rows))

    def add_evidence(self, e: EvidenceRow) -> None:
        self.db.execute(
            "INSERT INTO witness_evidence (origin, time_ms, reason, stored_note, "
            "submitted_note) VALUES (?,?,?,?,?)",
            (e.origin, e.time_ms, e.reason, e.stored_note, e.submitted_note))

    def evidence(self) -> list[EvidenceRow]:
        """Evidence in the order it was kept."""
        return [EvidenceRow(str(r[0]), int(r[1]), str(r[2]),
                            None if r[3] is None else bytes(r[3]), bytes(r[4]))
                for r in self.db.query(
                    "SELECT origin, time_ms, reason, stored_note, submitted_note "
                    "FROM witness_evidence ORDER BY id")]

    def evidence_count(self) -> int:
        row = self.db.query_one("SELECT count(*) FROM witness_evidence")
        return 0 if row is None else int(row[0])

    # --- log side ---------------------------------------------------------------------------

    def witnessed_size(self, peer: str) -> int:
        """The size of our log ``peer`` last cosigned (0: never)."""
        row = self.db.query_one("SELECT size FROM audit_witnessed WHERE peer=?", (peer,))
        return 0 if row is None else int(row[0])

    def set_witnessed_size(self, peer: str, size: int, *, now_ms: int) -> None:
        self.db.execute(
            "INSERT INTO audit_witnessed (peer, size, updated_ms) VALUES (?,?,?) "
            "ON CONFLICT (peer) DO UPDATE SET size = excluded.size, "
            "updated_ms = excluded.updated_ms", (peer, size, now_ms))

    def reset_witnessed_sizes(self) -> None:
        """A new log origin (``audit reset-log``): every witness starts it from 0."""
        self.db.execute("UPDATE audit_witnessed SET size = 0")

    def witnessed_sizes(self) -> dict[str, int]:
        """Every peer that cosigned our log and the size it last cosigned, by peer."""
        rows = self.db.query("SELECT peer, size FROM audit_witnessed")
        return dict(sorted((str(p), int(s)) for p, s in rows))
