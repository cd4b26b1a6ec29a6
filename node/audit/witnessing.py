"""Cross-node witnessing over the node database: both sides of C2SP tlog-witness.

Witness side (:class:`WitnessDesk`): a peer submits its latest checkpoint with a consistency
proof from the size we last cosigned.  The sans-I/O :class:`~node.audit.checkpoint_witness.
Witness` checks signature and consistency; we persist the new state with a compare-and-swap
on the state we loaded, in one transaction, *before* returning the cosignature.  A checkpoint
inconsistent with one already witnessed (or whose proof fails) is kept as evidence, logged at
error level, and raises the ``witness_alert`` status flag (meta ``audit:witness_alert``).
Which logs we follow, with which keys, is read from the member directory at each request:
a registry version applied while the node runs (a key revoked or rotated in, a member
added or revoked) counts from the next checkpoint, without a restart.

Log side: which size each peer last cosigned (``audit_witnessed``), and the cosignatures we
collected (``audit_cosignatures``, in :mod:`node.audit.log`).  The SQL is in
:mod:`node.store.witness`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from node.audit.bundle import witness_name
from node.audit.checkpoint import (
    MAX_ORIGIN_BYTES,
    Checkpoint,
    Cosignature,
    CosignatureV1Signer,
    CosignatureV1Verifier,
)
from node.audit.checkpoint_witness import (
    AddCheckpointRequest,
    BadWitnessRequest,
    InconsistentCheckpoint,
    LogOriginUnlisted,
    LogSuperseded,
    UnknownLog,
    Witness,
    WitnessedCheckpoint,
    WitnessProofError,
)
from node.audit.hold import log_state
from node.audit.log import log_origin, log_verifiers
from node.audit.note import parse_note, parse_signature_lines
from node.audit.origins import split_epoch
from node.core.errors import ConfigError, Unauthenticated
from node.core.members import MemberDirectory
from node.core.metrics import NO_METRICS, Metrics
from node.core.signer import SigningKeyLike, as_signer
from node.store.db import Database
from node.store.witness import WITNESS_SCHEMA, EvidenceRow, WitnessStateRow, WitnessTables

__all__ = ["WITNESS_SCHEMA", "WitnessDesk", "WitnessStatus", "verify_cosignatures"]

log = structlog.get_logger("bxnode.audit.witness")


ALERT_KEY = "audit:witness_alert"

#: The peer logs a witness follows: (node id, its unrevoked log keys), sorted.
_Followed = tuple[tuple[str, tuple[bytes, ...]], ...]


@dataclass(frozen=True, slots=True)
class WitnessStatus:
    alert: bool
    evidence: int
    witnessed_logs: dict[str, int]
    our_size: int
    cosigned_by: dict[str, int]  # peer -> size it last cosigned of our log


class WitnessDesk:
    """This node as a witness of its peers' logs, and the bookkeeping of its own witnessing."""

    def __init__(self, *, store: Database, node_id: str, signing_key: SigningKeyLike,
                 directory: MemberDirectory, metrics: Metrics = NO_METRICS) -> None:
        self._tables = WitnessTables(store)
        self._metrics = metrics
        self._tables.ensure_schema()
        self._store = store
        self._directory = directory
        self.node_id = node_id
        self.name = witness_name(node_id)
        self._cosigner = CosignatureV1Signer(name=self.name, signer=as_signer(signing_key))
        #: (the followed logs and keys, their Witness): one reference, swapped whole
        self._state: tuple[_Followed, Witness | None] | None = None

    @property
    def _witness(self) -> Witness | None:
        """The logs this node witnesses and their keys, as the directory lists them *now*:
        a registry version applied while the node runs (a log's key rotated or revoked, a
        member added or revoked) counts from the next checkpoint, as for every other
        request; an expired registry refuses (``registry_expired``).  Rebuilt only when
        that list changes."""
        followed = tuple(sorted(
            (m.node_id, tuple(k.public_key for k in m.keys if not k.revoked))
            for m in self._directory.members() if m.node_id != self.node_id
            and "node" in m.roles))
        state = self._state
        if state is None or state[0] != followed:
            logs = {log_origin(node): log_verifiers(node, list(keys))
                    for node, keys in followed if keys}
            state = (followed, Witness(cosigner=self._cosigner, logs=logs) if logs else None)
            self._state = state
        return state[1]

    # --- witness side -----------------------------------------------------------------------

    def _load(self, origin: str) -> WitnessedCheckpoint | None:
        row = self._tables.state(origin)
        return None if row is None else WitnessedCheckpoint(
            row.origin, row.size, row.root, row.note)

    def add_checkpoint(self, body: bytes, *, now_ms: int) -> bytes:
        """tlog-witness add-checkpoint; returns the cosignature line(s). Raises WitnessError.

        Runs in its own transaction (a savepoint inside an open group-commit batch, whose
        commit the caller must await before answering).
        """
        witness = self._witness
        if witness is None:
            raise ConfigError("this node witnesses no logs", reason="no_logs_to_witness")
        request = AddCheckpointRequest.parse(body)
        origin = request.origin_hint
        failure: InconsistentCheckpoint | WitnessProofError | LogOriginUnlisted | None = None
        with self._store.transaction():
            self._not_on_hold()
            stored = self._load(origin)
            earlier = self._check_epoch(origin)
            try:
                result = witness.handle(request, stored=stored, timestamp=now_ms // 1000,
                                        listed_epoch=self._listed_epoch(origin))
            except LogOriginUnlisted as exc:
                self._keep_unlisted(origin, exc, now_ms=now_ms)
                failure = exc
            except (InconsistentCheckpoint, WitnessProofError) as exc:
                # evidence of misbehaviour: kept (committed) although the request is refused
                self._keep_evidence(origin, exc.reason, exc.stored_note, exc.submitted_note,
                                    now_ms=now_ms, message=exc.message)
                failure = exc
            else:
                # compare-and-swap on the state we loaded (tlog-witness: atomic with the check)
                new = result.new_state
                row = WitnessStateRow(new.origin, new.size, new.root_hash, new.note)
                if stored is None:
                    self._tables.insert_state(row, now_ms=now_ms)
                    if earlier is not None:  # a declared log reset: keep both ends
                        self._record_reset(earlier, new.note, now_ms=now_ms)
                elif not self._tables.swap_state(
                        row, expected=WitnessStateRow(stored.origin, stored.size,
                                                      stored.root_hash, stored.note),
                        now_ms=now_ms):
                    raise ConfigError("witness state changed underneath",
                                      reason="witness_race")
        if failure is not None:
            raise failure
        log.info("checkpoint_cosigned", origin=origin, size=result.new_state.size)
        return result.response_body()

    def _not_on_hold(self) -> None:
        """A restored node's witness state may be older than what it cosigned (a witness
        rolled back could cosign a fork): it neither cosigns nor answers while its own log
        is on hold (:mod:`node.audit.hold`); ``recover-tail`` brings the state back too."""
        hold = log_state(self._store)[1]
        if hold is not None:
            raise hold.error()

    def _check_epoch(self, origin: str) -> WitnessedCheckpoint | None:
        """Epochs of one node's log (:mod:`node.audit.origins`): refuse an origin older
        than one already cosigned (``log_superseded``: a declared reset closed it).  For a
        later epoch seen first, the latest state of the epoch before it (None if none)."""
        base, epoch = split_epoch(origin)
        others = [(e, o) for o in self._tables.states()
                  for b, e in [split_epoch(o)] if b == base and o != origin]
        newer = [o for e, o in others if e > epoch]
        if newer:
            raise LogSuperseded(f"log {origin!r} was reset: this witness cosigns "
                                f"{max(newer, key=lambda o: split_epoch(o)[1])!r} now")
        if self._load(origin) is not None or not others:
            return None
        return self._load(max(others)[1])

    def _listed_epoch(self, origin: str) -> int | None:
        """The epoch of the log origin the federation lists for the node ``origin`` names,
        read from the directory now (a registry version applied since counts at once); None
        for an origin of no member (the witness answers ``unknown_log``)."""
        base = split_epoch(origin)[0]
        if not base.startswith("bxnode/"):
            return None
        try:
            return self._directory.member(base[len("bxnode/"):]).log_epoch
        except Unauthenticated as exc:
            if exc.reason == "unknown_node":
                return None
            raise

    def _keep_unlisted(self, origin: str, exc: LogOriginUnlisted, *, now_ms: int) -> None:
        """A node signed an origin the federation does not list (a reset governance has not
        recorded, or a fork): refused; its first such checkpoint is kept as evidence."""
        if not any(e.origin == origin and e.reason == exc.reason
                   for e in self._tables.evidence()):
            self._tables.add_evidence(EvidenceRow(origin, now_ms, exc.reason, None,
                                                  exc.submitted_note))
        log.warning("log_origin_unlisted", origin=origin, detail=exc.message)
        self._metrics.witness_alert(kind=exc.reason)

    def _record_reset(self, earlier: WitnessedCheckpoint, first: bytes, *, now_ms: int) -> None:
        """The end of the old origin as cosigned beside the first checkpoint of the new
        one: evidence of the reset (not of misbehaviour: no alert)."""
        self._tables.add_evidence(EvidenceRow(earlier.origin, now_ms, "log_reset",
                                              earlier.note, first))
        log.warning("log_origin_reset", origin=earlier.origin, size=earlier.size,
                    new_origin=Checkpoint.parse(parse_note(first).text).origin)

    def witnessed_checkpoint(self, origin: str, *, now_ms: int) -> tuple[bytes, bytes]:
        """``(signed checkpoint, fresh cosignature line)`` of the latest checkpoint of
        ``origin`` we cosigned, from the stored state; ``(b"", b"")`` if none yet.  Raises
        :class:`UnknownLog` for a log we do not witness."""
        if len(origin.encode("utf-8")) > MAX_ORIGIN_BYTES:
            raise BadWitnessRequest("origin too long")
        witness = self._witness
        if witness is None or not witness.follows(origin):
            raise UnknownLog(f"unknown log {origin!r}")
        self._not_on_hold()
        stored = self._load(origin)
        if stored is None:
            return b"", b""
        cosig = witness.recosign(stored, timestamp=now_ms // 1000)
        return stored.note, cosig.line().encode("utf-8")

    def _keep_evidence(self, origin: str, reason: str, stored: bytes | None, submitted: bytes,
                       *, now_ms: int, message: str) -> None:
        self._tables.add_evidence(EvidenceRow(origin, now_ms, reason, stored, submitted))
        self._store.set_meta(ALERT_KEY, str(now_ms))
        log.error("inconsistent_checkpoint", origin=origin, reason=reason, detail=message,
                  alert="witness_alert")
        self._metrics.witness_alert(kind=reason)

    def evidence(self) -> list[dict[str, Any]]:
        return [{"origin": e.origin, "time_ms": e.time_ms, "reason": e.reason,
                 "stored_note": None if e.stored_note is None else e.stored_note.decode(),
                 "submitted_note": e.submitted_note.decode()}
                for e in self._tables.evidence()]

    # --- log side ---------------------------------------------------------------------------

    def witnessed_size(self, peer: str) -> int:
        return self._tables.witnessed_size(peer)

    def set_witnessed_size(self, peer: str, size: int, *, now_ms: int) -> None:
        self._tables.set_witnessed_size(peer, size, now_ms=now_ms)

    def status(self, *, our_size: int) -> WitnessStatus:
        return WitnessStatus(
            alert=self._store.get_meta(ALERT_KEY) is not None,
            evidence=self._tables.evidence_count(),
            witnessed_logs=self._tables.states(),
            our_size=our_size,
            cosigned_by=self._tables.witnessed_sizes())


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
