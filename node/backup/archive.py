"""The backup file: encrypted to the operator's X25519 key, signed by the node (DSSE).

Layout (every integer big-endian)::

    "bxnode-backup/v1\\n"                              magic, 17 bytes
    body:                                              everything encrypted
        SealedBox(recipient, K)                        80 bytes: K, a fresh 32-byte key
        secretstream header                            24 bytes
        frames: u32 length || ciphertext              libsodium secretstream
                                                       (XChaCha20-Poly1305), 1 MiB of
                                                       plaintext each, the last one
                                                       empty and tagged FINAL
    signed manifest                                    a DSSE JSON envelope
    u32 length of the signed manifest
    "bxnode-backup-end\\n"                             end magic, 18 bytes

The manifest (JSON, :class:`Manifest`) names the node, the time, the backend, the
recipient key's id, the latest signed checkpoint inside, and the body's length and SHA-256.
Its DSSE signature (``PAE(payloadType, manifest)``, Ed25519, as the project's other
signatures; github.com/secure-systems-lab/dsse "Protocol") so covers the encrypted bytes
through their digest: Ed25519 signs a message held whole, and a backup may be gigabytes,
so the digest is what lets :func:`open_backup` check everything in one streaming pass.

:func:`open_backup` checks in this order, and stops at the first failure with one
:class:`BackupError`: magic and bounds, the manifest's signature against the keys it is
given (the node's own, or the ones the federation lists for it), the node it is for, the
recipient key, the body's length and digest -- and only then decrypts (a secretstream frame
that fails, or a missing FINAL frame, is tampering too).  Nothing is written to ``out``
before every check that does not need the plaintext has passed.

No file system and no database here: streams in, streams out.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, Final

import msgspec
import nacl.exceptions
import nacl.public
import nacl.signing
from nacl import bindings as sodium

from node.backup.keys import recipient_id
from node.core.envelope import key_id_for, pae
from node.core.errors import ConfigError
from node.core.signer import SigningKeyLike, as_signer

__all__ = ["FORMAT", "MAGIC", "PAYLOAD_TYPE", "BackupError", "Manifest", "check_backup",
           "open_backup", "read_manifest", "write_backup"]

MAGIC: Final = b"bxnode-backup/v1\n"
END: Final = b"bxnode-backup-end\n"
FORMAT: Final = "bxnode-backup/1"
PAYLOAD_TYPE: Final = "application/vnd.bxnode.v1.backup-manifest+json"
#: Plaintext bytes per frame.
CHUNK: Final = 1 << 20
#: The signed manifest is small; anything larger is not one of ours.
MAX_MANIFEST_BYTES: Final = 16_384
_ABYTES: Final = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
_HEADERBYTES: Final = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
_SEALED_KEY: Final = 32 + 16 + 32  # SealedBox: ephemeral public key, MAC, K
_U32: Final = struct.Struct(">I")
_TAG_MESSAGE: Final = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL: Final = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL


class BackupError(ConfigError):
    """A backup file that must not be restored: its reason says why."""

    default_reason = "backup_malformed"


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a backup holds, signed by the node (see the module)."""

    format: str
    node_id: str
    created_ms: int
    backend: str  # "sqlcipher" | "postgresql"
    recipient: str  # recipient_id of the X25519 public key
    audit_origin: str
    audit_size: int
    audit_root: str  # hex; "" for an empty log
    body_bytes: int
    body_sha256: str


@dataclass(frozen=True, slots=True)
class _Signed:
    manifest: Manifest
    payload: bytes
    key_id: str
    signature: bytes


