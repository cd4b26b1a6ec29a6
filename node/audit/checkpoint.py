"""C2SP tlog-checkpoint and tlog-cosignature (Ed25519, ``cosignature/v1``).

Spec texts checked: github.com/C2SP/C2SP ``tlog-checkpoint.md`` (sections
"Note text", "Signatures") and ``tlog-cosignature.md`` (sections "Format",
"Ed25519 signed message").  Only the Ed25519 cosignature type (key-ID type
byte 0x04) is implemented; the ML-DSA-44 type (0x06, ``subtree/v1``) is not.

A checkpoint is a signed note (:mod:`node.audit.note`) whose text is::

    <origin>\\n<decimal tree size>\\n<base64 root hash>\\n[<extension line>\\n ...]
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import nacl.exceptions
import nacl.signing

from node.audit.merkle import HASH_SIZE, MAX_TREE_SIZE
from node.audit.note import (
    MAX_KEY_NAME_BYTES,
    SIG_TYPE_COSIGNATURE_V1,
    BadVerifierKey,
    MalformedNote,
    NoteSignature,
    NoteSigner,
    NoteVerificationError,
    NoteVerifier,
    VerifiedNote,
    VerifierKey,
    _one_key,
    compute_key_id,
    decode_b64,
    is_valid_key_name,
    sign_note,
    verify_note,
)
from node.audit.origins import split_epoch
from node.core.errors import InvalidInput
from node.core.signer import Signer

__all__ = [
    "COSIGNATURE_V1_HEADER",
    "MAX_CHECKPOINT_TEXT_BYTES",
    "MAX_EXTENSION_LINES",
    "MAX_EXTENSION_LINE_BYTES",
    "MAX_ORIGIN_BYTES",
    "MAX_TIMESTAMP",
    "Checkpoint",
    "Cosignature",
    "CosignatureV1Signer",
    "CosignatureV1Verifier",
    "MalformedCheckpoint",
    "SignedCheckpoint",
    "cosignature_v1_message",
    "open_checkpoint",
    "sign_checkpoint",
]

#: The origin is length-prefixed with one byte in tlog-cosignature's ML-DSA
#: cosigned_message (``opaque log_origin<1..2^8-1>``).
MAX_ORIGIN_BYTES: Final = MAX_KEY_NAME_BYTES
#: Extension lines are "opaque and OPTIONAL ... NOT RECOMMENDED"; we carry a few.
MAX_EXTENSION_LINES: Final = 8
MAX_EXTENSION_LINE_BYTES: Final = 1024
MAX_CHECKPOINT_TEXT_BYTES: Final = (
    MAX_ORIGIN_BYTES + 20 + 45 + MAX_EXTENSION_LINES * (MAX_EXTENSION_LINE_BYTES + 1) + 3
)
#: tlog-cosignature, Format: the timestamp "MUST NOT exceed 2^63 - 1".
MAX_TIMESTAMP: Final = 2**63 - 1
#: tlog-cosignature, Ed25519 signed message: the fixed header line.
COSIGNATURE_V1_HEADER: Final = "cosignature/v1"

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_EMPTY_ROOT = hashlib.sha256(b"").digest()
_ED25519_SIG = 64
_COSIG_LEN = 8 + _ED25519_SIG


class MalformedCheckpoint(InvalidInput):
    """The note text is not a valid tlog-checkpoint body, or a field is out of range."""

    default_reason = "malformed_checkpoint"


# --- tlog-checkpoint, Note text ----------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, size, RFC 6962 root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # 1. origin: non-empty (its format is only RECOMMENDED, so not enforced
        #    beyond being one line without control characters, and our length cap).
        if (
            not self.origin
            or len(self.origin.encode("utf-8")) > MAX_ORIGIN_BYTES
            or any(ord(ch) < 0x20 for ch in self.origin)
        ):
            raise MalformedCheckpoint("invalid origin")
        # 2. tree size: a non-negative integer (bounded to 63 bits).
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise MalformedCheckpoint("tree size out of range")
        # 3. root hash: RFC 6962 root, 32 bytes; the empty tree's is SHA-256("").
        if len(self.root_hash) != HASH_SIZE:
            raise MalformedCheckpoint("root hash must be 32 bytes")
        if self.size == 0 and self.root_hash != _EMPTY_ROOT:
            raise MalformedCheckpoint("an empty tree's root hash is SHA-256 of nothing")
        # 4. extension lines: "MUST be non-empty".
        if len(self.extensions) > MAX_EXTENSION_LINES:
            raise MalformedCheckpoint("too many extension lines")
        for ext in self.extensions:
            if (
                not ext
                or len(ext.encode("utf-8")) > MAX_EXTENSION_LINE_BYTES
                or any(ord(ch) < 0x20 for ch in ext)
            ):
                raise MalformedCheckpoint("invalid extension line")

    def body(self) -> str:
        """The note text: newline-terminated origin, size, root hash, extensions."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        return "".join(line + "\n" for line in [*lines, *self.extensions])

    def body_bytes(self) -> bytes:
        return self.body().encode("utf-8")

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse note text strictly (tlog-checkpoint, Note text)."""
        if len(text.encode("utf-8")) > MAX_CHECKPOINT_TEXT_BYTES:
            raise MalformedCheckpoint("checkpoint text too large")
        if not text.endswith("\n"):
            raise MalformedCheckpoint("checkpoint text must end in a newline")
        lines = text[:-1].split("\n")
        # "a sequence of at least three non-empty lines"
        if len(lines) < 3 or any(not line for line in lines):
            raise MalformedCheckpoint("checkpoint needs at least three non-empty lines")
        origin, size_line, root_line, *extensions = lines
        # "ASCII decimal ... with no leading zeroes (unless the tree is empty)"
        if not _DECIMAL.fullmatch(size_line):
            raise MalformedCheckpoint("tree size is not a canonical decimal")
        try:
            root = decode_b64(root_line, what="root hash")
        except MalformedNote as exc:
            raise MalformedCheckpoint(exc.message) from exc
        return cls(
            origin=origin, size=int(size_line), root_hash=root, extensions=tuple(extensions)
        )


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose note verified against the log's key(s)."""

    checkpoint: Checkpoint
    note: VerifiedNote


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> bytes:
    """The signed note for ``checkpoint`` (tlog-checkpoint, Signatures).

    The log must never sign two inconsistent checkpoints; that is the caller's
    state to keep (sign only roots computed by :class:`~node.audit.merkle.MerkleTree`).
    """
    for s in signers:
        # "The log's key name in its signature line SHOULD match the origin line."  A later
        # epoch of a log (node.audit.origins, after a declared reset) keeps its key name.
        if s.name != checkpoint.origin and split_epoch(checkpoint.origin)[0] != s.name:
            raise BadVerifierKey("checkpoint signer name must equal the origin")
    return sign_note(checkpoint.body(), signers)


