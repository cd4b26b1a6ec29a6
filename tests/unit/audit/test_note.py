"""C2SP signed-note: Go reference vector, strict parsing, verification rules, bounds."""

from __future__ import annotations

import base64
import hashlib

import nacl.signing
import pytest

from node.audit.note import (
    MAX_NOTE_BYTES,
    MAX_NOTE_SIGNATURES,
    SIG_TYPE_ED25519,
    BadVerifierKey,
    Ed25519NoteSigner,
    Ed25519NoteVerifier,
    MalformedNote,
    NoteSignature,
    NoteVerificationError,
    VerifierKey,
    compute_key_id,
    parse_note,
    parse_signature_lines,
    sign_note,
    verify_note,
)
from node.core.errors import ConfigError, PeerError

# golang.org/x/mod/sumdb/note note_test.go: the reference key pair and note.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
    "qdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_NOTE = (GO_TEXT + "\n" + GO_SIG).encode()


def _go_signer() -> Ed25519NoteSigner:
    raw = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert raw[0] == SIG_TYPE_ED25519
    return Ed25519NoteSigner(name="PeterNeumann", seed=raw[1:])


def test_go_reference_vector_verifies_and_reproduces() -> None:
    v = Ed25519NoteVerifier.from_vkey(GO_VKEY)
    assert v.key_id.hex() == "c74f20a3"
    assert v.vkey() == GO_VKEY
    verified = verify_note(GO_NOTE, verifiers=[v])
    assert verified.text == GO_TEXT
    assert verified.signed_by(v)
    # Ed25519 is deterministic: our signer reproduces the Go note byte for byte.
    signer = _go_signer()
    assert signer.verifier == v
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE


def test_go_vkey_manglings_are_rejected() -> None:
    # Same check as Go's TestNewVerifier: every proper substring and every
    # single-byte increment of the vkey must fail to parse.
    b = GO_VKEY.encode()
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if i != 0 or j != len(b):
                with pytest.raises(BadVerifierKey):
                    Ed25519NoteVerifier.from_vkey(b[i:j].decode())
    for i in range(len(b)):
        mangled = bytearray(b)
        mangled[i] += 1
        with pytest.raises(BadVerifierKey):
            Ed25519NoteVerifier.from_vkey(mangled.decode())
    with pytest.raises(BadVerifierKey):
        Ed25519NoteVerifier.from_vkey("x" * 2000)


def test_tampered_text_or_signature_rejects_whole_note() -> None:
    v = Ed25519NoteVerifier.from_vkey(GO_VKEY)
    with pytest.raises(NoteVerificationError) as exc:
        verify_note(GO_NOTE.replace(b"cryptography", b"cryptographY"), verifiers=[v])
    assert exc.value.reason == "bad_note_signature"
    assert exc.value.status == "UNAUTHENTICATED"


def test_unknown_signatures_ignored_but_one_known_required() -> None:
    log = Ed25519NoteSigner.generate("log.example/a")
    other = Ed25519NoteSigner.generate("other.example/b")
    note = sign_note("hello\n", [other, log])
    got = verify_note(note, verifiers=[log.verifier])
    assert [s.name for s in got.verified] == ["log.example/a"]
    assert [s.name for s in got.ignored] == ["other.example/b"]
    with pytest.raises(NoteVerificationError) as exc:
        verify_note(sign_note("hello\n", [other]), verifiers=[log.verifier])
    assert exc.value.reason == "note_unverified"
    # Same name, different key: unknown, ignored (signed-note: name or ID alone don't match).
    impostor = Ed25519NoteSigner.generate("log.example/a")
    with pytest.raises(NoteVerificationError):
        verify_note(sign_note("hello\n", [impostor]), verifiers=[log.verifier])


def test_required_signers() -> None:
    a = Ed25519NoteSigner.generate("a.example")
    b = Ed25519NoteSigner.generate("b.example")
    only_a = sign_note("x\n", [a])
    with pytest.raises(NoteVerificationError) as exc:
        verify_note(only_a, verifiers=[a.verifier], required=[b.verifier])
    assert exc.value.reason == "missing_required_signature"
    both = sign_note("x\n", [a, b])
    assert len(verify_note(both, verifiers=[a.verifier], required=[b.verifier]).verified) == 2


