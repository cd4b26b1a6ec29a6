"""C2SP tlog-witness add-checkpoint state machine."""

from __future__ import annotations

import pytest

from node.audit.checkpoint import Checkpoint, CosignatureV1Signer, open_checkpoint, sign_checkpoint
from node.audit.checkpoint_witness import (
    MAX_ADD_CHECKPOINT_BYTES,
    MAX_CONSISTENCY_PROOF_LINES,
    AddCheckpointRequest,
    BadWitnessRequest,
    CheckpointNotTrusted,
    InconsistentCheckpoint,
    UnknownLog,
    UnneededProof,
    Witness,
    WitnessConflict,
    WitnessedCheckpoint,
    WitnessProofError,
)
from node.audit.merkle import InMemoryHashStore, MerkleTree, hash_leaf
from node.audit.note import BadVerifierKey, Ed25519NoteSigner, parse_signature_lines
from node.core.errors import ConfigError

ORIGIN = "bxnode.example/audit"
NOW = 1_700_000_000


class Log:
    """A tiny log: a Merkle tree plus a checkpoint signer."""

    def __init__(self, origin: str = ORIGIN) -> None:
        self.tree = MerkleTree.empty(InMemoryHashStore())
        self.signer = Ed25519NoteSigner.generate(origin)

    def grow(self, n: int) -> int:
        start = self.tree.size
        return self.tree.append(hash_leaf(f"q{i}".encode()) for i in range(start, start + n))

    def checkpoint(self, size: int | None = None) -> bytes:
        size = self.tree.size if size is None else size
        return sign_checkpoint(
            Checkpoint(self.signer.name, size, self.tree.root(size)), [self.signer]
        )


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def cosigner() -> CosignatureV1Signer:
    return CosignatureV1Signer.generate("witness.example/w1")


@pytest.fixture
def witness(log: Log, cosigner: CosignatureV1Signer) -> Witness:
    return Witness(cosigner=cosigner, logs={ORIGIN: [log.signer.verifier]})


def test_first_checkpoint_then_consistent_growth(
    log: Log, witness: Witness, cosigner: CosignatureV1Signer
) -> None:
    log.grow(5)
    first = log.checkpoint()
    res = witness.add_checkpoint(
        old_size=0, consistency_proof=[], signed_checkpoint=first, stored=None, timestamp=NOW
    )
    assert res.new_state.size == 5 and res.new_state.root_hash == log.tree.root()
    assert res.cosignature.timestamp == NOW
    # The response body is signature lines that verify when appended to the note.
    assert len(parse_signature_lines(res.response_body())) == 1
    opened = open_checkpoint(
        first + res.response_body(),
        log_verifiers=[log.signer.verifier],
        required_cosigners=[cosigner.verifier],
    )
    assert opened.checkpoint.size == 5

    state = res.new_state
    for step in [1, 2, 7, 50]:
        old = log.tree.size
        log.grow(step)
        res = witness.add_checkpoint(
            old_size=old,
            consistency_proof=log.tree.consistency_proof(old),
            signed_checkpoint=log.checkpoint(),
            stored=state,
            timestamp=NOW + step,
        )
        state = res.new_state
    assert state.size == 65


def test_request_body_roundtrip_and_handle(log: Log, witness: Witness) -> None:
    log.grow(3)
    state = witness.add_checkpoint(
        old_size=0,
        consistency_proof=[],
        signed_checkpoint=log.checkpoint(),
        stored=None,
        timestamp=NOW,
    ).new_state
    log.grow(10)
    req = AddCheckpointRequest(
        old_size=3,
        consistency_proof=tuple(log.tree.consistency_proof(3)),
        checkpoint_note=log.checkpoint(),
    )
    body = req.to_bytes()
    assert body.startswith(b"old 3\n")
    parsed = AddCheckpointRequest.parse(body)
    assert parsed == req
    assert parsed.origin_hint == ORIGIN
    assert witness.handle(parsed, stored=state, timestamp=NOW).new_state.size == 13


