"""C2SP tlog-checkpoint and tlog-cosignature/v1."""

from __future__ import annotations

import base64
import struct

import nacl.signing
import pytest

from node.audit.checkpoint import (
    MAX_EXTENSION_LINES,
    Checkpoint,
    Cosignature,
    CosignatureV1Signer,
    CosignatureV1Verifier,
    MalformedCheckpoint,
    cosignature_v1_message,
    open_checkpoint,
    sign_checkpoint,
)
from node.audit.merkle import EMPTY_ROOT, InMemoryHashStore, MerkleTree, hash_leaf
from node.audit.note import (
    BadVerifierKey,
    Ed25519NoteSigner,
    NoteVerificationError,
    compute_key_id,
    parse_signature_lines,
)

ROOT = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
# The example body from tlog-checkpoint.md / tlog-cosignature.md.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_body_roundtrip_matches_spec_example() -> None:
    cp = Checkpoint.parse(SPEC_BODY)
    assert cp == Checkpoint("example.com/behind-the-sofa", 20852163, ROOT)
    assert cp.body() == SPEC_BODY
    ext = Checkpoint("o", 1, ROOT, ("ext one", "ext two"))
    assert Checkpoint.parse(ext.body()) == ext


@pytest.mark.parametrize(
    "text",
    [
        "",
        "origin\n1\n",  # fewer than three lines
        "origin\n1\n" + base64.b64encode(ROOT).decode(),  # no final newline
        "\n1\n" + base64.b64encode(ROOT).decode() + "\n",  # empty origin
        "o\n01\n" + base64.b64encode(ROOT).decode() + "\n",  # leading zero
        "o\n+1\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n1_0\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n\u0661\n" + base64.b64encode(ROOT).decode() + "\n",  # Arabic-Indic digit one
        "o\n9223372036854775808\n" + base64.b64encode(ROOT).decode() + "\n",  # 2^63
        "o\n99999999999999999999\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n",  # short root
        "o\n1\nnot base64!\n",
        "o\n1\n" + base64.b64encode(ROOT).decode() + "\n\n",  # empty extension line
        "o\n0\n" + base64.b64encode(ROOT).decode() + "\n",  # size 0 needs the empty root
        "x" * 256 + "\n1\n" + base64.b64encode(ROOT).decode() + "\n",  # origin too long
        "o\n1\n" + base64.b64encode(ROOT).decode() + "\n" + "e\n" * (MAX_EXTENSION_LINES + 1),
    ],
)
def test_malformed_bodies_rejected(text: str) -> None:
    with pytest.raises(MalformedCheckpoint):
        Checkpoint.parse(text)


def test_empty_tree_checkpoint() -> None:
    cp = Checkpoint("o", 0, EMPTY_ROOT)
    assert Checkpoint.parse(cp.body()) == cp


def test_sign_and_open() -> None:
    tree = MerkleTree.empty(InMemoryHashStore())
    tree.append(hash_leaf(bytes([i])) for i in range(5))
    log = Ed25519NoteSigner.generate("bxnode.example/audit")
    cp = Checkpoint(log.name, tree.size, tree.root())
    note = sign_checkpoint(cp, [log])
    opened = open_checkpoint(note, log_verifiers=[log.verifier], origin=log.name)
    assert opened.checkpoint == cp
    with pytest.raises(MalformedCheckpoint) as exc:
        open_checkpoint(note, log_verifiers=[log.verifier], origin="another.example")
    assert exc.value.reason == "wrong_origin"
    other = Ed25519NoteSigner.generate("bxnode.example/audit")
    with pytest.raises(NoteVerificationError):
        open_checkpoint(note, log_verifiers=[other.verifier])
    with pytest.raises(BadVerifierKey):
        open_checkpoint(note, log_verifiers=[])
    with pytest.raises(BadVerifierKey):
        sign_checkpoint(Checkpoint("not-the-signer", 1, ROOT), [log])


def test_cosignature_v1_message_matches_spec_text() -> None:
    # tlog-cosignature, "Ed25519 signed message" example.
    msg = cosignature_v1_message(SPEC_BODY.encode(), 1679315147)
    assert msg == (
        b"cosignature/v1\ntime 1679315147\n"
        b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    with pytest.raises(MalformedCheckpoint):
        cosignature_v1_message(b"", 2**63)


def test_cosign_and_verify_with_raw_ed25519() -> None:
    seed = bytes(range(32))
    witness = CosignatureV1Signer(name="witness.example/w1", seed=seed)
    pub = bytes(nacl.signing.SigningKey(seed).verify_key)
    # Key ID uses type byte 0x04 (tlog-cosignature, Format).
    assert witness.verifier.key_id == compute_key_id("witness.example/w1", 0x04, pub)
    cp = Checkpoint.parse(SPEC_BODY)
    cosig = witness.cosign(cp, timestamp=1679315147)
    # Independent check: the bytes are Ed25519 over the spec's message.
    nacl.signing.VerifyKey(pub).verify(
        cosignature_v1_message(SPEC_BODY.encode(), 1679315147), cosig.signature
    )
    # The line is key ID || u64 big-endian timestamp || signature (76 bytes).
    (sig,) = parse_signature_lines(cosig.line().encode())
    raw = sig.key_id + sig.signature
    assert len(raw) == 76
    assert struct.unpack(">Q", raw[4:12])[0] == 1679315147
    assert Cosignature.from_note_signature(sig) == cosig
    # Attached to the log's note, it verifies as a required cosigner.
    log = Ed25519NoteSigner.generate("example.com/behind-the-sofa")
    cosigned = sign_checkpoint(cp, [log]) + cosig.line().encode()
    opened = open_checkpoint(
        cosigned, log_verifiers=[log.verifier], required_cosigners=[witness.verifier]
    )
    assert opened.note.signed_by(witness.verifier)
    # A cosignature alone does not stand in for the log's signature.
    stranger = Ed25519NoteSigner.generate("example.com/behind-the-sofa")
    with pytest.raises(NoteVerificationError):
        open_checkpoint(
            cosigned, log_verifiers=[stranger.verifier], required_cosigners=[witness.verifier]
        )
    # A changed timestamp breaks the cosignature.
    forged = Cosignature(cosig.name, cosig.key_id, cosig.timestamp + 1, cosig.signature)
    with pytest.raises(NoteVerificationError):
        open_checkpoint(
            sign_checkpoint(cp, [log]) + forged.line().encode(),
            log_verifiers=[log.verifier],
            required_cosigners=[witness.verifier],
        )


def test_cosigner_vkey() -> None:
    w = CosignatureV1Signer.generate("witness.example/w1")
    vkey = w.verifier.vkey()
    assert vkey.startswith("witness.example/w1+" + w.verifier.key_id.hex() + "+B")  # 0x04
    assert CosignatureV1Verifier.from_vkey(vkey) == w.verifier
    log = Ed25519NoteSigner.generate("log.example")
    with pytest.raises(BadVerifierKey):
        CosignatureV1Verifier.from_vkey(log.verifier.vkey())
    assert not w.verifier.verify(b"x\n", b"\x00" * 71)
    assert not w.verifier.verify(b"x\n", b"\xff" * 72)  # timestamp above 2^63 - 1