def open_checkpoint(
    data: bytes,
    *,
    log_verifiers: Sequence[NoteVerifier],
    origin: str | None = None,
    required_cosigners: Sequence[NoteVerifier] = (),
) -> SignedCheckpoint:
    """Verify a signed checkpoint note and parse its body.

    At least one of ``log_verifiers`` must have signed (a cosignature alone is
    not enough); every ``required_cosigners`` key must have cosigned; unknown
    signatures are ignored (tlog-checkpoint, Signatures).  If ``origin`` is
    given, the checkpoint's origin must equal it.
    """
    if not log_verifiers:
        raise BadVerifierKey("open_checkpoint needs at least one log verifier")
    note = verify_note(data, verifiers=log_verifiers, required=required_cosigners)
    if not any(note.signed_by(v) for v in log_verifiers):
        raise NoteVerificationError("checkpoint not signed by the log", reason="note_unverified")
    checkpoint = Checkpoint.parse(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise MalformedCheckpoint("checkpoint is for another log", reason="wrong_origin")
    return SignedCheckpoint(checkpoint=checkpoint, note=note)


# --- tlog-cosignature, Ed25519 (cosignature/v1) --------------------------------


def cosignature_v1_message(checkpoint_body: bytes, timestamp: int) -> bytes:
    """tlog-cosignature, Ed25519 signed message: header, time line, whole note body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedCheckpoint("cosignature timestamp out of range")
    return f"{COSIGNATURE_V1_HEADER}\ntime {timestamp}\n".encode("ascii") + checkpoint_body


@dataclass(frozen=True)
class Cosignature:
    """A parsed cosignature/v1: ``timestamped_signature`` = u64 timestamp || Ed25519 sig."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    @classmethod
    def from_note_signature(cls, sig: NoteSignature) -> Cosignature:
        if len(sig.signature) != _COSIG_LEN:
            raise MalformedCheckpoint("cosignature/v1 signatures are 72 bytes")
        (timestamp,) = struct.unpack(">Q", sig.signature[:8])
        if timestamp > MAX_TIMESTAMP:
            raise MalformedCheckpoint("cosignature timestamp exceeds 2^63 - 1")
        return cls(sig.name, sig.key_id, timestamp, sig.signature[8:])

    def note_signature(self) -> NoteSignature:
        return NoteSignature(
            name=self.name,
            key_id=self.key_id,
            signature=struct.pack(">Q", self.timestamp) + self.signature,
        )

    def line(self) -> str:
        """The signature line, ``— <name> base64(key ID || timestamp || sig)``."""
        return self.note_signature().line()


@dataclass(frozen=True)
class CosignatureV1Verifier:
    """A witness's Ed25519 cosigning key (type byte 0x04); usable with :func:`verify_note`."""

    name: str
    public_key: bytes
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name) or len(self.public_key) != 32:
            raise BadVerifierKey("cosigner needs a valid name and a 32-byte Ed25519 key")
        # tlog-cosignature, Format: SHA-256(<name> || "\n" || 0x04 || public key)[:4]
        key_id = compute_key_id(self.name, SIG_TYPE_COSIGNATURE_V1, self.public_key)
        object.__setattr__(self, "key_id", key_id)

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureV1Verifier:
        """"Ed25519 public keys MAY be encoded as vkeys with signature type 0x04"."""
        key = VerifierKey.parse(vkey)
        if key.sig_type != SIG_TYPE_COSIGNATURE_V1:
            raise BadVerifierKey("not a cosignature/v1 (0x04) verifier key")
        return cls(name=key.name, public_key=key.public_key)

    def vkey(self) -> str:
        return VerifierKey(
            self.name, self.key_id, SIG_TYPE_COSIGNATURE_V1, self.public_key
        ).encode()

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != _COSIG_LEN:
            return False
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > MAX_TIMESTAMP:
            return False
        message = cosignature_v1_message(text, timestamp)
        try:
            nacl.signing.VerifyKey(self.public_key).verify(message, signature[8:])
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            return False
        return True


class CosignatureV1Signer:
    """A witness's cosigning key.  The time comes in as an argument (sans-I/O)."""

    def __init__(self, *, name: str, seed: bytes | None = None,
                 signer: Signer | None = None) -> None:
        """The key as a 32-byte ``seed`` or as any :class:`~node.core.signer.Signer` (a
        token key), exactly one."""
        self._key = _one_key(seed, signer)
        self._verifier = CosignatureV1Verifier(name=name, public_key=self._key.public_key)

    @classmethod
    def generate(cls, name: str) -> CosignatureV1Signer:
        return cls(name=name, seed=bytes(nacl.signing.SigningKey.generate()))

    @property
    def name(self) -> str:
        return self._verifier.name

    @property
    def verifier(self) -> CosignatureV1Verifier:
        return self._verifier

    def cosign(self, checkpoint: Checkpoint, *, timestamp: int) -> Cosignature:
        """Cosign ``checkpoint`` as of ``timestamp`` (POSIX seconds)."""
        message = cosignature_v1_message(checkpoint.body_bytes(), timestamp)
        sig = self._key.sign(message)
        return Cosignature(self.name, self._verifier.key_id, timestamp, sig)