def test_old_size_mismatch_is_409_with_stored_size(log: Log, witness: Witness) -> None:
    log.grow(4)
    state = witness.add_checkpoint(
        old_size=0,
        consistency_proof=[],
        signed_checkpoint=log.checkpoint(),
        stored=None,
        timestamp=NOW,
    ).new_state
    log.grow(4)
    for wrong_old in (0, 2):
        with pytest.raises(WitnessConflict) as exc:
            witness.add_checkpoint(
                old_size=wrong_old,
                consistency_proof=log.tree.consistency_proof(wrong_old) if wrong_old else [],
                signed_checkpoint=log.checkpoint(),
                stored=state,
                timestamp=NOW,
            )
        assert exc.value.stored_size == 4
        assert (exc.value.http_status, exc.value.status) == (409, "ABORTED")
        assert exc.value.response_body() == b"4\n"
    # Never-witnessed log: the stored size is zero.
    with pytest.raises(WitnessConflict) as exc:
        witness.add_checkpoint(
            old_size=4,
            consistency_proof=log.tree.consistency_proof(4),
            signed_checkpoint=log.checkpoint(),
            stored=None,
            timestamp=NOW,
        )
    assert exc.value.stored_size == 0


def test_bad_consistency_proof_is_422_and_keeps_the_note(log: Log, witness: Witness) -> None:
    log.grow(6)
    state = witness.add_checkpoint(
        old_size=0,
        consistency_proof=[],
        signed_checkpoint=log.checkpoint(),
        stored=None,
        timestamp=NOW,
    ).new_state
    log.grow(5)
    proof = log.tree.consistency_proof(6)
    bad = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    note = log.checkpoint()
    with pytest.raises(WitnessProofError) as exc:
        witness.add_checkpoint(
            old_size=6, consistency_proof=bad, signed_checkpoint=note, stored=state, timestamp=NOW
        )
    assert exc.value.http_status == 422
    assert exc.value.submitted_note == note and exc.value.stored_note == state.note


def test_forked_log_is_caught_with_both_notes(log: Log, witness: Witness) -> None:
    log.grow(8)
    state = witness.add_checkpoint(
        old_size=0,
        consistency_proof=[],
        signed_checkpoint=log.checkpoint(),
        stored=None,
        timestamp=NOW,
    ).new_state
    # The same log key signs a different tree of the same size: a fork.
    fork = MerkleTree.empty(InMemoryHashStore())
    fork.append(hash_leaf(f"evil{i}".encode()) for i in range(8))
    forked_note = sign_checkpoint(Checkpoint(ORIGIN, 8, fork.root()), [log.signer])
    with pytest.raises(InconsistentCheckpoint) as exc:
        witness.add_checkpoint(
            old_size=8,
            consistency_proof=[],
            signed_checkpoint=forked_note,
            stored=state,
            timestamp=NOW,
        )
    # C2SP/C2SP#280: same size, another root is 422 (drafts said 409), FAILED_PRECONDITION
    assert (exc.value.http_status, exc.value.status, exc.value.reason) == (
        422, "FAILED_PRECONDITION", "inconsistent_checkpoint")
    assert exc.value.stored_note == state.note
    assert exc.value.submitted_note == forked_note
    # A larger forked tree fails the consistency proof instead (422, note kept).
    fork.append([hash_leaf(b"more")])
    with pytest.raises(WitnessProofError):
        witness.add_checkpoint(
            old_size=8,
            consistency_proof=fork.consistency_proof(8),
            signed_checkpoint=sign_checkpoint(Checkpoint(ORIGIN, 9, fork.root()), [log.signer]),
            stored=state,
            timestamp=NOW,
        )
    # Re-submitting the same checkpoint is fine (same size, same root).
    again = witness.add_checkpoint(
        old_size=8,
        consistency_proof=[],
        signed_checkpoint=log.checkpoint(),
        stored=state,
        timestamp=NOW + 1,
    )
    assert again.new_state.size == 8


