"""C2SP tlog-witness ``add-checkpoint`` as a sans-I/O state machine.

Spec text checked: github.com/C2SP/C2SP ``tlog-witness.md``, section
"add-checkpoint".  HTTP is the caller's job; so is storage.  Per log origin
the caller keeps one :class:`WitnessedCheckpoint` (the latest cosigned
checkpoint).  The flow is::

    request = AddCheckpointRequest.parse(body)            # bounded, strict
    stored = db.load(request.origin_hint)                 # may be None
    result = witness.add_checkpoint(request=request, stored=stored, timestamp=now)
    db.compare_and_swap(stored, result.new_state)         # atomically, BEFORE answering
    respond(200, result.response_body())

The spec requires the old-size check and the write of the new state to be one
atomic step (otherwise a slower request can roll the witness back), which is
why the stored state goes in and comes out as a value: the caller persists it
with a compare-and-swap on the state it loaded.

Every refusal is a :class:`WitnessError` carrying the HTTP status the spec
prescribes (``http_status``) beside the gRPC status the server answers with
(``status``).  The status codes follow the current text (C2SP/C2SP#280: a same-size
checkpoint with another root, and a non-empty proof from old size zero, are 422 like
any inconsistent request; only an old-size mismatch is 409, always with the size body).
The mapping, one gRPC status per HTTP status::

    HTTP  gRPC                 reason                        class
    400   INVALID_ARGUMENT     bad_witness_request, ...      BadWitnessRequest
    403   PERMISSION_DENIED    checkpoint_not_trusted        CheckpointNotTrusted
    404   NOT_FOUND            unknown_log                   UnknownLog
    409   ABORTED              old_size_mismatch             WitnessConflict (+ size)
    422   FAILED_PRECONDITION  inconsistent_checkpoint       InconsistentCheckpoint
    422   FAILED_PRECONDITION  bad_consistency_proof         WitnessProofError, UnneededProof
    422   FAILED_PRECONDITION  log_superseded                LogSuperseded (bxnode: a log
                                                             reset, node.audit.origins)
    422   FAILED_PRECONDITION  log_origin_unlisted           LogOriginUnlisted (bxnode: an
                                                             origin the federation does not
                                                             list for the node)

ABORTED is gRPC's "retry at a higher level": the client retries from the size the witness
returned (trailer ``bxnode-witness-size``).  FAILED_PRECONDITION: the request can never
succeed against the witness's state; do not retry it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from node.audit.checkpoint import (
    MAX_TIMESTAMP,
    Checkpoint,
    Cosignature,
    CosignatureV1Signer,
    MalformedCheckpoint,
)
from node.audit.merkle import HASH_SIZE, ProofError, verify_consistency
from node.audit.note import (
    MAX_NOTE_BYTES,
    BadVerifierKey,
    MalformedNote,
    NoteVerificationError,
    NoteVerifier,
    decode_b64,
    parse_note,
    verify_note,
)
from node.audit.origins import split_epoch
from node.core.errors import ConfigError, PeerError

__all__ = [
    "MAX_ADD_CHECKPOINT_BYTES",
    "MAX_CONSISTENCY_PROOF_LINES",
    "AddCheckpointRequest",
    "AddCheckpointResult",
    "BadWitnessRequest",
    "CheckpointNotTrusted",
    "InconsistentCheckpoint",
    "LogOriginUnlisted",
    "LogSuperseded",
    "UnknownLog",
    "UnneededProof",
    "Witness",
    "WitnessConflict",
    "WitnessError",
    "WitnessProofError",
    "WitnessedCheckpoint",
]

#: "The client MUST NOT send more than 63 consistency proof lines."
MAX_CONSISTENCY_PROOF_LINES: Final = 63
#: Old-size line + 63 base64 hashes + blank line + the checkpoint note.
MAX_ADD_CHECKPOINT_BYTES: Final = 32 + MAX_CONSISTENCY_PROOF_LINES * 45 + 1 + MAX_NOTE_BYTES

_OLD_LINE = re.compile(r"old (0|[1-9][0-9]{0,18})")


# --- Errors (each with the spec's HTTP status) ---------------------------------


class WitnessError(PeerError):
    """The submitted add-checkpoint request was refused."""

    http_status: int = 400


class BadWitnessRequest(WitnessError):
    """Malformed body, or old size larger than the checkpoint size (400)."""

    status = "INVALID_ARGUMENT"
    default_reason = "bad_witness_request"
    http_status = 400


class UnknownLog(WitnessError):
    """The checkpoint's origin is not a log this witness follows (404)."""

    status = "NOT_FOUND"
    default_reason = "unknown_log"
    http_status = 404