def write_backup(out: BinaryIO, plaintext: BinaryIO, *, node_id: str, backend: str,
                 created_ms: int, audit_origin: str, audit_size: int, audit_root: bytes,
                 recipient: nacl.public.PublicKey,
                 signing_key: SigningKeyLike) -> Manifest:
    """Encrypt ``plaintext`` to ``recipient`` into ``out`` and sign the manifest (with the
    node's key, a file's or a token's: :mod:`node.core.signer`)."""
    signer = as_signer(signing_key)
    key = sodium.crypto_secretstream_xchacha20poly1305_keygen()
    sha = hashlib.sha256()
    size = 0

    def emit(data: bytes) -> None:
        nonlocal size
        out.write(data)
        sha.update(data)
        size += len(data)

    out.write(MAGIC)
    emit(nacl.public.SealedBox(recipient).encrypt(key))
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    emit(sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key))
    while True:
        chunk = plaintext.read(CHUNK)
        last = not chunk
        frame = sodium.crypto_secretstream_xchacha20poly1305_push(
            state, chunk, None, _TAG_FINAL if last else _TAG_MESSAGE)
        emit(_U32.pack(len(frame)) + frame)
        if last:
            break
    manifest = Manifest(format=FORMAT, node_id=node_id, created_ms=created_ms,
                        backend=backend, recipient=recipient_id(recipient),
                        audit_origin=audit_origin, audit_size=audit_size,
                        audit_root=audit_root.hex(), body_bytes=size,
                        body_sha256=sha.hexdigest())
    payload = msgspec.json.encode(manifest)
    signature = signer.sign(pae(PAYLOAD_TYPE, payload))
    envelope = json.dumps({"payloadType": PAYLOAD_TYPE,
                           "payload": base64.b64encode(payload).decode("ascii"),
                           "signatures": [{"keyid": key_id_for(signer.public_key),
                                           "sig": base64.b64encode(signature).decode("ascii")}]},
                          sort_keys=True).encode("ascii")
    out.write(envelope + _U32.pack(len(envelope)) + END)
    return manifest


def _tail(f: BinaryIO) -> tuple[int, bytes]:
    """``(body length, signed manifest bytes)`` from the end of a seekable file."""
    f.seek(0, io.SEEK_END)
    total = f.tell()
    f.seek(0)
    if f.read(len(MAGIC)) != MAGIC:
        raise BackupError("the file is not a bxnode backup (no bxnode-backup/v1 header)")
    if total < len(MAGIC) + _U32.size + len(END):
        raise BackupError("the backup is truncated (its signed manifest is missing)",
                          reason="backup_truncated")
    f.seek(total - len(END) - _U32.size)
    (length,) = _U32.unpack(f.read(_U32.size))
    if f.read(len(END)) != END:
        raise BackupError("the backup is truncated (its end marker is missing)",
                          reason="backup_truncated")
    body = total - len(MAGIC) - _U32.size - len(END) - length
    if length > MAX_MANIFEST_BYTES or body < 0:
        raise BackupError("the backup's signed manifest is out of bounds")
    f.seek(len(MAGIC) + body)
    return body, f.read(length)


def _parse_envelope(data: bytes) -> _Signed:
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or set(doc) != {"payloadType", "payload", "signatures"}:
            raise ValueError("not a DSSE envelope")
        sigs = doc["signatures"]
        if doc["payloadType"] != PAYLOAD_TYPE or not isinstance(sigs, list) or len(sigs) != 1:
            raise ValueError("not a backup manifest with one signature")
        payload = base64.b64decode(doc["payload"], validate=True)
        signature = base64.b64decode(sigs[0]["sig"], validate=True)
        key_id = str(sigs[0]["keyid"])
        manifest = msgspec.json.decode(payload, type=Manifest, strict=True)
    except (ValueError, TypeError, KeyError, msgspec.DecodeError) as exc:
        raise BackupError(f"the backup's signed manifest is malformed ({exc})") from None
    if manifest.format != FORMAT:
        raise BackupError(f"the backup format {manifest.format!r} is not {FORMAT!r}")
    return _Signed(manifest, payload, key_id, signature)


