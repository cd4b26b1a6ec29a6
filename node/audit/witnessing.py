"""Cross-node witnessing over the node database: both sides of C2SP tlog-witness.

Witness side (:class:`WitnessDesk`): a peer submits its latest checkpoint with a consistency
proof from the size we last cosigned.  The sans-I/O :class:`~node.audit.checkpoint_witness.
Witness` checks signature and consistency; we persist the new state with a compare-and-swap
on the state we loaded, in one transaction, *before* returning the cosignature.  A checkpoint
inconsistent with one already witnessed (or whose proof fails) is kept as evidence, logged at
error level, and raises the ``witness_alert`` status flag (meta ``audit:witness_alert``).

Log side: which size each peer last cosigned (``audit_witnessed``), and the cosignatures we
collected (``audit_cosignatures``, in :mod:`node.audit.log`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nacl.signing
import structlog

from node.audit.bundle import witness_name
from node.audit.checkpoint import Cosignature, CosignatureV1Signer, CosignatureV1Verifier
from node.audit.checkpoint_witness import (
    AddCheckpointRequest,
    InconsistentCheckpoint,
    Witness,
    WitnessedCheckpoint,
    WitnessProofError,
)
from node.audit.log import log_origin, log_verifiers
from node.audit.note import parse_signature_lines
from node.core.errors import ConfigError, Unauthenticated
from node.core.members import MemberDirectory
from node.store.sqlcipher import Store

__all__ = ["WITNESS_SCHEMA", "WitnessDesk", "WitnessStatus", "verify_cosignatures"]

log = structlog.get_logger("bxnode.audit.witness")

WITNESS_SCHEMA = """
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
"""

ALERT_KEY = "audit:witness_alert"


@dataclass(frozen=True, slots=True)
class WitnessStatus:
    alert: bool
    evidence: int
    witnessed_logs: dict[str, int]
    our_size: int
    cosigned_by: dict[str, int]  # peer -> size it last cosigned of our log


class WitnessDesk:
    """This node as a witness of its peers' logs, and the bookkeeping of its own witnessing."""

    def __init__(self, *, store: Store, node_id: str, signing_key: nacl.signing.SigningKey,
                 directory: MemberDirectory) -> None:
        store.ensure_schema("audit_witness", WITNESS_SCHEMA)
        self._store = store
        self.node_id = node_id
        self.name = witness_name(node_id)
        self._cosigner = CosignatureV1Signer(name=self.name, seed=bytes(signing_key))
        logs = {log_origin(m.node_id): log_verifiers(m.node_id, [k.public_key for k in m.keys
                                                                 if not k.revoked])
                for m in directory.members() if m.node_id != node_id and "node" in m.roles}
        logs = {o: v for o, v in logs.items() if v}
        self._witness = Witness(cosigner=self._cosigner, logs=logs) if logs else None

    # --- witness side -----------------------------------------------------------------------

    def _load(self, origin: str) -> WitnessedCheckpoint | None:
        row = self._store.query_one(
            "SELECT origin, size, root, note FROM witness_state WHERE origin=?", (origin,))
        return None if row is None else WitnessedCheckpoint(
            str(row[0]), int(row[1]), bytes(row[2]), bytes(row[3]))

    def add_checkpoint(self, body: bytes, *, now_ms: int) -> bytes:
        """tlog-witness add-checkpoint; returns the cosignature line(s). Raises WitnessError.

        Runs in its own transaction (a savepoint inside an open group-commit batch, whose
        commit the caller must await before answering).
        """
        if self._witness is None:
            raise ConfigError("this node witnesses no logs", reason="no_logs_to_witness")
        request = AddCheckpointRequest.parse(body)
        origin = request.origin_hint
        failure: InconsistentCheckpoint | WitnessProofError | None = None
        with self._store.transaction():
            stored = self._load(origin)
            try:
                result = self._witness.handle(request, stored=stored,
                                              timestamp=now_ms // 1000)
            except (InconsistentCheckpoint, WitnessProofError) as exc:
                # evidence of misbehaviour: kept (committed) although the request is refused
                self._keep_evidence(origin, exc.reason, exc.stored_note, exc.submitted_note,
                                    now_ms=now_ms, message=exc.message)
                failure = exc
            else:
                # compare-and-swap on the state we loaded (tlog-witness: atomic with the check)
                new = result.new_state
                if stored is None:
                    self._store.execute("INSERT INTO witness_state VALUES (?,?,?,?,?)",
                                        (new.origin, new.size, new.root_hash, new.note, now_ms))
                elif self._store.execute(
                        "UPDATE witness_state SET size=?, root=?, note=?, updated_ms=? "
                        "WHERE origin=? AND size=? AND root=?",
                        (new.size, new.root_hash, new.note, now_ms, new.origin, stored.size,
                         stored.root_hash)) != 1:
                    raise ConfigError("witness state changed underneath",
                                      reason="witness_race")
        if failure is not None:
            raise failure
        log.info("checkpoint_cosigned", origin=origin, size=result.new_state.size)
        return result.response_body()

    def _keep_evidence(self, origin: str, reason: str, stored: bytes | None, submitted: bytes,
                       *, now_ms: int, message: str) -> None:
        self._store.execute(
            "INSERT INTO witness_evidence (origin, time_ms, reason, stored_note, "
            "submitted_note) VALUES (?,?,?,?,?)", (origin, now_ms, reason, stored, submitted))
        self._store.set_meta(ALERT_KEY, str(now_ms))
        log.error("inconsistent_checkpoint", origin=origin, reason=reason, detail=message,
                  alert="witness_alert")

    def evidence(self) -> list[dict[str, Any]]:
        return [{"origin": r[0], "time_ms": r[1], "reason": r[2],
                 "stored_note": None if r[3] is None else bytes(r[3]).decode(),
                 "submitted_note": bytes(r[4]).decode()}
                for r in self._store.query(
                    "SELECT origin, time_ms, reason, stored_note, submitted_note "
                    "FROM witness_evidence ORDER BY id")]

    # --- log side ---------------------------------------------------------------------------

    def witnessed_size(self, peer: str) -> int:
        row = self._store.query_one("SELECT size FROM audit_witnessed WHERE peer=?", (peer,))
        return 0 if row is None else int(row[0])

    def set_witnessed_size(self, peer: str, size: int, *, now_ms: int) -> None:
        self._store.execute("INSERT OR REPLACE INTO audit_witnessed VALUES (?,?,?)",
                            (peer, size, now_ms))

    def status(self, *, our_size: int) -> WitnessStatus:
        return WitnessStatus(
            alert=self._store.get_meta(ALERT_KEY) is not None,
            evidence=int(self._store.query_one("SELECT count(*) FROM witness_evidence")[0]),  # type: ignore[index]
            witnessed_logs={str(r[0]): int(r[1]) for r in self._store.query(
                "SELECT origin, size FROM witness_state ORDER BY origin")},
            our_size=our_size,
            cosigned_by={str(r[0]): int(r[1]) for r in self._store.query(
                "SELECT peer, size FROM audit_witnessed ORDER BY peer")})


def verify_cosignatures(lines: bytes, *, checkpoint_body: bytes,
                        witness: CosignatureV1Verifier) -> list[Cosignature]:
    """The cosignature lines a witness returned that verify over our checkpoint body."""
    out = []
    for sig in parse_signature_lines(lines):
        if sig.name != witness.name or sig.key_id != witness.key_id:
            continue
        if not witness.verify(checkpoint_body, sig.signature):
            raise Unauthenticated("witness cosignature does not verify",
                                  reason="bad_cosignature")
        out.append(Cosignature.from_note_signature(sig))
    if not out:
        raise Unauthenticated("witness returned no cosignature of its key",
                              reason="bad_cosignature")
    return out