class CheckpointNotTrusted(WitnessError):
    """No signature from a trusted key for the origin verified (403)."""

    status = "PERMISSION_DENIED"
    default_reason = "checkpoint_not_trusted"
    http_status = 403


class WitnessConflict(WitnessError):
    """Old size differs from the latest cosigned size (409, body = ``stored_size``)."""

    status = "ABORTED"
    default_reason = "old_size_mismatch"
    http_status = 409
    content_type: Final = "text/x.tlog.size"

    def __init__(self, message: str, *, stored_size: int) -> None:
        super().__init__(message)
        self.stored_size = stored_size

    def response_body(self) -> bytes:
        """The 409 body the spec prescribes: the stored size in decimal and a newline."""
        return f"{self.stored_size}\n".encode("ascii")


class InconsistentCheckpoint(WitnessError):
    """Evidence of log misbehaviour: two validly signed checkpoints of one size, different roots.

    Carries both signed notes; keep them, they prove the log forked (422; drafts before
    C2SP/C2SP#280 said 409).
    """

    status = "FAILED_PRECONDITION"
    default_reason = "inconsistent_checkpoint"
    http_status = 422

    def __init__(self, message: str, *, stored_note: bytes, submitted_note: bytes) -> None:
        super().__init__(message)
        self.stored_note = stored_note
        self.submitted_note = submitted_note


class WitnessProofError(WitnessError):
    """The consistency proof does not verify (422).

    The submitted note verified against the log's key, so the spec allows
    logging it "as it might be proof of log misbehavior": both notes are kept.
    """

    status = "FAILED_PRECONDITION"
    default_reason = "bad_consistency_proof"
    http_status = 422

    def __init__(self, message: str, *, stored_note: bytes | None, submitted_note: bytes) -> None:
        super().__init__(message)
        self.stored_note = stored_note
        self.submitted_note = submitted_note


class LogSuperseded(WitnessError):
    """A checkpoint of an origin whose log declared a reset: the witness already cosigns a
    later epoch of it (:mod:`node.audit.origins`), so the old origin is closed."""

    status = "FAILED_PRECONDITION"
    default_reason = "log_superseded"
    http_status = 422


class LogOriginUnlisted(WitnessError):
    """A validly signed checkpoint of a later epoch of a log than the one the federation
    (registry or members file) lists for its node: a reset governance has not recorded.

    Refused, not held: a witness that cosigned any new origin would let a node fork its log
    silently by resetting it.  Carries the signed note (kept as evidence: the node signed an
    origin nobody announced).  Once the registry lists the origin, the same checkpoint is
    accepted from size 0.
    """

    status = "FAILED_PRECONDITION"
    default_reason = "log_origin_unlisted"
    http_status = 422

    def __init__(self, message: str, *, submitted_note: bytes) -> None:
        super().__init__(message)
        self.submitted_note = submitted_note


class UnneededProof(WitnessError):
    """A non-empty consistency proof from old size zero (422; earlier drafts: 400).

    "If the old size is zero, the consistency proof MUST be empty, because the empty
    tree is consistent with any tree."  Not evidence of misbehaviour: nothing is kept.
    """

    status = "FAILED_PRECONDITION"
    default_reason = "bad_consistency_proof"
    http_status = 422


# --- Values ---------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessedCheckpoint:
    """The state a witness persists per log: the latest checkpoint it cosigned."""

    origin: str
    size: int
    root_hash: bytes
    note: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.root_hash) != HASH_SIZE or self.size < 0 or not self.note:
            raise ConfigError("stored witness state is corrupt", reason="witness_state_corrupt")


