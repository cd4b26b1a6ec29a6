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
from node.store.tail import copy_tail
from node.store.witness import WitnessTables

__all__ = ["TailError", "TailReport", "recover_tail"]

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
        nonces = copy_tail(source, local, after_seq=n, after_checkpoint=local_ckpt,
                           now_ms=now_ms, put_hashes=SqlHashStore(local).put_many)
        after = mine.verify(verifiers=verifiers)
        if not after.ok or after.entries != total:
            raise TailError(f"the recovered log does not verify: {after.problem}",
                            reason="tail_unverified")
    return TailReport(local_size=n, recovered=total - n, new_size=total,
                      checkpoint_size=after.checkpoint_size, nonces=nonces)

