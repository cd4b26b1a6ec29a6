"""Field encryption for a database whose administrator must not read our identifiers.

:class:`KeyedCodec` is the :class:`node.store.db.FieldCodec` of the PostgreSQL backend:

* ``index(kind, value)``: a blind index, HMAC-SHA256(index key, kind || 0x00 || value)
  (32 bytes).  Equal values give equal indexes, so lookups by equality work; without the
  key nothing about the value can be computed from it, and ``kind`` separates columns (a
  document number and a family name that happen to be equal index differently).
* ``seal(kind, value)``: AES-256-GCM with a fresh random 96-bit nonce and ``kind`` as the
  associated data; stored as nonce || ciphertext || tag (NIST SP 800-38D).  ``open``
  refuses a value that was changed, sealed for another kind, or sealed under another key.

Both subkeys come from one 32-byte field key by HKDF-SHA256 (RFC 5869) with distinct
``info`` labels, so the index key and the sealing key are independent.  The field key
comes from ``$BXNODE_FIELD_KEY`` or a 0600 key file (64 hex characters), never from the
database: it lives with the node's other key files.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from node.core.errors import ConfigError, EnvironmentFault
from node.store.keys import load_hex_key

__all__ = ["FIELD_KEY_ENV", "KeyedCodec", "SealedFieldError", "load_field_key"]

FIELD_KEY_ENV = "BXNODE_FIELD_KEY"
_NONCE = 12   # 96-bit GCM nonce (SP 800-38D 8.2: random nonces of 96 bits)
_TAG = 16
#: A sealed value longer than this is refused before decryption (1 MiB of contents).
MAX_SEALED = 1 << 20


class SealedFieldError(EnvironmentFault):
    """A sealed column value does not open: changed in the database, sealed for another
    column, or sealed under a different field key.  Not retried: the data is bad."""

    status = "DATA_LOSS"
    default_reason = "sealed_field_unreadable"


def _subkey(key: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"bxnode field key v1: " + label).derive(key)


def _kind(kind: str) -> bytes:
    raw = kind.encode()
    if not raw or b"\x00" in raw:
        raise ValueError("a field kind is a non-empty name without NUL")
    return raw


class KeyedCodec:
    """Blind indexes and AES-GCM sealing under one field key.  Use :meth:`from_key`."""

    protects = True

    def __init__(self, *, index_key: bytes, seal_key: bytes, check: str) -> None:
        self._index_key = index_key
        #: Per kind, the HMAC keyed and fed ``kind || 0x00``: an index copies it and adds
        #: the value (the key's two padded blocks are hashed once, not at every index).
        self._index_prefix: dict[str, hmac.HMAC] = {}
        self._aead = AESGCM(seal_key)
        #: A one-way fingerprint of the field key, kept in the database to refuse a node
        #: started with a different key (it reveals nothing about the key).
        self.key_check = check

    @classmethod
    def from_key(cls, key: bytes) -> KeyedCodec:
        if len(key) != 32:
            raise ConfigError("the field key must be 32 bytes", reason="bad_field_key")
        return cls(index_key=_subkey(key, b"index"), seal_key=_subkey(key, b"seal"),
                   check=_subkey(key, b"check")[:16].hex())

    @classmethod
    def generate(cls) -> tuple[KeyedCodec, bytes]:
        """A codec under a new random key (tests, ``bxnode init``); returns the key too."""
        key = secrets.token_bytes(32)
        return cls.from_key(key), key

    def index(self, kind: str, value: str) -> bytes:
        prefix = self._index_prefix.get(kind)
        if prefix is None:  # (two threads may both make it: the same object either way)
            prefix = hmac.new(self._index_key, _kind(kind) + b"\x00", hashlib.sha256)
            self._index_prefix[kind] = prefix
        h = prefix.copy()
        h.update(value.encode())
        return h.digest()

    def seal(self, kind: str, value: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, bytes(value), _kind(kind))

    def open(self, kind: str, value: bytes) -> bytes:
        aad = _kind(kind)
        raw = bytes(value)
        if len(raw) < _NONCE + _TAG:
            raise SealedFieldError(
                f"sealed {kind} value is {len(raw)} bytes, shorter than nonce and tag",
                reason="sealed_field_malformed")
        if len(raw) > MAX_SEALED + _NONCE + _TAG:
            raise SealedFieldError(f"sealed {kind} value is larger than {MAX_SEALED} bytes",
                                   reason="sealed_field_malformed")
        try:
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], aad)
        except InvalidTag:
            raise SealedFieldError(
                f"sealed {kind} value does not open: changed in the database, sealed for "
                "another column, or sealed under a different field key") from None


def load_field_key(key_file: Path | None) -> bytes:
    """The field key from ``$BXNODE_FIELD_KEY``, else from ``key_file`` (mode 0600)."""
    return load_hex_key(env=FIELD_KEY_ENV, key_file=key_file, what="field key",
                        setting="[storage] field_key_file", bad="bad_field_key",
                        missing="no_field_key")