@dataclass(frozen=True)
class AddCheckpointRequest:
    """tlog-witness add-checkpoint request body, parsed strictly."""

    old_size: int
    consistency_proof: tuple[bytes, ...]
    checkpoint_note: bytes

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpointRequest:
        if len(body) > MAX_ADD_CHECKPOINT_BYTES:
            raise BadWitnessRequest("request too large", reason="request_too_large")
        # "an old size line, zero or more consistency proof lines, and an empty
        # line, followed by a checkpoint"; each line ends in U+000A.
        head, sep, note = body.partition(b"\n\n")
        if not sep:
            raise BadWitnessRequest("request has no blank line before the checkpoint")
        try:
            lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError as exc:
            raise BadWitnessRequest("request header is not ASCII") from exc
        match = _OLD_LINE.fullmatch(lines[0])
        if match is None:
            raise BadWitnessRequest("malformed old size line")
        proof_lines = lines[1:]
        if len(proof_lines) > MAX_CONSISTENCY_PROOF_LINES:
            raise BadWitnessRequest("too many consistency proof lines")
        try:
            proof = tuple(decode_b64(line, what="proof hash") for line in proof_lines)
        except MalformedNote as exc:
            raise BadWitnessRequest(exc.message) from exc
        if any(len(p) != HASH_SIZE for p in proof):
            raise BadWitnessRequest("proof hashes are 32 bytes")
        return cls(old_size=int(match.group(1)), consistency_proof=proof, checkpoint_note=note)

    def to_bytes(self) -> bytes:
        lines = [f"old {self.old_size}"]
        lines += [base64.b64encode(p).decode("ascii") for p in self.consistency_proof]
        return ("\n".join(lines) + "\n\n").encode("ascii") + self.checkpoint_note

    @property
    def origin_hint(self) -> str:
        """The checkpoint's origin line, UNVERIFIED: only to look up the stored state."""
        try:
            return Checkpoint.parse(parse_note(self.checkpoint_note).text).origin
        except (MalformedNote, MalformedCheckpoint) as exc:
            raise BadWitnessRequest("malformed checkpoint") from exc


@dataclass(frozen=True)
class AddCheckpointResult:
    """What to persist (atomically, first) and what to answer."""

    cosignature: Cosignature
    new_state: WitnessedCheckpoint
    checkpoint: Checkpoint

    def response_body(self) -> bytes:
        """The 200 body: one signature line per witness key (here, one)."""
        return self.cosignature.line().encode("utf-8")


# --- The witness -------------------------------------------------------------------


