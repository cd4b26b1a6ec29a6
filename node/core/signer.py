"""One interface for the node's Ed25519 signing key, wherever the key lives.

Everything the node signs — request and response envelopes (DSSE PAE), signed refusals,
checkpoints of its audit log (C2SP signed-note), its witness cosignatures (C2SP
tlog-cosignature), registry votes — goes through a :class:`Signer`: a raw 32-byte public
key and ``sign(message) -> 64-byte signature`` (RFC 8032 §5.1.6, pure Ed25519).  Two kinds
exist:

* :class:`SeedSigner`: the 32-byte seed in memory (a key file, ``node/federation/pki.py``);
* ``node.keys.pkcs11.Pkcs11Signer``: a non-extractable key in a PKCS#11 token (CKM_EDDSA).

Ed25519 is deterministic (RFC 8032 §5.1.6 derives the nonce from the key and the message),
so both produce the same signature for the same key and message: every verifier in bxnode
checks either without knowing which it was.  No I/O here.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, cast, runtime_checkable

import nacl.signing

__all__ = ["SeedSigner", "Signer", "SigningKeyLike", "as_signer", "secret_material",
           "signer_key_id"]

ED25519_PUBLIC_KEY_LEN = 32
ED25519_SIGNATURE_LEN = 64


@runtime_checkable
class Signer(Protocol):
    """An Ed25519 private key that signs but need not reveal itself."""

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key (RFC 8032 §5.1.5)."""
        ...

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (RFC 8032 §5.1.6)."""
        ...


class SeedSigner:
    """An Ed25519 key held in memory as its 32-byte seed (a key file)."""

    __slots__ = ("_key", "_public")

    def __init__(self, *, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._key = nacl.signing.SigningKey(seed)
        self._public = bytes(self._key.verify_key)

    @classmethod
    def generate(cls) -> SeedSigner:
        return cls(seed=bytes(nacl.signing.SigningKey.generate()))

    @property
    def public_key(self) -> bytes:
        return self._public

    @property
    def seed(self) -> bytes:
        """The private seed: only for writing a key file or importing it into a token."""
        return bytes(self._key)

    def sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message).signature)

    def __repr__(self) -> str:  # never the seed
        return f"SeedSigner(key_id={signer_key_id(self)})"


#: What the signing constructors take: a :class:`Signer`, or a PyNaCl key (a file key,
#: as tests and older callers hold it), which :func:`as_signer` wraps.
SigningKeyLike = Signer | nacl.signing.SigningKey


#: Classes known to be Signers by what the class defines (checked once each).
_SIGNER_CLASSES: set[type] = {SeedSigner}


def as_signer(key: SigningKeyLike) -> Signer:
    """``key`` as a :class:`Signer`: a PyNaCl ``SigningKey`` becomes a :class:`SeedSigner`."""
    if type(key) in _SIGNER_CLASSES:  # the runtime Protocol check below is slow (typing)
        return cast("Signer", key)
    if isinstance(key, nacl.signing.SigningKey):
        return SeedSigner(seed=bytes(key))
    if isinstance(key, Signer):
        if all(hasattr(type(key), name) for name in ("public_key", "sign")):
            _SIGNER_CLASSES.add(type(key))  # the class itself provides both
        return key
    raise TypeError(f"not a signing key: {type(key).__name__}")


def signer_key_id(signer: Signer) -> str:
    """The key id bxnode uses everywhere (``node.core.envelope.key_id_for``)."""
    from node.core.envelope import key_id_for

    return key_id_for(signer.public_key)


#: The message :func:`secret_material` has a token key sign.  No other signed format of
#: bxnode can be this message: envelopes sign ``DSSEv1 ...``, checkpoints a note whose first
#: line is the log origin ``bxnode/<node>``, cosignatures ``cosignature/v1 ...``, the
#: registry goes through PAE (``DSSEv1``) too.
_SECRET_LABEL = b"bxnode secret material v1\x00"


def secret_material(signer: Signer) -> bytes:
    """Secret keying material bound to the key, known only to its holder (for the HMAC
    pseudonyms of node/watchlist/lifecycle.py).

    A file key gives its seed, as before tokens existed, so pseudonyms already in an audit
    log stay the same.  A token key, whose seed cannot be read out, gives its Ed25519
    signature over a fixed label: deterministic (RFC 8032 §5.1.6), so stable for the key,
    and never published, since no protocol message is that label.  (Moving a key file into
    a token therefore changes the pseudonyms from then on.)
    """
    if isinstance(signer, SeedSigner):
        return signer.seed
    return hashlib.sha256(_SECRET_LABEL + signer.sign(_SECRET_LABEL)).digest()
