"""Recover the tail a restored log lost, from a newer copy of the same log.

``bxnode audit recover-tail --from FILE`` (a newer backup, or a copy of the database as it
was later: the file ``bxnode restore`` moved aside, a disk image's copy) hands both
databases to :func:`recover_tail`, which:

1. verifies the copy's log on its own (every entry, every checkpoint under this node's
   keys: :meth:`~node.audit.log.MerkleAuditLog.verify`) and the local log;
2. checks that the copy *extends* the local log: the copy's tree over the first ``n``
   entries (``n`` = the local log's size) has the local root (RFC 9162 2.1: the root of
   a prefix fixes every leaf in it);
3. in one local transaction, copies what the local log lacks, byte for byte: the entries
   after ``n`` (bodies, salts, leaves, erased markers), the tree hashes, the checkpoints
   after the local one and their cosignatures, the sizes witnesses cosigned
   (``audit_witnessed``, the larger of the two), this node's own state as a witness of the
   others (the later checkpoint per origin, and the evidence it kept); and, so that requests
   accepted after the backup cannot be replayed, the copy's unexpired nonces and the larger
   of each day's usage;
4. verifies the result inside that transaction, before it commits.

Any failure leaves the local database as it was.  The copy is only read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from node.audit.log import MerkleAuditLog, SqlHashStore
from node.audit.note import NoteVerifier
from node.core.errors import ConfigError
from node.store.db import Database
from node.store.witness import WitnessTables

__all__ = ["TailError", "TailReport", "recover_tail"]

_CHUNK = 2000


class TailError(ConfigError):
    """The copy cannot give the local log its tail (see the reason)."""

    default_reason = "tail_mismatch"


@dataclass(frozen=True, slots=True)
class TailReport:
    local_size: int
    recovered: int
    new_size: int
    checkpoint_size: int
    nonces: int


def _size(report_entries: int, ok: bool, problem: str, what: str) -> int:
    if not ok:
        raise TailError(f"{what} does not verify: {problem}", reason="tail_unverified")
    return report_entries


def recover_tail(local: Database, source: Database, *, node_id: str,
                 verifiers: Sequence[NoteVerifier], now_ms: int) -> TailReport:
    """See the module.  ``verifiers``: this node's checkpoint keys."""
    mine = MerkleAuditLog(store=local, node_id=node_id)
    theirs = MerkleAuditLog(store=source, node_id=node_id)
    for db in (local, source):  # a node that never served has no witnessing tables yet
        WitnessTables(db).ensure_schema()
    have = mine.verify(verifiers=verifiers)
    n = _size(have.entries, have.ok, have.problem, "the local audit log")
    copy = theirs.verify(verifiers=verifiers, roots_at=[n] if n else [])
    total = _size(copy.entries, copy.ok, copy.problem, "the copy's audit log")
    if total <= n:
        raise TailError(f"the copy holds {total} entries, the log already {n}: it has no tail "
                        "to recover", reason="tail_not_newer")
    if n and copy.roots.get(n) != bytes.fromhex(have.head):
        raise TailError(f"the copy's first {n} entries are not the local log's (another "
                        "root): it is not a later state of this log", reason="tail_mismatch")
    local_ckpt = have.checkpoint_size
    with local.transaction():
        local.lock("audit")
        _copy(source, local, "audit_entries",
              "seq, time_ms, salt, body, leaf, erased_ms, event, requester, operator, "
              "purpose, case_ref, outcome, request_digest", "seq > ?", (n,))
        hashes = SqlHashStore(local)
        batch: list[tuple[int, int, bytes]] = []
        for level, idx, h in source.stream("SELECT level, idx, hash FROM audit_hashes"):
            batch.append((int(level), int(idx), bytes(h)))
            if len(batch) >= _CHUNK:
                hashes.put_many(batch)
                batch = []
        hashes.put_many(batch)
        _copy(source, local, "audit_checkpoints", "size, time_ms, root, note", "size > ?",
              (local_ckpt,))
        _copy(source, local, "audit_cosignatures", "size, witness, time_ms, line", "size > ?",
              (local_ckpt,))
        for peer, size, updated in source.query("SELECT peer, size, updated_ms FROM "
                                                "audit_witnessed"):
            row = local.query_one("SELECT size FROM audit_witnessed WHERE peer = ?", (peer,))
            if row is None:
                local.execute("INSERT INTO audit_witnessed (peer, size, updated_ms) "
                              "VALUES (?, ?, ?)", (peer, size, updated))
            elif int(row[0]) < int(size):
                local.execute("UPDATE audit_witnessed SET size = ?, updated_ms = ? "
                              "WHERE peer = ?", (size, updated, peer))
        _witness_side(source, local)
        nonces = 0
        for node, nonce, expires in source.stream(
                "SELECT node_id, nonce, expires_ms FROM nonces WHERE expires_ms >= ?",
                (now_ms,)):
            nonces += local.execute(
                "INSERT INTO nonces (node_id, nonce, expires_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (node_id, nonce) DO NOTHING", (node, bytes(nonce), expires))
        for node, day, items in source.query("SELECT node_id, day, items FROM usage"):
            local.execute("INSERT INTO usage (node_id, day, items) VALUES (?, ?, ?) "
                          "ON CONFLICT (node_id, day) DO UPDATE SET items = "
                          "CASE WHEN usage.items > excluded.items THEN usage.items "
                          "ELSE excluded.items END", (node, day, items))
        after = mine.verify(verifiers=verifiers)
        if not after.ok or after.entries != total:
            raise TailError(f"the recovered log does not verify: {after.problem}",
                            reason="tail_unverified")
    return TailReport(local_size=n, recovered=total - n, new_size=total,
                      checkpoint_size=after.checkpoint_size, nonces=nonces)


