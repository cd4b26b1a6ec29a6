"""The decrypted pages of a SQLCipher 4 database file and of its WAL, for tests that must
show erased data is gone from the file *including free pages and the WAL* (issue 13).

The file is encrypted, so searching its raw bytes proves nothing; and this sqlcipher3 build
has no ``sqlite_dbpage``.  So the pages are decrypted here, as SQLCipher 4 writes them with
a raw key (``PRAGMA key = "x'..'"``, no KDF): 4096-byte pages, each AES-256-CBC encrypted
with the IV in the last 80 reserved bytes (16 IV + 64 HMAC-SHA512); page 1 starts after the
16-byte salt.  WAL frames are a 24-byte header and one such page, after a 32-byte WAL
header.  Every page is decrypted, in use or free.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["decrypted_pages"]

PAGE = 4096
RESERVE = 80


def _decrypt(page: bytes, key: bytes, start: int) -> bytes:
    iv = page[PAGE - RESERVE:PAGE - RESERVE + 16]
    body = page[start:PAGE - RESERVE]
    body = body[:len(body) // 16 * 16]
    d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return d.update(body) + d.finalize()


def decrypted_pages(db_path: Path, key: bytes) -> bytes:
    """Every page of the database file and of its WAL, decrypted, concatenated."""
    out: list[bytes] = []
    data = db_path.read_bytes()
    for n in range(0, len(data) - PAGE + 1, PAGE):
        out.append(_decrypt(data[n:n + PAGE], key, 16 if n == 0 else 0))
    wal = db_path.with_name(db_path.name + "-wal")
    if wal.exists():
        w = wal.read_bytes()[32:]
        for n in range(0, len(w) - (24 + PAGE) + 1, 24 + PAGE):
            frame = w[n + 24:n + 24 + PAGE]
            out.append(_decrypt(frame, key, 0))
            out.append(_decrypt(frame, key, 16))
    return b"\x00".join(out)