class Witness:
    """Cosigns checkpoints of the logs it follows, never two inconsistent ones."""

    def __init__(
        self,
        *,
        cosigner: CosignatureV1Signer,
        logs: Mapping[str, Sequence[NoteVerifier]],
    ) -> None:
        if not logs or any(not keys for keys in logs.values()):
            raise BadVerifierKey("a witness needs at least one log, each with a key")
        self._cosigner = cosigner
        self._logs = {origin: tuple(keys) for origin, keys in logs.items()}

    @property
    def cosigner_name(self) -> str:
        return self._cosigner.name

    def follows(self, origin: str) -> bool:
        """Whether ``origin`` is a log this witness cosigns."""
        return self._keys_for(origin) is not None

    def _keys_for(self, origin: str) -> tuple[NoteVerifier, ...] | None:
        """The keys of ``origin``: a followed log's, or a later epoch's of one
        (``<origin>/log-<k>``, :mod:`node.audit.origins`: the same keys sign every epoch).
        Which epochs are superseded is the caller's state, checked before this."""
        keys = self._logs.get(origin)
        if keys is None:
            base, epoch = split_epoch(origin)
            keys = self._logs.get(base) if epoch > 1 else None
        return keys

    def recosign(self, stored: WitnessedCheckpoint, *, timestamp: int) -> Cosignature:
        """A fresh cosignature of the checkpoint already cosigned (tlog-cosignature: the
        witness vouches again, at ``timestamp``, for a checkpoint it verified)."""
        if not self.follows(stored.origin):
            raise UnknownLog(f"unknown log {stored.origin!r}")
        checkpoint = Checkpoint.parse(parse_note(stored.note).text)
        return self._cosigner.cosign(checkpoint, timestamp=timestamp)

    def add_checkpoint(
        self,
        *,
        old_size: int,
        consistency_proof: Sequence[bytes],
        signed_checkpoint: bytes,
        stored: WitnessedCheckpoint | None,
        timestamp: int,
        listed_epoch: int | None = None,
    ) -> AddCheckpointResult:
        """tlog-witness add-checkpoint, checks in the spec's order.

        ``stored`` is the persisted state for the checkpoint's origin (``None``
        if never cosigned); ``timestamp`` is now, in POSIX seconds.  ``listed_epoch``:
        the epoch of the log's origin the federation lists for its node
        (:mod:`node.audit.origins`); once the signature verified, an earlier epoch is
        refused :class:`LogSuperseded`, a later one :class:`LogOriginUnlisted`.
        """
        if not 0 <= timestamp <= MAX_TIMESTAMP:
            raise ConfigError("clock out of range", reason="bad_clock")
        if len(consistency_proof) > MAX_CONSISTENCY_PROOF_LINES:
            raise BadWitnessRequest("too many consistency proof lines")
        # Parse (unverified) to find the origin and its keys.
        try:
            unverified = Checkpoint.parse(parse_note(signed_checkpoint).text)
        except (MalformedNote, MalformedCheckpoint) as exc:
            raise BadWitnessRequest(f"malformed checkpoint: {exc.message}") from exc
        origin = unverified.origin
        # "If the checkpoint origin is unknown, the witness MUST respond with 404."
        keys = self._keys_for(origin)
        if keys is None:
            raise UnknownLog(f"unknown log {origin!r}")
        # "MUST verify the checkpoint signature against the public key(s) it
        # trusts for the checkpoint origin, and MUST ignore signatures from
        # unknown keys ... If none verify, 403."
        try:
            note = verify_note(signed_checkpoint, verifiers=keys)
        except NoteVerificationError as exc:
            raise CheckpointNotTrusted(exc.message) from exc
        checkpoint = Checkpoint.parse(note.text)
        if listed_epoch is not None:
            self._check_listed(origin, listed_epoch, signed_checkpoint)
        if stored is not None and stored.origin != origin:
            raise ConfigError("stored state belongs to another log", reason="witness_state_mixup")
        # "The old size MUST be equal to or lower than the checkpoint size" (400).
        if old_size < 0 or old_size > checkpoint.size:
            raise BadWitnessRequest("old size larger than checkpoint size")
        # "MUST check that the old size matches the size of the latest checkpoint
        # it cosigned ... (or zero if it never cosigned one)" (409 + size body).
        stored_size = stored.size if stored is not None else 0
        if old_size != stored_size:
            raise WitnessConflict(
                f"old size {old_size} is not the witnessed size {stored_size}",
                stored_size=stored_size,
            )
        stored_note = stored.note if stored is not None else None
        if old_size == 0:
            # "If the old size is zero, the consistency proof MUST be empty" (422).
            if consistency_proof:
                raise UnneededProof("consistency proof must be empty from size zero")
        elif old_size == checkpoint.size:
            # "If the old size matches the checkpoint size, the witness MUST check
            # that the root hashes are also identical" (422 since C2SP/C2SP#280).
            assert stored is not None
            if checkpoint.root_hash != stored.root_hash:
                raise InconsistentCheckpoint(
                    f"log {origin!r} signed two different roots for size {old_size}",
                    stored_note=stored.note,
                    submitted_note=signed_checkpoint,
                )
            if consistency_proof:
                raise WitnessProofError(
                    "consistency proof must be empty for equal sizes",
                    stored_note=stored_note,
                    submitted_note=signed_checkpoint,
                )
        else:
            # "The consistency proof lines MUST encode a Merkle Consistency Proof
            # from the old size to the checkpoint size" (RFC 9162 2.1.4.2), else 422.
            assert stored is not None
            try:
                verify_consistency(
                    old_size=old_size,
                    new_size=checkpoint.size,
                    old_root=stored.root_hash,
                    new_root=checkpoint.root_hash,
                    proof=consistency_proof,
                )
            except ProofError as exc:
                raise WitnessProofError(
                    f"consistency proof does not verify: {exc.message}",
                    stored_note=stored_note,
                    submitted_note=signed_checkpoint,
                ) from exc
        # All checks passed: cosign, and hand back the state to persist first.
        cosignature = self._cosigner.cosign(checkpoint, timestamp=timestamp)
        new_state = WitnessedCheckpoint(
            origin=origin,
            size=checkpoint.size,
            root_hash=checkpoint.root_hash,
            note=signed_checkpoint,
        )
        return AddCheckpointResult(
            cosignature=cosignature, new_state=new_state, checkpoint=checkpoint
        )

    @staticmethod
    def _check_listed(origin: str, listed_epoch: int, signed_checkpoint: bytes) -> None:
        base, epoch = split_epoch(origin)
        if epoch < listed_epoch:
            raise LogSuperseded(f"log {origin!r} was reset: the federation lists epoch "
                                f"{listed_epoch} of {base!r}")
        if epoch > listed_epoch:
            raise LogOriginUnlisted(
                f"log origin {origin!r} is not the one the federation lists for its node "
                f"(epoch {listed_epoch}): a reset the registry has not recorded",
                submitted_note=signed_checkpoint)

    def handle(
        self, request: AddCheckpointRequest, *, stored: WitnessedCheckpoint | None,
        timestamp: int, listed_epoch: int | None = None,
    ) -> AddCheckpointResult:
        """:meth:`add_checkpoint` on a parsed request body."""
        return self.add_checkpoint(
            old_size=request.old_size,
            consistency_proof=request.consistency_proof,
            signed_checkpoint=request.checkpoint_note,
            stored=stored,
            timestamp=timestamp,
            listed_epoch=listed_epoch,
        )
