"""C2SP signed-note: strict parsing, Ed25519 signing and verification, vkeys.

Spec text checked: github.com/C2SP/C2SP ``signed-note.md`` (sections "Format",
"Signatures", "Signature types", "Ed25519 signatures").  The verifier-key
string (``vkey``, ``<name>+<hex key ID>+<base64(type || public key)>``) is the
encoding of golang.org/x/mod/sumdb/note ``NewVerifier``, which
``tlog-cosignature.md`` cites as ``signed-note#verifier-keys``; the stored copy
of ``signed-note.md`` we could read has no such section yet, so the Go
package's rules are the reference (8 hex digits, key ID recomputed and
compared).

Sans-I/O: everything takes and returns bytes or typed values.  Private keys
come in as 32-byte seeds; where they are kept is the caller's business.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import nacl.exceptions
import nacl.signing

from node.core.errors import ConfigError, InvalidInput, Unauthenticated
from node.core.signer import SeedSigner, Signer

__all__ = [
    "EM_DASH",
    "MAX_KEY_NAME_BYTES",
    "MAX_NOTE_BYTES",
    "MAX_NOTE_SIGNATURES",
    "MAX_VKEY_CHARS",
    "SIG_TYPE_COSIGNATURE_V1",
    "SIG_TYPE_ED25519",
    "BadVerifierKey",
    "Ed25519NoteSigner",
    "Ed25519NoteVerifier",
    "MalformedNote",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerificationError",
    "NoteVerifier",
    "VerifiedNote",
    "VerifierKey",
    "compute_key_id",
    "decode_b64",
    "is_valid_key_name",
    "parse_note",
    "parse_signature_lines",
    "sign_note",
    "verify_note",
]

#: Upper bound on a whole signed note.  The spec asks verifiers to accept at
#: least 16 signatures of up to ~5 kB (post-quantum) each: 16 * 6.7 kB of
#: base64 plus text fits comfortably.  A checkpoint is typically < 1 kB.
MAX_NOTE_BYTES: Final = 256 * 1024
#: "MUST accept at least up to 16 signatures" (signed-note, Format).
MAX_NOTE_SIGNATURES: Final = 64
#: Key names (and checkpoint origins) are length-prefixed with one byte in the
#: ML-DSA cosigned_message (tlog-cosignature), so 255 bytes is a natural cap.
MAX_KEY_NAME_BYTES: Final = 255
#: A vkey is name + 8 hex + base64 of a short key.
MAX_VKEY_CHARS: Final = 1024

#: U+2014, which starts every signature line (signed-note, Format).
EM_DASH: Final = "\u2014"
_SIG_PREFIX: Final = EM_DASH + " "

#: signed-note, Signature types.
SIG_TYPE_ED25519: Final = 0x01
SIG_TYPE_COSIGNATURE_V1: Final = 0x04

_ED25519_PUBLIC_KEY_SIZE: Final = 32
_ED25519_SIGNATURE_SIZE: Final = 64
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


class MalformedNote(InvalidInput):
    """The bytes are not a well-formed signed note (or are too large)."""

    default_reason = "malformed_note"


class NoteVerificationError(Unauthenticated):
    """A known key's signature failed, or too few known keys signed.

    Reasons: ``bad_note_signature`` (a signature from a known key is invalid),
    ``note_unverified`` (no known key signed), ``missing_required_signature``.
    """

    default_reason = "note_unverified"


class BadVerifierKey(ConfigError):
    """A configured verifier key (vkey) or key set is unusable."""

    default_reason = "bad_verifier_key"


def decode_b64(value: str, *, what: str) -> bytes:
    """Strict standard base64 (RFC 4648 section 4): alphabet, padding, canonical bits."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedNote(f"{what}: invalid base64") from exc
    if base64.b64encode(raw).decode("ascii") != value:
        # Non-canonical padding bits would make the same bytes have two encodings.
        raise MalformedNote(f"{what}: non-canonical base64")
    return raw


def is_valid_key_name(name: str) -> bool:
    """signed-note, Format: non-empty, no Unicode spaces, no U+002B; plus our length cap."""
    return (
        bool(name)
        and len(name.encode("utf-8")) <= MAX_KEY_NAME_BYTES
        and "+" not in name
        and not any(ch.isspace() for ch in name)
        and not any(ord(ch) < 0x20 for ch in name)
    )


def compute_key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """signed-note, Signatures: SHA-256(key name || 0x0A || type || public key)[:4]."""
    data = name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key
    return hashlib.sha256(data).digest()[:4]


# --- Values -------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID, and the algorithm's signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name) or len(self.key_id) != 4 or not self.signature:
            raise MalformedNote("invalid note signature")

    def line(self) -> str:
        """``— <name> base64(key ID || signature)`` plus the newline."""
        b64 = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{_SIG_PREFIX}{self.name} {b64}\n"


