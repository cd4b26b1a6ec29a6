"""Where the database key comes from: an environment variable or a 0600 key file.

Never from the database or the config file itself.  The key is 32 random
bytes written as 64 hex characters.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from node.core.errors import ConfigError

__all__ = ["DB_KEY_ENV", "check_private_file", "load_db_key", "load_hex_key", "new_db_key_file",
           "write_private"]

DB_KEY_ENV = "BXNODE_DB_KEY"


def check_private_file(path: Path, what: str) -> None:
    """Refuse a secret file that others could read (anything beyond 0600)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist", reason="missing_file") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{what} {path} is readable by others; run 'chmod 600 {path}'",
                          reason="insecure_file_mode")


def load_hex_key(*, env: str, key_file: Path | None, what: str, setting: str,
                 bad: str, missing: str) -> bytes:
    """A 32-byte key written as 64 hex characters: from ``$env``, else from ``key_file``
    (mode 0600), never from the configuration or the database.  ``what`` names it in
    errors ("database key"), ``setting`` is the config key that names the file."""
    value = os.environ.get(env)
    if value:
        where = f"${env}"
    elif key_file is None:
        raise ConfigError(f"no {what}: set ${env} or {setting}", reason=missing)
    else:
        check_private_file(key_file, f"{what} file")
        value, where = key_file.read_text(), str(key_file)
    try:
        key = bytes.fromhex(value.strip())
    except ValueError:
        raise ConfigError(f"{what} from {where} is not hex", reason=bad) from None
    if len(key) != 32:
        raise ConfigError(f"{what} from {where} must be 64 hex characters", reason=bad)
    return key


def load_db_key(key_file: Path | None) -> bytes:
    return load_hex_key(env=DB_KEY_ENV, key_file=key_file, what="database key",
                        setting="storage.key_file", bad="bad_db_key", missing="no_db_key")


def new_db_key_file(path: Path) -> bytes:
    key = secrets.token_bytes(32)
    write_private(path, key.hex() + "\n")
    return key


def write_private(path: Path, text: str | bytes) -> None:
    """Create ``path`` with mode 0600 from the first byte on; refuse to overwrite."""
    data = text.encode() if isinstance(text, str) else text
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
