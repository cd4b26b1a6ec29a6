"""Retention's SQL (issue 13): holds, erasing receipts down to their digests, and deleting
what holds personal data once its retention ended (:mod:`node.retention`).

* ``retention_holds``: case references an operator or auditor placed on hold; every record
  of that case is kept past its retention until the hold is lifted.  Case references are
  stored as they are (they are in the audit log's search columns already).
* Receipts gain ``response_digest`` and ``erased_ms`` (schema ``receipts_retention``): an
  erased receipt keeps ``request_digest`` and ``response_digest`` -- the two digests the
  audit log commits to, so the exchange stays provable -- and its envelopes are replaced by
  the empty value (sealed on PostgreSQL, so every reader still opens it).
* Everything else is deleted.  SQLCipher has ``secure_delete`` on (freed cells and pages
  are zeroed) and :func:`compact` checkpoints the WAL with ``TRUNCATE`` afterwards, so no
  earlier page image survives in the WAL; PostgreSQL's deleted rows are gone from every
  snapshot (a ``pg_dump``) at commit, and :func:`compact` rewrites the tables that held
  them (``VACUUM FULL``: a plain ``VACUUM`` leaves the dead row versions' bytes in the
  heap and index pages) and lets go of the WAL that logged them (a checkpoint and a WAL
  switch, where the role may).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import structlog

from node.store.audit_log import ERASURE_RECORD_EVENTS, KEEP_ERASURE_RECORDS
from node.store.db import Database
from node.store.schema import register

__all__ = ["COMPACT_PENDING_META", "HOLDS_SCHEMA_NAME", "RECEIPTS_RETENTION_SCHEMA_NAME",
           "RETENTION_TABLES", "HoldRow", "ReceiptHead", "RetentionTables", "compact"]

HOLDS_SCHEMA_NAME: Final = "retention_holds"
HOLDS_SCHEMA: Final = register(HOLDS_SCHEMA_NAME, 1, """
CREATE TABLE IF NOT EXISTS retention_holds (
    case_ref TEXT PRIMARY KEY, reason TEXT NOT NULL, placed_by TEXT NOT NULL,
    role TEXT NOT NULL, placed_ms INTEGER NOT NULL
)
""").ddl
RECEIPTS_RETENTION_SCHEMA_NAME: Final = "receipts_retention"
RECEIPTS_RETENTION_STEP: Final = register(RECEIPTS_RETENTION_SCHEMA_NAME, 1, """
ALTER TABLE receipts ADD COLUMN response_digest BLOB;
ALTER TABLE receipts ADD COLUMN erased_ms INTEGER;
CREATE INDEX IF NOT EXISTS receipts_created ON receipts (created_ms)
""").ddl

#: The codec kinds of receipt envelopes (node/store/exchange.py).
_REQUEST: Final = "receipts.request_env"
_RESPONSE: Final = "receipts.response_env"
#: Tables a sweep deletes from, for VACUUM on PostgreSQL.
SWEPT_TABLES: Final = ("receipts", "crossings", "followups", "followups_sent",
                       "alerts_withdrawn", "documents", "persons", "alert_meta", "nonces",
                       "audit_entries")
#: Per kind a sweep erases, the tables left holding dead versions of what it erased, for
#: :func:`compact` to rewrite on PostgreSQL.  A withdrawn alert's lookup rows were deleted
#: when it was withdrawn; their dead versions go with the kept record.  Nonces (a peer's
#: node id and random bytes) hold no personal data: a plain VACUUM.
RETENTION_TABLES: Final[dict[str, tuple[str, ...]]] = {
    "receipts": ("receipts",),
    "crossings": ("crossings",),
    "followups": ("followups", "followups_sent"),
    "withdrawn_alerts": ("alerts_withdrawn", "documents", "persons", "alert_meta"),
    "expired_alerts": ("documents", "persons", "alert_meta"),
    "audit_bodies": ("audit_entries",),
}
#: Tables whose rewrite waited longer than the lock timeout: rewritten at the next sweep.
COMPACT_PENDING_META: Final = "retention_compact_pending"
COMPACT_LOCK_TIMEOUT_MS: Final = 10_000
_WAL_GRANTS: Final = ("grant the node's role pg_checkpoint and EXECUTE ON FUNCTION "
                      "pg_switch_wal()")
log = structlog.get_logger("bxnode.retention")


@dataclass(frozen=True, slots=True)
class HoldRow:
    case_ref: str
    reason: str
    placed_by: str
    role: str
    placed_ms: int


@dataclass(frozen=True, slots=True)
class ReceiptHead:
    """A receipt as retention sees it: ids, digests, times and (unless erased) envelopes."""

    id: int
    direction: str
    peer: str
    request_digest: bytes
    response_digest: bytes | None
    created_ms: int
    erased_ms: int | None
    request_env: bytes
    response_env: bytes


class RetentionTables:
    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        self.db.ensure_schema(HOLDS_SCHEMA_NAME, HOLDS_SCHEMA)
        self.db.ensure_schema(RECEIPTS_RETENTION_SCHEMA_NAME, RECEIPTS_RETENTION_STEP)

    # --- holds ------------------------------------------------------------------------------

    def hold(self, h: HoldRow) -> bool:
        """Place a hold; False when ``case_ref`` is on hold already (nothing changed)."""
        return self.db.execute(
            "INSERT INTO retention_holds (case_ref, reason, placed_by, role, placed_ms) "
            "VALUES (?,?,?,?,?) ON CONFLICT (case_ref) DO NOTHING",
            (h.case_ref, h.reason, h.placed_by, h.role, h.placed_ms)) == 1

    def release(self, case_ref: str) -> bool:
        return self.db.execute("DELETE FROM retention_holds WHERE case_ref=?",
                               (case_ref,)) == 1

    def holds(self) -> list[HoldRow]:
        return sorted((HoldRow(str(c), str(r), str(b), str(o), int(t)) for c, r, b, o, t in
                       self.db.query("SELECT case_ref, reason, placed_by, role, placed_ms "
                                     "FROM retention_holds")), key=lambda h: h.case_ref)

    # --- receipts ---------------------------------------------------------------------------

    def receipts_before(self, cutoff_ms: int) -> list[ReceiptHead]:
        """Receipts created before ``cutoff_ms`` and not erased yet, oldest first."""
        return [self._head(r) for r in self.db.query(
            "SELECT id, direction, peer, request_digest, response_digest, created_ms, "
            "erased_ms, request_env, response_env FROM receipts WHERE created_ms < ? AND "
            "erased_ms IS NULL ORDER BY id", (cutoff_ms,))]

    def receipts_for(self, *, request_digest: bytes, peer: str | None = None,
                     direction: str | None = None) -> list[ReceiptHead]:
        sql = ("SELECT id, direction, peer, request_digest, response_digest, created_ms, "
               "erased_ms, request_env, response_env FROM receipts WHERE request_digest=?")
        args: list[Any] = [request_digest]
        if peer is not None:
            sql += " AND peer=?"
            args.append(peer)
        if direction is not None:
            sql += " AND direction=?"
            args.append(direction)
        return [self._head(r) for r in self.db.query(sql + " ORDER BY id", args)]

    def all_receipts(self) -> list[ReceiptHead]:
        return [self._head(r) for r in self.db.query(
            "SELECT id, direction, peer, request_digest, response_digest, created_ms, "
            "erased_ms, request_env, response_env FROM receipts ORDER BY id")]

    def erase_receipt(self, rid: int, *, response_digest: bytes, now_ms: int) -> None:
        c = self.db.codec
        self.db.execute(
            "UPDATE receipts SET request_env=?, response_env=?, response_digest=?, erased_ms=? "
            "WHERE id=? AND erased_ms IS NULL",
            (c.seal(_REQUEST, b""), c.seal(_RESPONSE, b""), response_digest, now_ms, rid))

    def _head(self, r: Sequence[Any]) -> ReceiptHead:
        c = self.db.codec
        return ReceiptHead(int(r[0]), str(r[1]), str(r[2]), bytes(r[3]),
                           None if r[4] is None else bytes(r[4]), int(r[5]),
                           None if r[6] is None else int(r[6]),
                           c.open(_REQUEST, bytes(r[7])), c.open(_RESPONSE, bytes(r[8])))

    # --- everything else: deleted ---------------------------------------------------------

    def delete_crossings_before(self, cutoff_ms: int, *, dry_run: bool) -> int:
        if dry_run:
            row = self.db.query_one("SELECT count(*) FROM crossings WHERE crossed_at_ms < ?",
                                    (cutoff_ms,))
            return int(row[0]) if row else 0
        return self.db.execute("DELETE FROM crossings WHERE crossed_at_ms < ?", (cutoff_ms,))

    def delete_followup(self, fid: str) -> int:
        return self.db.execute("DELETE FROM followups WHERE id=?", (fid,))

    def delete_followup_sent(self, peer: str, fid: str) -> int:
        return self.db.execute("DELETE FROM followups_sent WHERE peer=? AND id=?", (peer, fid))

    def sent_followups(self) -> list[tuple[str, str, str, str, int, bytes]]:
        """(peer, id, state, case_ref, filed_ms, hit_request_digest) of every follow-up we
        filed."""
        return [(str(p), str(i), str(s), str(c), int(t), bytes(d)) for p, i, s, c, t, d in
                self.db.query("SELECT peer, id, state, case_ref, filed_ms, hit_request_digest "
                              "FROM followups_sent")]

    def delete_withdrawn(self, owner_ref_index: str) -> int:
        return self.db.execute("DELETE FROM alerts_withdrawn WHERE owner_ref=?",
                               (owner_ref_index,))

    def delete_nonces_before(self, cutoff_ms: int, *, dry_run: bool) -> int:
        if dry_run:
            row = self.db.query_one("SELECT count(*) FROM nonces WHERE expires_ms < ?",
                                    (cutoff_ms,))
            return int(row[0]) if row else 0
        return self.db.execute("DELETE FROM nonces WHERE expires_ms < ?", (cutoff_ms,))

    def audit_bodies_before(self, cutoff_ms: int) -> list[tuple[int, str]]:
        """(seq, case_ref) of audit entries older than ``cutoff_ms`` whose body is kept
        (erasure records are never erased: ``audit verify`` checks erasures against them)."""
        return [(int(s), str(c or "")) for s, c in self.db.query(
            "SELECT seq, case_ref FROM audit_entries WHERE time_ms < ? AND erased_ms IS NULL "  # noqa: S608 - constant clause
            "AND body IS NOT NULL AND " + KEEP_ERASURE_RECORDS + " ORDER BY seq",
            (cutoff_ms, *ERASURE_RECORD_EVENTS))]

    def erase_audit_bodies(self, seqs: Sequence[int], *, now_ms: int) -> int:
        """Delete body, salt and search fields of these entries; the leaf stays (so every
        root and proof still verifies), as ``MerkleAuditLog.erase_expired`` does."""
        n = 0
        for seq in seqs:
            n += self.db.execute(
                "UPDATE audit_entries SET body=NULL, salt=NULL, event=NULL, requester=NULL, "
                "operator=NULL, purpose=NULL, case_ref=NULL, outcome=NULL, "
                "request_digest=NULL, erased_ms=? WHERE seq=? AND erased_ms IS NULL",
                (now_ms, seq))
        return n


def compact(db: Database, *, erased: Mapping[str, int] | None = None) -> str:
    """After a sweep has committed (never inside a transaction), remove what the database's
    files still hold of the rows it erased.  Returns what it did, for the log and the CLI.

    * SQLCipher: ``secure_delete`` zeroed the freed cells and pages; the WAL is checkpointed
      into the file and truncated, so no earlier page image survives in it.
    * PostgreSQL: a deleted or updated row stays in its page as a dead version (and in
      every index) after a plain ``VACUUM``, which only marks the space free.  So each table
      in which ``erased`` (the sweep's counts per kind; ``None``: every swept table) erased
      something is rewritten with ``VACUUM FULL``: new heap and index files holding the
      live rows only, the old files unlinked.  A table whose lock is not had within
      ``lock_timeout`` is left for the next sweep (kept in ``meta``).  Then, where the
      node's role may (``pg_checkpoint`` and ``EXECUTE`` on ``pg_switch_wal()``), a
      checkpoint, a WAL segment switch and a checkpoint make the segments that logged the
      erased rows removable; with ``wal_recycle = off`` they are deleted, not reused
      (README "Retention": the server settings and WAL archives are the operator's).
    """
    if db.in_transaction:
        return "skipped: a transaction is open"
    if db.dialect == "sqlite":
        row = db.query_one("PRAGMA wal_checkpoint(TRUNCATE)")
        readers = bool(row and row[0])
        return "wal_checkpoint(TRUNCATE): " + ("busy, retried next sweep" if readers else "done")
    pool: Any = getattr(db, "pool", None)
    if pool is None:
        return "skipped: no connection pool"
    kinds = RETENTION_TABLES if erased is None else {
        k: t for k, t in RETENTION_TABLES.items() if erased.get(k, 0) > 0}
    pending = {t for t in (db.get_meta(COMPACT_PENDING_META) or "").split(",") if t}
    full = sorted(({t for ts in kinds.values() for t in ts} | pending) & set(SWEPT_TABLES))
    plain = sorted({t for t in SWEPT_TABLES if t not in full}
                   if erased is None or any(erased.values()) else set())
    done, busy = _vacuum(pool, full, plain)
    if set(busy) != pending:
        db.set_meta(COMPACT_PENDING_META, ",".join(busy))
    parts = [f"vacuum full: {', '.join(done) if done else 'nothing erased'}"]
    if busy:
        parts.append(f"busy, rewritten next sweep: {', '.join(busy)}")
    if done:
        parts.append("wal: " + _release_wal(pool))
    return "; ".join(parts)


def _vacuum(pool: Any, full: Sequence[str], plain: Sequence[str]
            ) -> tuple[list[str], list[str]]:
    """VACUUM FULL ``full`` and VACUUM ``plain`` on an autocommit connection (neither may
    run in a transaction block); (rewritten, busy)."""
    import psycopg

    done: list[str] = []
    busy: list[str] = []
    conn = pool._acquire()
    try:
        conn.execute(f"SET lock_timeout = {COMPACT_LOCK_TIMEOUT_MS}")
        for table in full:  # names from SWEPT_TABLES only, never data
            try:
                conn.execute(f"VACUUM FULL {table}")
                done.append(table)
            except psycopg.errors.LockNotAvailable:
                busy.append(table)
        for table in plain:
            with contextlib.suppress(psycopg.errors.LockNotAvailable):
                conn.execute(f"VACUUM {table}")
        conn.execute("RESET lock_timeout")
    finally:
        pool._release(conn)
    return done, busy


def _release_wal(pool: Any) -> str:
    import psycopg

    conn = pool._acquire()
    try:
        try:
            conn.execute("CHECKPOINT")
            conn.execute("SELECT pg_switch_wal()")
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            log.warning("retention_wal_not_switched", hint=_WAL_GRANTS)
            return f"not switched ({_WAL_GRANTS})"
        row = conn.execute("SHOW wal_recycle").fetchone()
    finally:
        pool._release(conn)
    if row is not None and str(row[0]) == "on":
        log.warning("retention_wal_recycle_on", hint="set wal_recycle = off")
        return ("switched, but wal_recycle is on: recycled segments keep the erased rows' "
                "log records until overwritten (set wal_recycle = off)")
    return "switched; the segments that logged the erased rows are removed"
