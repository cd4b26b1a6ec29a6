"""Signed envelopes: Ed25519 over DSSE's pre-authentication encoding.

The signature covers ``PAE(payload_type, payload)`` where ``payload`` is the
exact serialized bytes carried on the wire (DSSE v1 protocol,
github.com/secure-systems-lab/dsse, "Protocol")::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

``LEN`` is the ASCII decimal byte length, ``SP`` one space (0x20).  The
verifier checks the signature over those bytes and only then parses the
payload; nothing is ever re-serialized to be verified.

The *digest* of an envelope, which every response binds, is
``SHA-256(PAE(payload_type, payload))``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from node.core import limits
from node.core.errors import InvalidInput, Unauthenticated
from node.core.signer import Signer, SigningKeyLike, as_signer

__all__ = [
    "REQUEST_TYPE",
    "RESPONSE_TYPE",
    "Envelope",
    "digest",
    "key_id_for",
    "pae",
    "sign",
    "sign_with_digest",
    "verify",
]

REQUEST_TYPE = "application/vnd.bxnode.v1.request+proto"
RESPONSE_TYPE = "application/vnd.bxnode.v1.response+proto"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def key_id_for(public_key: bytes) -> str:
    """A key's id: the first 8 bytes of SHA-256 over the raw 32-byte public key, in hex."""
    return hashlib.sha256(public_key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Envelope:
    payload_type: str
    payload: bytes
    signer: str
    key_id: str
    signature: bytes

    def __post_init__(self) -> None:
        if not 0 < len(self.payload_type) <= limits.MAX_PAYLOAD_TYPE_LEN:
            raise InvalidInput("payload type missing or too long", reason="bad_envelope")
        if len(self.payload) > limits.MAX_ENVELOPE_BYTES:
            raise InvalidInput("payload too large", reason="payload_too_large")
        if not self.signer or len(self.signer) > limits.MAX_ID_LEN:
            raise InvalidInput("signer missing or too long", reason="bad_envelope")
        if not self.key_id or len(self.key_id) > limits.MAX_ID_LEN:
            raise InvalidInput("key id missing or too long", reason="bad_envelope")


def digest(env: Envelope) -> bytes:
    return hashlib.sha256(pae(env.payload_type, env.payload)).digest()


def sign(
    *, payload_type: str, payload: bytes, signer: str, key: SigningKeyLike
) -> Envelope:
    """``payload`` signed by ``key`` (a file key or a token key: node/core/signer.py)."""
    k = as_signer(key)
    return sign_with_digest(payload_type=payload_type, payload=payload, signer=signer, key=k,
                            key_id=key_id_for(k.public_key))[0]


def sign_with_digest(
    *, payload_type: str, payload: bytes, signer: str, key: Signer, key_id: str
) -> tuple[Envelope, bytes]:
    """:func:`sign` by a :class:`Signer` whose key id the caller holds, and the new
    envelope's :func:`digest`, both from one PAE encoding (the responder's hot path)."""
    message = pae(payload_type, payload)
    env = Envelope(payload_type=payload_type, payload=payload, signer=signer, key_id=key_id,
                   signature=key.sign(message))
    return env, hashlib.sha256(message).digest()


def verify(env: Envelope, public_key: bytes, *, expected_type: str) -> None:
    """Raise :class:`Unauthenticated` unless ``env`` carries a valid signature by ``public_key``."""
    if env.payload_type != expected_type:
        raise Unauthenticated(
            f"payload type {env.payload_type!r} is not {expected_type!r}", reason="bad_payload_type"
        )
    if len(env.signature) != limits.SIGNATURE_LEN:
        raise Unauthenticated("signature has the wrong length", reason="bad_signature")
    try:
        nacl.signing.VerifyKey(public_key).verify(pae(env.payload_type, env.payload),
                                                  env.signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError) as exc:
        raise Unauthenticated("signature does not verify", reason="bad_signature") from exc
