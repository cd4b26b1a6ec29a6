"""The one signer interface (node/core/signer.py): file keys behave exactly as before."""

from __future__ import annotations

import nacl.signing
import pytest

from node.audit.checkpoint import CosignatureV1Signer
from node.audit.note import BadVerifierKey, Ed25519NoteSigner
from node.core import envelope as env_mod
from node.core.signer import SeedSigner, Signer, as_signer, secret_material, signer_key_id

SEED = bytes(range(32))


class CountingSigner:
    """A stand-in Signer (not a token): a seed key that counts its signatures."""

    def __init__(self) -> None:
        self._inner = SeedSigner(seed=SEED)
        self.signed = 0

    @property
    def public_key(self) -> bytes:
        return self._inner.public_key

    def sign(self, message: bytes) -> bytes:
        self.signed += 1
        return self._inner.sign(message)


def test_seed_signer_is_pynacl_ed25519() -> None:
    nk = nacl.signing.SigningKey(SEED)
    s = SeedSigner(seed=SEED)
    assert s.public_key == bytes(nk.verify_key)
    assert s.sign(b"m") == nk.sign(b"m").signature
    assert signer_key_id(s) == env_mod.key_id_for(bytes(nk.verify_key))
    assert "SeedSigner(key_id=" in repr(s) and SEED.hex() not in repr(s)
    with pytest.raises(ValueError, match="32 bytes"):
        SeedSigner(seed=SEED[:31])


def test_as_signer_wraps_a_pynacl_key_and_passes_a_signer_through() -> None:
    wrapped = as_signer(nacl.signing.SigningKey(SEED))
    assert isinstance(wrapped, SeedSigner) and wrapped.seed == SEED
    c = CountingSigner()
    assert as_signer(c) is c and isinstance(c, Signer)
    with pytest.raises(TypeError, match="not a signing key: bytes"):
        as_signer(SEED)  # type: ignore[arg-type]


def test_as_signer_remembers_only_classes_that_define_a_signer() -> None:
    c = CountingSigner()
    assert as_signer(c) is c and as_signer(CountingSigner()) is not c  # the class, once known

    class Bare:
        pass

    half = Bare()
    half.public_key = b"k" * 32  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="not a signing key: Bare"):
        as_signer(half)  # type: ignore[arg-type]
    half.sign = lambda m: b"s" * 64  # type: ignore[attr-defined]
    # per instance: checked every time, never remembered (a stand-in: Bare now has a
    # Signer's attributes, which mypy cannot see)
    assert as_signer(half) is half  # type: ignore[arg-type, comparison-overlap]
    with pytest.raises(TypeError, match="not a signing key: Bare"):
        as_signer(Bare())  # type: ignore[arg-type]


def test_every_signing_site_goes_through_the_signer() -> None:
    c = CountingSigner()
    env = env_mod.sign(payload_type="t", payload=b"p", signer="KAZ-BS", key=c)
    env_mod.verify(env, c.public_key, expected_type="t")
    assert env.key_id == signer_key_id(c)
    assert env == env_mod.sign(payload_type="t", payload=b"p", signer="KAZ-BS",
                               key=nacl.signing.SigningKey(SEED))  # deterministic: same bytes
    note = Ed25519NoteSigner(name="bxnode/KAZ-BS", signer=c)
    assert note.verifier.verify(b"text\n", note.sign(b"text\n"))
    assert note.sign(b"text\n") == Ed25519NoteSigner(name="bxnode/KAZ-BS", seed=SEED).sign(
        b"text\n")
    cos = CosignatureV1Signer(name="bxnode-witness/KAZ-BS", signer=c)
    assert cos.verifier.public_key == c.public_key
    assert c.signed == 3
    with pytest.raises(BadVerifierKey, match="exactly one"):
        Ed25519NoteSigner(name="n", seed=SEED, signer=c)
    with pytest.raises(BadVerifierKey, match="exactly one"):
        CosignatureV1Signer(name="n")


def test_secret_material_is_the_seed_for_a_file_key_and_a_signature_hash_otherwise() -> None:
    assert secret_material(SeedSigner(seed=SEED)) == SEED  # alert pseudonyms unchanged
    c = CountingSigner()
    m = secret_material(c)
    assert len(m) == 32 and m != SEED and m == secret_material(c)  # stable for the key
    assert c.signed == 2
    other = SeedSigner.generate()

    class Wrapped:
        public_key = other.public_key

        def sign(self, message: bytes) -> bytes:
            return other.sign(message)

    assert secret_material(Wrapped()) != m