def test_unknown_log_untrusted_key_and_bad_requests(log: Log, witness: Witness) -> None:
    log.grow(2)
    stranger = Log("stranger.example/log")
    stranger.grow(2)
    with pytest.raises(UnknownLog) as unknown:
        witness.add_checkpoint(
            old_size=0,
            consistency_proof=[],
            signed_checkpoint=stranger.checkpoint(),
            stored=None,
            timestamp=NOW,
        )
    assert unknown.value.http_status == 404
    impostor = Log(ORIGIN)  # right origin, wrong key
    impostor.grow(2)
    with pytest.raises(CheckpointNotTrusted) as untrusted:
        witness.add_checkpoint(
            old_size=0,
            consistency_proof=[],
            signed_checkpoint=impostor.checkpoint(),
            stored=None,
            timestamp=NOW,
        )
    assert untrusted.value.http_status == 403
    with pytest.raises(BadWitnessRequest):  # old size beyond checkpoint size (400)
        witness.add_checkpoint(
            old_size=3,
            consistency_proof=[],
            signed_checkpoint=log.checkpoint(),
            stored=None,
            timestamp=NOW,
        )
    with pytest.raises(UnneededProof) as unneeded:  # proof must be empty from size zero
        witness.add_checkpoint(
            old_size=0,
            consistency_proof=[b"\x00" * 32],
            signed_checkpoint=log.checkpoint(),
            stored=None,
            timestamp=NOW,
        )
    # C2SP/C2SP#280: 422, not 400; not evidence of misbehaviour (nothing to keep)
    assert (unneeded.value.http_status, unneeded.value.status, unneeded.value.reason) == (
        422, "FAILED_PRECONDITION", "bad_consistency_proof")
    with pytest.raises(BadWitnessRequest):
        witness.add_checkpoint(
            old_size=0,
            consistency_proof=[],
            signed_checkpoint=b"garbage",
            stored=None,
            timestamp=NOW,
        )
    with pytest.raises(ConfigError):
        witness.add_checkpoint(
            old_size=0,
            consistency_proof=[],
            signed_checkpoint=log.checkpoint(),
            stored=None,
            timestamp=-1,
        )
    with pytest.raises(BadVerifierKey):
        Witness(cosigner=CosignatureV1Signer.generate("w"), logs={})


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 1\n",  # no blank line
        b"old 01\n\nx",
        b"old -1\n\nx",
        b"new 1\n\nx",
        b"old 1\nnot-base64\n\nx",
        b"old 1\nAAAA\n\nx",  # proof hash not 32 bytes
        b"old 1\n"
        + b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" * (MAX_CONSISTENCY_PROOF_LINES + 1)
        + b"\nx",
        b"old 1\n\n" + b"x" * MAX_ADD_CHECKPOINT_BYTES,
    ],
)
def test_request_parsing_bounds(body: bytes) -> None:
    with pytest.raises(BadWitnessRequest):
        AddCheckpointRequest.parse(body)


def test_max_proof_lines_accepted() -> None:
    line = b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    req = AddCheckpointRequest.parse(b"old 1\n" + line * MAX_CONSISTENCY_PROOF_LINES + b"\nx")
    assert len(req.consistency_proof) == MAX_CONSISTENCY_PROOF_LINES


def test_stored_state_for_another_origin_is_a_caller_bug(log: Log, witness: Witness) -> None:
    log.grow(1)
    wrong = WitnessedCheckpoint(origin="other", size=0, root_hash=b"\x00" * 32, note=b"n")
    with pytest.raises(ConfigError):
        witness.add_checkpoint(
            old_size=0,
            consistency_proof=[],
            signed_checkpoint=log.checkpoint(),
            stored=wrong,
            timestamp=NOW,
        )