@dataclass(frozen=True)
class Note:
    """A parsed, *unverified* note: its text (ending in newline) and signatures."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_bytes(self) -> bytes:
        """signed-note, Format: text, blank line, signature lines."""
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode("utf-8")


@dataclass(frozen=True)
class VerifiedNote:
    """A note at least one known key signed.

    ``verified`` lists the signatures that verified; ``ignored`` the ones from
    unknown keys (kept so a caller can pass them on, never trusted).
    """

    text: str
    verified: tuple[NoteSignature, ...]
    ignored: tuple[NoteSignature, ...]
    raw: bytes = field(repr=False)

    def signed_by(self, verifier: NoteVerifier) -> bool:
        return any(s.name == verifier.name and s.key_id == verifier.key_id for s in self.verified)


# --- Parsing (signed-note, Format) -------------------------------------------


def _decode_note_text(data: bytes, what: str) -> str:
    if len(data) > MAX_NOTE_BYTES:
        raise MalformedNote(f"{what} larger than {MAX_NOTE_BYTES} bytes", reason="note_too_large")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedNote(f"{what} is not valid UTF-8") from exc
    # "MUST NOT contain any ASCII control characters (those below U+0020) other than newline."
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise MalformedNote(f"{what} contains control characters")
    return text


def _parse_signature_line(line: str) -> NoteSignature:
    # "em dash (U+2014), space (U+0020), key name, space, base64-encoded signature"
    if not line.startswith(_SIG_PREFIX):
        raise MalformedNote("signature line does not start with an em dash and a space")
    parts = line[len(_SIG_PREFIX) :].split(" ")
    if len(parts) != 2 or not is_valid_key_name(parts[0]):
        raise MalformedNote("malformed signature line")
    name, b64 = parts
    raw = decode_b64(b64, what="signature")
    # "Signatures are the base64 encoding of 4+n bytes."
    if len(raw) < 5:
        raise MalformedNote("signature too short")
    return NoteSignature(name=name, key_id=raw[:4], signature=raw[4:])


def _parse_signature_block(block: str) -> tuple[NoteSignature, ...]:
    if not block or not block.endswith("\n"):
        raise MalformedNote("note has no signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_NOTE_SIGNATURES:
        raise MalformedNote("too many signatures", reason="note_too_large")
    return tuple(_parse_signature_line(line) for line in lines)


def parse_note(data: bytes) -> Note:
    """Split a signed note into text and signature lines, strictly.  Verifies nothing."""
    text = _decode_note_text(data, "note")
    # "the text is separated from the signatures by the last empty line in the note."
    split = text.rfind("\n\n")
    if split < 0:
        raise MalformedNote("note has no blank line before its signatures")
    body, block = text[: split + 1], text[split + 2 :]
    return Note(text=body, signatures=_parse_signature_block(block))


def parse_signature_lines(data: bytes) -> tuple[NoteSignature, ...]:
    """Parse a bare block of signature lines (e.g. a tlog-witness add-checkpoint response)."""
    return _parse_signature_block(_decode_note_text(data, "signature block"))


# --- Keys ---------------------------------------------------------------------


class NoteVerifier(Protocol):
    """A known public key: identified by (name, key ID), checks signatures on note text."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (key ID already stripped) is valid over note ``text``."""
        ...


