"""The Merkle audit log's tables: entries, tree hashes, signed checkpoints, cosignatures.

All the SQL of :mod:`node.audit.log` (appending, sealing, search, erasure, proofs and the
scans of verification), in the portable subset of :mod:`node.store.db`.  The log's bodies
are canonical JSON committed to by the tree (they hold no name, document number or owner
reference: counts, codes, node and officer ids, digests), so no column passes through the
field codec: a sealed body would still verify, but the search columns must stay
comparable and the tree commits to the bytes as written.

Text is never ordered in SQL (PostgreSQL's collation need not be SQLite's binary one):
such orderings are done here, in Python.  Sequence numbers are given by the caller
(``max(seq) + 1`` under the ``audit`` lock), never by the database: ``seq`` and
checkpoint ``size`` are always inserted explicitly (PostgreSQL's identity column for
``INTEGER PRIMARY KEY`` is ``BY DEFAULT``, so it accepts them).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from node.store._fields import marks
from node.store.db import Database
from node.store.schema import register

__all__ = [
    "AUDIT_LOG_SCHEMA",
    "AUDIT_LOG_SCHEMA_NAME",
    "ERASURE_RECORD_EVENTS",
    "KEEP_ERASURE_RECORDS",
    "AuditEntry",
    "AuditLogTables",
    "CheckpointRow",
    "EntryEventTuple",
    "EntryTuple",
    "NewAuditEntry",
]

AUDIT_LOG_SCHEMA_NAME: Final = "audit_merkle"
AUDIT_LOG_SCHEMA: Final = register(AUDIT_LOG_SCHEMA_NAME, 1, """
CREATE TABLE IF NOT EXISTS audit_entries (
    seq INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, salt BLOB, body BLOB,
    leaf BLOB NOT NULL, erased_ms INTEGER,
    event TEXT, requester TEXT, operator TEXT, purpose TEXT, case_ref TEXT, outcome TEXT,
    request_digest TEXT
);
CREATE INDEX IF NOT EXISTS audit_entries_time ON audit_entries (time_ms);
CREATE INDEX IF NOT EXISTS audit_entries_digest ON audit_entries (request_digest);
CREATE TABLE IF NOT EXISTS audit_hashes (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    size INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, root BLOB NOT NULL, note BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_cosignatures (
    size INTEGER NOT NULL, witness TEXT NOT NULL, time_ms INTEGER NOT NULL,
    line TEXT NOT NULL, PRIMARY KEY (size, witness)
) WITHOUT ROWID;
""").ddl

#: Events whose entries record an erasure of audit bodies (``audit_erasure`` from ``bxnode
#: audit erase-expired``, ``retention_sweep`` from the retention sweep).  Their bodies are
#: never erased: ``verify`` accepts an erased body only against the record covering it.
ERASURE_RECORD_EVENTS: Final = ("audit_erasure", "retention_sweep")

#: ``AND`` clause (and its arguments) sparing erasure records from erasure.
KEEP_ERASURE_RECORDS: Final = (
    "(event IS NULL OR event NOT IN (" + ",".join("?" * len(ERASURE_RECORD_EVENTS)) + "))")

#: Coordinates per statement when reading hashes: 2 parameters each, far below both
#: engines' limits (SQLite 32,766, PostgreSQL 65,535).
_HASH_CHUNK: Final = 400

_ENTRY_COLS: Final = "seq, time_ms, salt, body, leaf, erased_ms"
_CHECKPOINT_COLS: Final = "size, root, time_ms, note"

#: ``(seq, time_ms, salt, body, leaf, erased_ms)`` as stored, for the verification scans.
EntryTuple = tuple[int, int, bytes | None, bytes | None, bytes, int | None]
#: :data:`EntryTuple` followed by the entry's ``event`` column.
EntryEventTuple = tuple[int, int, bytes | None, bytes | None, bytes, int | None, str | None]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One stored entry; ``salt`` and ``body`` are None once erased."""

    seq: int
    time_ms: int
    salt: bytes | None
    body: bytes | None
    leaf: bytes
    erased_ms: int | None = None


@dataclass(frozen=True, slots=True)
class NewAuditEntry:
    """An entry to insert, with the search fields taken from its event."""

    seq: int
    time_ms: int
    salt: bytes
    body: bytes
    leaf: bytes
    event: str | None = None
    requester: str | None = None
    operator: str | None = None
    purpose: str | None = None
    case_ref: str | None = None
    outcome: str | None = None
    request_digest: str | None = None


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    size: int
    root: bytes
    time_ms: int
    note: bytes


#: Per database handle: ``(write_epoch, next seq)`` read inside its open transaction.
#: Valid while the epoch holds (same transaction, nothing rolled back or written since), and
#: so while the append lock taken before it is held; entries appended since are deferred
#: rows (:meth:`AuditLogTables.insert_entry`), and the next number follows the last of
#: them: the next number needs no ``max(seq)`` after the first of a batch.  Shared by every
#: log over the handle (the responder's, the follow-up desk's).
_NEXT_SEQ: weakref.WeakKeyDictionary[Database, tuple[int, int]] = weakref.WeakKeyDictionary()


_INSERT_ENTRY: Final = (
    "INSERT INTO audit_entries (seq, time_ms, salt, body, leaf, erased_ms, event, "
    "requester, operator, purpose, case_ref, outcome, request_digest) "
    "VALUES (?,?,?,?,?,NULL,?,?,?,?,?,?,?)")


def _opt_bytes(v: Any) -> bytes | None:
    return None if v is None else bytes(v)


def _entry(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(int(row[0]), int(row[1]), _opt_bytes(row[2]), _opt_bytes(row[3]),
                      bytes(row[4]), None if row[5] is None else int(row[5]))


def _checkpoint(row: Sequence[Any]) -> CheckpointRow:
    return CheckpointRow(int(row[0]), bytes(row[1]), int(row[2]), bytes(row[3]))


def _time_range(from_ms: int | None, to_ms: int | None) -> tuple[list[str], list[Any]]:
    cond: list[str] = []
    args: list[Any] = []
    if from_ms is not None:
        cond.append("time_ms >= ?")
        args.append(from_ms)
    if to_ms is not None:
        cond.append("time_ms <= ?")
        args.append(to_ms)
    return cond, args


class AuditLogTables:
    """The audit log's rows over one :class:`~node.store.db.Database` (callers hold the
    transaction; :meth:`append_lock` serialises appenders across replicas)."""

    #: The name :meth:`Database.lock` serialises appends under.
    LOCK: Final = "audit"

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        self.db.ensure_schema(AUDIT_LOG_SCHEMA_NAME, AUDIT_LOG_SCHEMA)

    def append_lock(self) -> None:
        """Hold the appenders' lock until the open transaction ends (no-op on SQLCipher)."""
        self.db.lock(self.LOCK)

    # --- entries ----------------------------------------------------------------------------

    def next_seq(self) -> int:
        """``max(seq) + 1``, counting the entries this transaction deferred; read once per
        transaction (the caller holds the append lock) while nothing else is written."""
        last = self.db.last_pending("audit_entries")
        if last is not None:
            return int(last[0]) + 1
        epoch = self._epoch()
        if epoch is not None:
            hit = _NEXT_SEQ.get(self.db)
            if hit is not None and hit[0] == epoch:
                return hit[1]
        row = self.db.query_one("SELECT max(seq) FROM audit_entries")
        n = 1 if row is None or row[0] is None else int(row[0]) + 1
        if epoch is not None:
            _NEXT_SEQ[self.db] = (epoch, n)
        return n

    def _epoch(self) -> int | None:
        if not self.db.in_transaction:
            return None
        epoch = getattr(self.db, "write_epoch", None)
        return epoch if isinstance(epoch, int) else None

    def insert_entry(self, e: NewAuditEntry) -> None:
        """Insert with the transaction's other entries (deferred: node/store/deferred.py;
        written before anything reads the table, and before ``COMMIT``)."""
        self.db.defer("audit_entries", _INSERT_ENTRY,
                      (e.seq, e.time_ms, e.salt, e.body, e.leaf, e.event, e.requester,
                       e.operator, e.purpose, e.case_ref, e.outcome, e.request_digest))

    def leaves_after(self, size: int) -> list[tuple[int, bytes]]:
        """``(seq, leaf)`` of the entries ``size+1..``, in seq order (the batch to seal)."""
        return [(int(r[0]), bytes(r[1])) for r in self.db.query(
            "SELECT seq, leaf FROM audit_entries WHERE seq > ? ORDER BY seq", (size,))]

    def erasable_range(self, cutoff_ms: int) -> tuple[int, int | None, int | None]:
        """``(count, first seq, last seq)`` of what :meth:`erase_before` would erase."""
        row = self.db.query_one(
            "SELECT count(*), min(seq), max(seq) FROM audit_entries WHERE time_ms < ? AND "  # noqa: S608 - constant clause
            "body IS NOT NULL AND " + KEEP_ERASURE_RECORDS,
            (cutoff_ms, *ERASURE_RECORD_EVENTS))
        if row is None or not row[0]:
            return 0, None, None
        return int(row[0]), int(row[1]), int(row[2])

    def erase_before(self, cutoff_ms: int, *, now_ms: int) -> int:
        """Delete body, salt and search fields of entries older than ``cutoff_ms`` that
        still have a body (the leaf stays), erasure records excepted; returns how many."""
        return self.db.execute(
            "UPDATE audit_entries SET body=NULL, salt=NULL, event=NULL, requester=NULL, "  # noqa: S608 - constant clause
            "operator=NULL, purpose=NULL, case_ref=NULL, outcome=NULL, "
            "request_digest=NULL, erased_ms=? WHERE time_ms < ? AND body IS NOT NULL AND "
            + KEEP_ERASURE_RECORDS, (now_ms, cutoff_ms, *ERASURE_RECORD_EVENTS))

    def erasure_records(self) -> list[tuple[int, bytes]]:
        """``(seq, body)`` of the entries of :data:`ERASURE_RECORD_EVENTS`, in seq order."""
        return [(int(s), bytes(b)) for s, b in self.db.query(
            "SELECT seq, body FROM audit_entries WHERE body IS NOT NULL AND event IN ("  # noqa: S608 - placeholders only
            + ",".join("?" * len(ERASURE_RECORD_EVENTS)) + ") ORDER BY seq",
            ERASURE_RECORD_EVENTS)]

    def entry(self, seq: int) -> AuditEntry | None:
        row = self.db.query_one(
            f"SELECT {_ENTRY_COLS} FROM audit_entries WHERE seq=?", (seq,))  # noqa: S608 - constant columns
        return None if row is None else _entry(row)

    def entry_for_request(self, digest_hex: str) -> AuditEntry | None:
        """The first entry logged for ``digest_hex`` whose event is not ``*_sent`` (the
        entry of a request this node received, not one it sent).  The suffix test is done
        here, not with ``LIKE``: SQLite's ``LIKE`` folds ASCII case and PostgreSQL's does
        not, so ``lower()`` keeps the embedded store's meaning on both."""
        for row in self.db.query(
                f"SELECT {_ENTRY_COLS}, event FROM audit_entries WHERE request_digest=? "  # noqa: S608 - constant columns
                "ORDER BY seq", (digest_hex,)):
            event = row[6]
            if event is not None and not str(event).lower().endswith("_sent"):
                return _entry(row)
        return None

    def entries(self, *, from_ms: int | None = None,
                to_ms: int | None = None) -> Iterator[AuditEntry]:
        cond, args = _time_range(from_ms, to_ms)
        sql = f"SELECT {_ENTRY_COLS} FROM audit_entries"  # noqa: S608 - constant columns
        if cond:
            sql += " WHERE " + " AND ".join(cond)
        for row in self.db.stream(sql + " ORDER BY seq", args):
            yield _entry(row)

    def search(self, *, limit: int, event: str | None = None, requester: str | None = None,
               operator: str | None = None, purpose: str | None = None,
               case_ref: str | None = None, outcome: str | None = None,
               from_ms: int | None = None, to_ms: int | None = None) -> list[AuditEntry]:
        """Entries whose search fields equal every non-empty argument, in seq order."""
        cond: list[str] = []
        args: list[Any] = []
        for col, value in (("purpose", purpose), ("outcome", outcome), ("operator", operator),
                           ("case_ref", case_ref), ("event", event), ("requester", requester)):
            if value:
                cond.append(f"{col} = ?")  # column names from the constant list above
                args.append(value)
        tcond, targs = _time_range(from_ms, to_ms)
        cond += tcond
        args += targs
        sql = f"SELECT {_ENTRY_COLS} FROM audit_entries"  # noqa: S608 - constant columns
        if cond:
            sql += " WHERE " + " AND ".join(cond)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return [_entry(row) for row in self.db.query(sql, args)]

    # --- verification scans -----------------------------------------------------------------

    def count_and_max(self) -> tuple[int, int | None]:
        row = self.db.query_one("SELECT count(*), max(seq) FROM audit_entries")
        if row is None:
            return 0, None
        return int(row[0]), None if row[1] is None else int(row[1])

    def scan(self, first: int | None = None, last: int | None = None) -> Iterator[EntryTuple]:
        """Entries ``first..last`` (both inclusive; all when None) as raw tuples, streamed
        in seq order (the verifier reads millions: no object per row)."""
        return self._scan(_ENTRY_COLS, first, last)

    def scan_with_events(self, first: int, last: int) -> Iterator[EntryEventTuple]:
        """As :meth:`scan`, each row followed by its ``event``: the parallel verification
        finds the erasure records in the same pass instead of reading the table twice."""
        return self._scan(_ENTRY_COLS + ", event", first, last)

    def _scan(self, cols: str, first: int | None, last: int | None) -> Iterator[Any]:
        cond: list[str] = []
        args: list[int] = []
        if first is not None:
            cond.append("seq >= ?")
            args.append(first)
        if last is not None:
            cond.append("seq <= ?")
            args.append(last)
        sql = f"SELECT {cols} FROM audit_entries"  # noqa: S608 - constant columns
        if cond:
            sql += " WHERE " + " AND ".join(cond)
        return self.db.stream(sql + " ORDER BY seq", args)

    # --- tree hashes (node.audit.merkle.HashStore) ------------------------------------------

    def get_hashes(self, coords: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored hashes at ``(level, idx)`` coordinates; missing ones are absent."""
        found: dict[tuple[int, int], bytes] = {}
        for i in range(0, len(coords), _HASH_CHUNK):
            chunk = coords[i:i + _HASH_CHUNK]
            sql = ("SELECT level, idx, hash FROM audit_hashes WHERE (level, idx) IN (VALUES "  # noqa: S608 - placeholders only
                   + marks(chunk, per_row=2) + ")")
            args = [x for c in chunk for x in c]
            for level, idx, h in self.db.query(sql, args):
                found[(int(level), int(idx))] = bytes(h)
        return found

    def put_hashes(self, entries: Sequence[tuple[int, int, bytes]]) -> int:
        """Insert hashes, keeping any already stored; returns how many were new."""
        return self.db.executemany(
            "INSERT INTO audit_hashes (level, idx, hash) VALUES (?,?,?) "
            "ON CONFLICT (level, idx) DO NOTHING", entries)

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Stored leaf hashes (level 0) of indexes ``start..end-1``, in order."""
        return [bytes(r[0]) for r in self.db.query(
            "SELECT hash FROM audit_hashes WHERE level=0 AND idx>=? AND idx<? ORDER BY idx",
            (start, end))]

    # --- checkpoints and cosignatures -------------------------------------------------------

    def insert_checkpoint(self, c: CheckpointRow) -> None:
        self.db.execute(
            "INSERT INTO audit_checkpoints (size, time_ms, root, note) VALUES (?,?,?,?)",
            (c.size, c.time_ms, c.root, c.note))

    def latest_checkpoint(self) -> CheckpointRow | None:
        row = self.db.query_one(
            f"SELECT {_CHECKPOINT_COLS} FROM audit_checkpoints ORDER BY size DESC LIMIT 1")  # noqa: S608 - constant columns
        return None if row is None else _checkpoint(row)

    def checkpoint_at_least(self, size: int) -> CheckpointRow | None:
        row = self.db.query_one(
            f"SELECT {_CHECKPOINT_COLS} FROM audit_checkpoints WHERE size >= ? "  # noqa: S608 - constant columns
            "ORDER BY size LIMIT 1", (size,))
        return None if row is None else _checkpoint(row)

    def checkpoint(self, size: int) -> CheckpointRow | None:
        row = self.db.query_one(
            f"SELECT {_CHECKPOINT_COLS} FROM audit_checkpoints WHERE size = ?", (size,))  # noqa: S608 - constant columns
        return None if row is None else _checkpoint(row)

    def checkpoints(self) -> list[CheckpointRow]:
        return [_checkpoint(r) for r in self.db.query(
            f"SELECT {_CHECKPOINT_COLS} FROM audit_checkpoints ORDER BY size")]  # noqa: S608 - constant columns

    def put_cosignature(self, size: int, witness: str, line: str, *, time_ms: int) -> None:
        """Keep ``witness``'s cosignature of checkpoint ``size``, replacing an older one."""
        self.db.execute(
            "INSERT INTO audit_cosignatures (size, witness, time_ms, line) VALUES (?,?,?,?) "
            "ON CONFLICT (size, witness) DO UPDATE SET time_ms = excluded.time_ms, "
            "line = excluded.line", (size, witness, time_ms, line))

    def latest_cosigned_size(self, at_least: int) -> int | None:
        """The largest checkpoint size ``>= at_least`` that has a stored cosignature."""
        row = self.db.query_one(
            "SELECT max(c.size) FROM audit_cosignatures c JOIN audit_checkpoints p "
            "ON p.size = c.size WHERE c.size >= ?", (at_least,))
        return None if row is None or row[0] is None else int(row[0])

    def cosignatures(self) -> list[tuple[int, str, str]]:
        """Every stored cosignature ``(size, witness, line)``, by size then witness name
        (code point order, sorted here)."""
        rows = self.db.query("SELECT size, witness, line FROM audit_cosignatures")
        return sorted((int(s), str(w), str(x)) for s, w, x in rows)

    def cosignature_lines(self, size: int) -> tuple[str, ...]:
        """The cosignature lines of checkpoint ``size``, by witness name (code point order,
        sorted here: PostgreSQL's text collation need not be SQLite's binary one)."""
        rows = self.db.query("SELECT witness, line FROM audit_cosignatures WHERE size=?", (size,))
        return tuple(str(line) for _, line in sorted((str(w), str(x)) for w, x in rows))

    # --- tests only -------------------------------------------------------------------------

    def unsafe_roll_back_for_tests(self, size: int) -> None:
        """TESTS ONLY: what an attacker with the database would do to hide entries after
        ``size`` -- delete them *with* their checkpoints, cosignatures and tree hashes, so
        what is left is a consistent log of ``size`` entries.  Only a comparison with what
        the witnesses hold (``bxnode audit verify --witnesses``) can see it."""
        _NEXT_SEQ.pop(self.db, None)
        self.db.execute("DELETE FROM audit_entries WHERE seq > ?", (size,))
        self.db.execute("DELETE FROM audit_checkpoints WHERE size > ?", (size,))
        self.db.execute("DELETE FROM audit_cosignatures WHERE size > ?", (size,))
        for level in range(64):  # a node at (level, idx) covers leaves up to (idx+1) << level
            self.db.execute("DELETE FROM audit_hashes WHERE level = ? AND idx >= ?",
                            (level, size >> level))