def read_manifest(f: BinaryIO, *, verify_keys: Sequence[bytes]) -> Manifest:
    """The manifest, once its signature verified under one of ``verify_keys`` (raw Ed25519
    public keys).  Reads the file's ends only."""
    _, data = _tail(f)
    signed = _parse_envelope(data)
    for public in verify_keys:
        if key_id_for(public) != signed.key_id:
            continue
        try:
            nacl.signing.VerifyKey(public).verify(pae(PAYLOAD_TYPE, signed.payload),
                                                  signed.signature)
        except (nacl.exceptions.BadSignatureError, ValueError):
            break
        return signed.manifest
    raise BackupError("the backup's signature does not verify under this node's keys "
                      "(tampered, or signed by another node)", reason="backup_bad_signature")


def open_backup(f: BinaryIO, out: BinaryIO, *, verify_keys: Sequence[bytes], node_id: str,
                key: nacl.public.PrivateKey) -> Manifest:
    """Check ``f`` (see the module for the order) and decrypt its body into ``out``."""
    manifest = check_backup(f, verify_keys=verify_keys, node_id=node_id, key=key)
    f.seek(len(MAGIC))
    _decrypt(f, out, body=manifest.body_bytes, key=key)
    return manifest


def check_backup(f: BinaryIO, *, verify_keys: Sequence[bytes], node_id: str,
                 key: nacl.public.PrivateKey) -> Manifest:
    """Every check of :func:`open_backup` that needs no plaintext: signature, node, key,
    length, digest (one read of the file)."""
    body, _ = _tail(f)
    manifest = read_manifest(f, verify_keys=verify_keys)
    if manifest.node_id != node_id:
        raise BackupError(f"the backup is of node {manifest.node_id}, not of {node_id}",
                          reason="backup_other_node")
    if manifest.recipient != recipient_id(key.public_key):
        raise BackupError(f"the backup is encrypted to backup key {manifest.recipient}, not "
                          f"to this one ({recipient_id(key.public_key)})",
                          reason="backup_wrong_key")
    if body != manifest.body_bytes:
        raise BackupError(f"the backup holds {body} encrypted bytes where its signed manifest "
                          f"says {manifest.body_bytes} (truncated or tampered)",
                          reason="backup_truncated")
    f.seek(len(MAGIC))
    sha = hashlib.sha256()
    left = body
    while left:
        chunk = f.read(min(left, CHUNK))
        if not chunk:
            raise BackupError("the backup is truncated", reason="backup_truncated")
        sha.update(chunk)
        left -= len(chunk)
    if sha.hexdigest() != manifest.body_sha256:
        raise BackupError("the backup's encrypted bytes do not match its signed digest "
                          "(tampered)", reason="backup_tampered")
    return manifest


def _decrypt(f: BinaryIO, out: BinaryIO, *, body: int, key: nacl.public.PrivateKey) -> None:
    try:
        stream_key = nacl.public.SealedBox(key).decrypt(f.read(_SEALED_KEY))
    except nacl.exceptions.CryptoError:
        raise BackupError("the backup key does not open this backup",
                          reason="backup_wrong_key") from None
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, f.read(_HEADERBYTES),
                                                          stream_key)
    left = body - _SEALED_KEY - _HEADERBYTES
    while True:
        if left < _U32.size:
            raise BackupError("the backup ends before its final frame", reason="backup_tampered")
        (length,) = _U32.unpack(f.read(_U32.size))
        left -= _U32.size
        if not _ABYTES <= length <= CHUNK + _ABYTES or length > left:
            raise BackupError("a frame of the backup is out of bounds", reason="backup_tampered")
        try:
            message, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                state, f.read(length), None)
        except nacl.exceptions.CryptoError:
            raise BackupError("a frame of the backup does not decrypt (tampered)",
                              reason="backup_tampered") from None
        left -= length
        if tag == _TAG_FINAL:
            if message or left:
                raise BackupError("the backup has bytes after its final frame",
                                  reason="backup_tampered")
            return
        out.write(message)