class NoteSigner(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def sign(self, text: bytes) -> bytes:
        """The signature bytes over note ``text`` (without the key ID)."""
        ...


@dataclass(frozen=True)
class VerifierKey:
    """A parsed vkey: ``<name>+<8 hex key ID>+<base64(type || public key)>``."""

    name: str
    key_id: bytes
    sig_type: int
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        if len(vkey) > MAX_VKEY_CHARS:
            raise BadVerifierKey("verifier key too long")
        parts = vkey.split("+", 2)  # base64 may itself contain '+'
        if len(parts) != 3:
            raise BadVerifierKey("verifier key must be <name>+<hash>+<key>")
        name, hex_id, b64 = parts
        if not is_valid_key_name(name) or not _HEX8.fullmatch(hex_id):
            raise BadVerifierKey("verifier key has a bad name or key hash")
        try:
            raw = decode_b64(b64, what="verifier key")
        except MalformedNote as exc:
            raise BadVerifierKey(exc.message) from exc
        if len(raw) < 2:
            raise BadVerifierKey("verifier key material too short")
        key = cls(name=name, key_id=bytes.fromhex(hex_id), sig_type=raw[0], public_key=raw[1:])
        if compute_key_id(name, key.sig_type, key.public_key) != key.key_id:
            raise BadVerifierKey("verifier key hash does not match name and key")
        return key

    def encode(self) -> str:
        material = base64.b64encode(bytes([self.sig_type]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{material}"


def _check_ed25519_public_key(name: str, public_key: bytes) -> None:
    if not is_valid_key_name(name):
        raise BadVerifierKey(f"invalid key name {name!r}")
    if len(public_key) != _ED25519_PUBLIC_KEY_SIZE:
        raise BadVerifierKey("Ed25519 public keys are 32 bytes")


@dataclass(frozen=True)
class Ed25519NoteVerifier:
    """signed-note, Ed25519 signatures: type 0x01, RFC 8032 over the note text."""

    name: str
    public_key: bytes
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        _check_ed25519_public_key(self.name, self.public_key)
        object.__setattr__(
            self, "key_id", compute_key_id(self.name, SIG_TYPE_ED25519, self.public_key)
        )

    @classmethod
    def from_vkey(cls, vkey: str) -> Ed25519NoteVerifier:
        key = VerifierKey.parse(vkey)
        if key.sig_type != SIG_TYPE_ED25519:
            raise BadVerifierKey("not an Ed25519 (0x01) verifier key")
        return cls(name=key.name, public_key=key.public_key)

    def vkey(self) -> str:
        return VerifierKey(self.name, self.key_id, SIG_TYPE_ED25519, self.public_key).encode()

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            return False
        try:
            nacl.signing.VerifyKey(self.public_key).verify(text, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            return False
        return True


class Ed25519NoteSigner:
    """Signs note text with an Ed25519 key (type 0x01)."""

    def __init__(self, *, name: str, seed: bytes | None = None,
                 signer: Signer | None = None) -> None:
        """The key as a 32-byte ``seed`` or as any :class:`~node.core.signer.Signer` (a
        token key), exactly one."""
        self._key = _one_key(seed, signer)
        self._verifier = Ed25519NoteVerifier(name=name, public_key=self._key.public_key)

    @classmethod
    def generate(cls, name: str) -> Ed25519NoteSigner:
        return cls(name=name, seed=bytes(nacl.signing.SigningKey.generate()))

    @property
    def name(self) -> str:
        return self._verifier.name

    @property
    def key_id(self) -> bytes:
        return self._verifier.key_id

    @property
    def verifier(self) -> Ed25519NoteVerifier:
        return self._verifier

    def sign(self, text: bytes) -> bytes:
        return self._key.sign(text)


def _one_key(seed: bytes | None, signer: Signer | None) -> Signer:
    if (seed is None) == (signer is None):
        raise BadVerifierKey("give the key as a seed or as a signer, exactly one")
    if signer is not None:
        return signer
    assert seed is not None
    if len(seed) != 32:
        raise BadVerifierKey("Ed25519 seeds are 32 bytes")
    return SeedSigner(seed=seed)


# --- Signing and verifying -----------------------------------------------------


def _check_text(text: str) -> bytes:
    if not text.endswith("\n"):
        raise MalformedNote("note text must end in a newline")
    data = text.encode("utf-8")
    _decode_note_text(data, "note text")
    return data


def sign_note(text: str, signers: Sequence[NoteSigner]) -> bytes:
    """Sign ``text`` with every signer; return the signed note bytes."""
    if not signers:
        raise BadVerifierKey("sign_note needs at least one signer")
    data = _check_text(text)
    sigs = tuple(NoteSignature(s.name, s.key_id, s.sign(data)) for s in signers)
    out = Note(text=text, signatures=sigs).to_bytes()
    if len(out) > MAX_NOTE_BYTES:
        raise MalformedNote("signed note too large", reason="note_too_large")
    return out


def _index(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, bytes], NoteVerifier]:
    out: dict[tuple[str, bytes], NoteVerifier] = {}
    for v in verifiers:
        key = (v.name, v.key_id)
        if key in out and out[key] != v:
            raise BadVerifierKey(f"two different keys share name and key ID {key!r}")
        out[key] = v
    return out


def verify_note(
    data: bytes,
    *,
    verifiers: Sequence[NoteVerifier],
    required: Sequence[NoteVerifier] = (),
) -> VerifiedNote:
    """Parse and verify a signed note against known keys (signed-note, Signatures).

    * Signatures whose (name, key ID) match no known key are ignored.
    * Every signature from a known key must verify, or the whole note is
      rejected ("clients SHOULD reject the whole note").
    * At least one known key must have signed ("clients MUST reject").
    * Each key in ``required`` (also treated as known) must have signed.

    Fails closed: an empty ``verifiers`` is a configuration error.
    """
    if not verifiers and not required:
        raise BadVerifierKey("verify_note needs at least one verifier")
    known = _index([*verifiers, *required])
    note = parse_note(data)
    text = note.text.encode("utf-8")
    verified: list[NoteSignature] = []
    ignored: list[NoteSignature] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            ignored.append(sig)
            continue
        if not verifier.verify(text, sig.signature):
            raise NoteVerificationError(
                f"signature by {sig.name} does not verify", reason="bad_note_signature"
            )
        verified.append(sig)
    if not verified:
        raise NoteVerificationError("note not signed by any known key", reason="note_unverified")
    got = {(s.name, s.key_id) for s in verified}
    for r in required:
        if (r.name, r.key_id) not in got:
            raise NoteVerificationError(
                f"note lacks a signature by {r.name}", reason="missing_required_signature"
            )
    return VerifiedNote(text=note.text, verified=tuple(verified), ignored=tuple(ignored), raw=data)
