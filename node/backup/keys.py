"""The key a backup is encrypted to: an X25519 key pair the operator keeps off the node.

``bxnode backup-keygen --out FILE`` writes the private key to FILE (mode 0600) and the
public key to ``FILE.pub``.  ``bxnode backup --to FILE.pub`` encrypts to the public key;
``bxnode restore --key FILE`` needs the private one.  Keep the private key where the node
is not (an offline safe, a secret store): whoever holds the node's disk and its backups
should still not read them.  Each file is one line::

    bxnode-backup-public-v1:<64 hex>     (the recipient, safe to copy)
    bxnode-backup-private-v1:<64 hex>    (mode 0600)

so one can never be taken for the other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

import nacl.public

from node.core.errors import ConfigError
from node.store.keys import check_private_file, write_private

__all__ = ["PRIVATE_PREFIX", "PUBLIC_PREFIX", "generate_backup_key", "load_backup_key",
           "load_recipient", "recipient_id"]

PUBLIC_PREFIX: Final = "bxnode-backup-public-v1:"
PRIVATE_PREFIX: Final = "bxnode-backup-private-v1:"
_MAX_KEY_FILE: Final = 256


def recipient_id(public_key: nacl.public.PublicKey) -> str:
    """A public key's id, named in every backup encrypted to it: 16 hex of SHA-256."""
    return hashlib.sha256(bytes(public_key)).hexdigest()[:16]


def _read(path: Path, prefix: str, what: str) -> bytes:
    try:
        if path.stat().st_size > _MAX_KEY_FILE:
            raise ConfigError(f"{what} {path} is not a bxnode backup key file",
                              reason="bad_backup_key")
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist", reason="missing_file") from None
    except UnicodeDecodeError:
        text = ""
    other = PRIVATE_PREFIX if prefix == PUBLIC_PREFIX else PUBLIC_PREFIX
    if text.startswith(other):
        kind = "private" if other == PRIVATE_PREFIX else "public"
        raise ConfigError(f"{path} holds a backup {kind} key, not the {what}",
                          reason="bad_backup_key")
    try:
        raw = bytes.fromhex(text.removeprefix(prefix)) if text.startswith(prefix) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"{what} {path} is not a bxnode backup key file ({prefix}<64 hex>)",
                          reason="bad_backup_key")
    return raw


def load_recipient(path: Path) -> nacl.public.PublicKey:
    """The public key a backup is encrypted to."""
    return nacl.public.PublicKey(_read(path, PUBLIC_PREFIX, "backup public key"))


def load_backup_key(path: Path) -> nacl.public.PrivateKey:
    """The private key that opens backups (the file must be 0600)."""
    check_private_file(path, "backup private key")
    return nacl.public.PrivateKey(_read(path, PRIVATE_PREFIX, "backup private key"))


def generate_backup_key(path: Path) -> nacl.public.PublicKey:
    """Write a new key pair: ``path`` (private, 0600, never overwritten) and
    ``path.pub``."""
    pub_path = path.with_name(path.name + ".pub")
    if path.exists() or pub_path.exists():
        raise ConfigError(f"{path} or {pub_path} exists; not overwriting a key",
                          reason="file_exists")
    key = nacl.public.PrivateKey.generate()
    write_private(path, PRIVATE_PREFIX + bytes(key).hex() + "\n")
    pub_path.write_text(PUBLIC_PREFIX + bytes(key.public_key).hex() + "\n", encoding="ascii")
    return key.public_key
