"""Signed envelopes: DSSE v1 PAE bytes, Ed25519 sign/verify, and every way verification fails."""

from __future__ import annotations

import dataclasses
import hashlib

import nacl.signing
import pytest

from node.core import envelope as env_mod
from node.core import limits
from node.core.envelope import Envelope, digest, key_id_for, pae, sign, verify
from node.core.errors import InvalidInput, Unauthenticated

KEY = nacl.signing.SigningKey(bytes(range(32)))
PUB = bytes(KEY.verify_key)
T = env_mod.REQUEST_TYPE


def _signed(payload: bytes = b"hello payload") -> Envelope:
    return sign(payload_type=T, payload=payload, signer="KAZ-BS", key=KEY)


# --- PAE ------------------------------------------------------------------------------------


def test_pae_bytes_exactly_per_dsse() -> None:
    assert pae("t", b"ab") == b"DSSEv1 1 t 2 ab"
    assert pae("", b"") == b"DSSEv1 0  0 "
    # DSSE's own test vector (protocol.md): type http://example.com/HelloWorld, body hello world
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world")


def test_pae_lengths_are_bytes_not_characters() -> None:
    assert pae("ü", "é".encode()) == b"DSSEv1 2 \xc3\xbc 2 \xc3\xa9"


def test_pae_payload_with_spaces_and_binary_is_unambiguous() -> None:
    assert pae("a b", b"\x00 1 x") == b"DSSEv1 3 a b 5 \x00 1 x"
    assert pae("a", b"b 1 c") != pae("a 1 b", b"c")


def test_digest_is_sha256_of_pae() -> None:
    env = _signed(b"xyz")
    assert digest(env) == hashlib.sha256(b"DSSEv1 %d %s 3 xyz" % (len(T), T.encode())).digest()


# --- key ids --------------------------------------------------------------------------------


def test_key_id_is_first_8_bytes_of_sha256_in_hex() -> None:
    kid = key_id_for(PUB)
    assert kid == hashlib.sha256(PUB).digest()[:8].hex()
    assert len(kid) == 16
    assert key_id_for(bytes(32)) == "66687aadf862bd77"


# --- sign / verify --------------------------------------------------------------------------


def test_sign_verify_roundtrip() -> None:
    env = _signed()
    assert (env.payload_type, env.payload, env.signer) == (T, b"hello payload", "KAZ-BS")
    assert env.key_id == key_id_for(PUB)
    assert len(env.signature) == limits.SIGNATURE_LEN
    assert env.signature == KEY.sign(pae(T, b"hello payload")).signature
    verify(env, PUB, expected_type=T)  # no exception


def test_signature_is_over_pae_not_raw_payload() -> None:
    env = _signed(b"abc")
    raw_sig = KEY.sign(b"abc").signature
    with pytest.raises(Unauthenticated) as err:
        verify(dataclasses.replace(env, signature=raw_sig), PUB, expected_type=T)
    assert err.value.reason == "bad_signature"


def _flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


@pytest.mark.parametrize("bit", [0, 7, 8 * 6 + 3, 8 * 12 + 7])
def test_any_flipped_payload_bit_fails(bit: int) -> None:
    env = _signed()
    with pytest.raises(Unauthenticated) as err:
        verify(dataclasses.replace(env, payload=_flip(env.payload, bit)), PUB, expected_type=T)
    assert err.value.reason == "bad_signature"


def test_every_flipped_signature_bit_fails() -> None:
    env = _signed()
    for bit in range(0, 8 * 64, 5):
        bad = dataclasses.replace(env, signature=_flip(env.signature, bit))
        with pytest.raises(Unauthenticated) as err:
            verify(bad, PUB, expected_type=T)
        assert err.value.reason == "bad_signature", bit


def test_flipped_payload_type_fails_signature_when_expected_type_matches() -> None:
    """A type changed after signing, verified against that same type, fails the signature."""
    env = _signed()
    other = _flip(T.encode(), 3).decode()
    bad = dataclasses.replace(env, payload_type=other)
    with pytest.raises(Unauthenticated) as err:
        verify(bad, PUB, expected_type=other)
    assert err.value.reason == "bad_signature"


def test_expected_type_mismatch_is_bad_payload_type() -> None:
    env = _signed()
    with pytest.raises(Unauthenticated) as err:
        verify(env, PUB, expected_type=env_mod.RESPONSE_TYPE)
    assert err.value.reason == "bad_payload_type"
    assert err.value.status == "UNAUTHENTICATED"


@pytest.mark.parametrize("length", [0, 63, 65, 128])
def test_wrong_length_signature(length: int) -> None:
    env = dataclasses.replace(_signed(), signature=bytes(length))
    with pytest.raises(Unauthenticated) as err:
        verify(env, PUB, expected_type=T)
    assert err.value.reason == "bad_signature"
    assert str(err.value) == "signature has the wrong length"


def test_other_key_fails() -> None:
    other = bytes(nacl.signing.SigningKey(bytes(32)).verify_key)
    with pytest.raises(Unauthenticated) as err:
        verify(_signed(), other, expected_type=T)
    assert err.value.reason == "bad_signature"


@pytest.mark.parametrize("public", [b"", bytes(31), bytes(33)])
def test_malformed_public_key_is_bad_signature_not_a_crash(public: bytes) -> None:
    with pytest.raises(Unauthenticated) as err:
        verify(_signed(), public, expected_type=T)
    assert err.value.reason == "bad_signature"


# --- Envelope bounds ------------------------------------------------------------------------


def _env(**over: object) -> Envelope:
    base: dict[str, object] = dict(payload_type=T, payload=b"p", signer="KAZ-BS",
                                   key_id="0011223344556677", signature=bytes(64))
    base.update(over)
    return Envelope(**base)  # type: ignore[arg-type]


def test_envelope_bounds_accepted_at_the_limit() -> None:
    _env(payload_type="t" * limits.MAX_PAYLOAD_TYPE_LEN)
    _env(payload=bytes(limits.MAX_ENVELOPE_BYTES))
    _env(signer="S" * limits.MAX_ID_LEN, key_id="k" * limits.MAX_ID_LEN)
    _env(payload=b"")  # an empty payload is the wire decoder's business


@pytest.mark.parametrize(("over", "reason"), [
    ({"payload_type": ""}, "bad_envelope"),
    ({"payload_type": "t" * (limits.MAX_PAYLOAD_TYPE_LEN + 1)}, "bad_envelope"),
    ({"payload": bytes(limits.MAX_ENVELOPE_BYTES + 1)}, "payload_too_large"),
    ({"signer": ""}, "bad_envelope"),
    ({"signer": "S" * (limits.MAX_ID_LEN + 1)}, "bad_envelope"),
    ({"key_id": ""}, "bad_envelope"),
    ({"key_id": "k" * (limits.MAX_ID_LEN + 1)}, "bad_envelope"),
])
def test_envelope_bounds_rejected(over: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        _env(**over)
    assert err.value.reason == reason