def test_fails_closed_on_empty_or_ambiguous_key_sets() -> None:
    with pytest.raises(ConfigError):
        verify_note(GO_NOTE, verifiers=[])
    a = Ed25519NoteSigner.generate("a.example")
    fake = Ed25519NoteVerifier(name="a.example", public_key=bytes(32))
    object.__setattr__(fake, "key_id", a.key_id)  # collide name *and* ID on purpose
    with pytest.raises(BadVerifierKey):
        verify_note(sign_note("x\n", [a]), verifiers=[a.verifier, fake])
    with pytest.raises(ConfigError):
        sign_note("x\n", [])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"no signatures\n",
        b"text\n\n",
        GO_TEXT.encode() + b"\n" + GO_SIG.encode()[:-1],  # no final newline
        GO_TEXT.encode() + b"\n" + GO_SIG.encode().replace("\u2014".encode(), b"-"),
        GO_TEXT.encode() + b"\n" + GO_SIG.encode().replace(b"PeterNeumann ", b"Peter+N "),
        GO_TEXT.encode() + b"\n" + GO_SIG.encode().replace(b"PeterNeumann ", b"PeterNeumann  "),
        GO_TEXT.encode() + b"\n" + GO_SIG.encode().replace(b"AM=", b"AM"),  # bad padding
        GO_TEXT.encode() + b"\n" + GO_SIG.encode().replace(b"AM=", b"AN="),  # non-canonical
        GO_TEXT.encode() + b"\n" + "\u2014 k AAAA\n".encode(),  # fewer than 5 bytes
        b"tab\there\n\n" + GO_SIG.encode(),  # control character
        b"\xff\xfe\n\n" + GO_SIG.encode(),  # not UTF-8
        GO_TEXT.encode() + b"\n" + GO_SIG.encode() + b"\n",  # blank line among signatures
    ],
)
def test_malformed_notes_rejected(data: bytes) -> None:
    with pytest.raises(MalformedNote) as exc:
        parse_note(data)
    assert isinstance(exc.value, PeerError)


def test_note_text_may_contain_blank_lines() -> None:
    s = Ed25519NoteSigner.generate("k.example")
    text = "para one\n\npara two\n"
    assert verify_note(sign_note(text, [s]), verifiers=[s.verifier]).text == text


def test_size_and_signature_count_bounds() -> None:
    s = Ed25519NoteSigner.generate("k.example")
    line = NoteSignature(s.name, s.key_id, b"\x00" * 64).line().encode()
    ok = b"t\n\n" + line * 16  # the spec's minimum: accept at least 16 signatures
    assert len(parse_note(ok).signatures) == 16
    assert len(parse_note(b"t\n\n" + line * MAX_NOTE_SIGNATURES).signatures) == 64
    with pytest.raises(MalformedNote) as exc:
        parse_note(b"t\n\n" + line * (MAX_NOTE_SIGNATURES + 1))
    assert exc.value.reason == "note_too_large"
    big = b"a" * MAX_NOTE_BYTES + b"\n\n" + line
    with pytest.raises(MalformedNote) as exc:
        parse_note(big)
    assert exc.value.reason == "note_too_large"
    with pytest.raises(MalformedNote):
        sign_note("a" * MAX_NOTE_BYTES + "\n", [s])
    with pytest.raises(MalformedNote):
        sign_note("no newline", [s])


def test_key_id_and_vkey_roundtrip() -> None:
    key = nacl.signing.SigningKey(bytes(range(32)))
    pub = bytes(key.verify_key)
    v = Ed25519NoteVerifier(name="example.com/log", public_key=pub)
    assert v.key_id == hashlib.sha256(b"example.com/log\n\x01" + pub).digest()[:4]
    assert v.key_id == compute_key_id("example.com/log", 1, pub)
    parsed = VerifierKey.parse(v.vkey())
    assert parsed.sig_type == 1 and parsed.public_key == pub
    assert Ed25519NoteVerifier.from_vkey(v.vkey()) == v
    with pytest.raises(BadVerifierKey):
        Ed25519NoteVerifier(name="bad name", public_key=pub)
    with pytest.raises(BadVerifierKey):
        Ed25519NoteVerifier(name="x" * 256, public_key=pub)
    with pytest.raises(BadVerifierKey):
        Ed25519NoteVerifier(name="ok", public_key=pub[:31])


def test_signature_lines_block() -> None:
    sigs = parse_signature_lines(GO_SIG.encode() * 2)
    assert len(sigs) == 2 and sigs[0].name == "PeterNeumann"
    with pytest.raises(MalformedNote):
        parse_signature_lines(b"")