def _copy(source: Database, target: Database, table: str, columns: str, where: str,
          args: tuple[int, ...]) -> None:
    marks = ", ".join("?" * len(columns.split(",")))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 - fixed names
    rows: list[tuple[object, ...]] = []
    for row in source.stream(f"SELECT {columns} FROM {table} WHERE {where}", args):  # noqa: S608
        rows.append(tuple(row))
        if len(rows) >= _CHUNK:
            target.executemany(sql, rows)
            rows = []
    if rows:
        target.executemany(sql, rows)


def _witness_side(source: Database, local: Database) -> None:
    """This node as a witness: the later state per log origin, and the evidence it kept."""
    for origin, size, root, note, updated in source.query(
            "SELECT origin, size, root, note, updated_ms FROM witness_state"):
        row = local.query_one("SELECT size FROM witness_state WHERE origin = ?", (origin,))
        if row is None:
            local.execute("INSERT INTO witness_state (origin, size, root, note, updated_ms) "
                          "VALUES (?, ?, ?, ?, ?)", (origin, size, bytes(root), bytes(note),
                                                     updated))
        elif int(row[0]) < int(size):
            local.execute("UPDATE witness_state SET size = ?, root = ?, note = ?, "
                          "updated_ms = ? WHERE origin = ?",
                          (size, bytes(root), bytes(note), updated, origin))
    have = {(str(o), int(t), str(r)) for o, t, r in local.query(
        "SELECT origin, time_ms, reason FROM witness_evidence")}
    for origin, time_ms, reason, stored, submitted in source.query(
            "SELECT origin, time_ms, reason, stored_note, submitted_note FROM witness_evidence"):
        if (str(origin), int(time_ms), str(reason)) not in have:
            local.execute("INSERT INTO witness_evidence (origin, time_ms, reason, stored_note, "
                          "submitted_note) VALUES (?, ?, ?, ?, ?)",
                          (origin, time_ms, reason, None if stored is None else bytes(stored),
                           bytes(submitted)))
