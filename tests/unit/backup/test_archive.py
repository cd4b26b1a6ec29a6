"""The backup file (node.backup.archive): every check before a byte is decrypted."""

from __future__ import annotations

import base64
import io
import json

import msgspec
import nacl.public
import nacl.signing
import pytest

from node.backup.archive import (
    CHUNK,
    END,
    MAGIC,
    MAX_MANIFEST_BYTES,
    PAYLOAD_TYPE,
    BackupError,
    Manifest,
    open_backup,
    read_manifest,
    write_backup,
)
from node.core.envelope import pae

NODE_SK = nacl.signing.SigningKey(bytes(range(32)))
OTHER_SK = nacl.signing.SigningKey(bytes(range(1, 33)))
KEY = nacl.public.PrivateKey(bytes(range(2, 34)))
OTHER_KEY = nacl.public.PrivateKey(bytes(range(3, 35)))
DATA = bytes(range(256)) * (CHUNK // 256 * 2 + 7)  # three frames, the last one short


def _backup(data: bytes = DATA, *, sk: nacl.signing.SigningKey = NODE_SK,
            node: str = "KAZ-BS") -> bytes:
    out = io.BytesIO()
    write_backup(out, io.BytesIO(data), node_id=node, backend="sqlcipher", created_ms=5,
                 audit_origin="bxnode/KAZ-BS", audit_size=7, audit_root=b"\x01" * 32,
                 recipient=KEY.public_key, signing_key=sk)
    return out.getvalue()


def _open(blob: bytes, *, key: nacl.public.PrivateKey = KEY,
          node: str = "KAZ-BS") -> tuple[Manifest, bytes]:
    out = io.BytesIO()
    m = open_backup(io.BytesIO(blob), out, verify_keys=[bytes(NODE_SK.verify_key)],
                    node_id=node, key=key)
    return m, out.getvalue()


def _refused(blob: bytes, reason: str, **kw: object) -> str:
    out = io.BytesIO()
    with pytest.raises(BackupError) as exc:
        open_backup(io.BytesIO(blob), out, verify_keys=[bytes(NODE_SK.verify_key)],
                    node_id=str(kw.get("node", "KAZ-BS")),
                    key=kw.get("key", KEY))  # type: ignore[arg-type]
    assert exc.value.reason == reason, exc.value.message
    assert out.getvalue() == b""  # nothing decrypted, nothing written
    assert "\n" not in exc.value.message
    return exc.value.message


def test_round_trip() -> None:
    blob = _backup()
    m, data = _open(blob)
    assert data == DATA
    assert (m.node_id, m.backend, m.audit_size, m.audit_root) == (
        "KAZ-BS", "sqlcipher", 7, "01" * 32)
    assert blob.startswith(MAGIC) and blob.endswith(END)
    assert DATA[:4096] not in blob  # encrypted
    assert read_manifest(io.BytesIO(blob), verify_keys=[bytes(NODE_SK.verify_key)]) == m
    assert _open(_backup(b""))[1] == b""  # an empty body is one FINAL frame


def test_a_flipped_byte_anywhere_in_the_body_is_tampering() -> None:
    blob = bytearray(_backup())
    for at in (len(MAGIC) + 1, len(MAGIC) + 90, len(blob) // 2):
        bad = bytearray(blob)
        bad[at] ^= 1
        assert "do not match its signed digest" in _refused(bytes(bad), "backup_tampered")


def test_truncated_files_are_refused() -> None:
    blob = _backup()
    _refused(blob[: len(blob) - 1], "backup_truncated")
    _refused(blob[: len(blob) // 2], "backup_truncated")
    _refused(blob[: len(MAGIC) + 2], "backup_truncated")
    # the body cut but the signed trailer kept: the length the manifest signs differs
    trailer_at = blob.rindex(b'{"payload')
    cut = blob[: trailer_at - 100] + blob[trailer_at:]
    assert "says" in _refused(cut, "backup_truncated")


def _resign(blob: bytes, edit: dict[str, object], sk: nacl.signing.SigningKey) -> bytes:
    at = blob.rindex(b'{"payload')
    env = json.loads(blob[at: len(blob) - len(END) - 4])
    doc = json.loads(base64.b64decode(env["payload"]))
    doc.update(edit)
    payload = json.dumps(doc).encode()
    env["payload"] = base64.b64encode(payload).decode()
    env["signatures"][0]["sig"] = base64.b64encode(
        sk.sign(pae(PAYLOAD_TYPE, payload)).signature).decode()
    raw = json.dumps(env).encode()
    return blob[:at] + raw + len(raw).to_bytes(4, "big") + END


def test_the_signature_is_checked_first() -> None:
    blob = _backup()
    # an edited manifest, not re-signed: the old signature does not cover it
    at = blob.rindex(b'{"payload')
    env = json.loads(blob[at: len(blob) - len(END) - 4])
    doc = json.loads(base64.b64decode(env["payload"]))
    doc["audit_size"] = 99
    env["payload"] = base64.b64encode(json.dumps(doc).encode()).decode()
    raw = json.dumps(env).encode()
    forged = blob[:at] + raw + len(raw).to_bytes(4, "big") + END
    assert "does not verify" in _refused(forged, "backup_bad_signature")
    # signed by a key that is not the node's, even with everything else right
    _refused(_backup(sk=OTHER_SK), "backup_bad_signature")
    _refused(_resign(blob, {"audit_size": 99}, OTHER_SK), "backup_bad_signature")


def test_another_nodes_backup_and_another_key_are_refused_before_decrypting() -> None:
    assert "of node UZB-BS, not of KAZ-BS" in _refused(_backup(node="UZB-BS"),
                                                        "backup_other_node")
    assert "encrypted to backup key" in _refused(_backup(), "backup_wrong_key",
                                                 key=OTHER_KEY)


def test_malformed_files() -> None:
    assert "not a bxnode backup" in _refused(b"SQLite format 3\x00" + b"x" * 100,
                                             "backup_malformed")
    blob = _backup()
    huge = blob[: len(blob) - len(END) - 4] + (MAX_MANIFEST_BYTES + 1).to_bytes(4, "big") + END
    _refused(huge, "backup_malformed")
    with pytest.raises(msgspec.ValidationError):  # the manifest is strict
        msgspec.json.decode(b'{"format":"x","surprise":1}', type=Manifest, strict=True)
    signed_junk = _resign(blob, {"surprise": 1}, NODE_SK)
    assert "malformed" in _refused(signed_junk, "backup_malformed")


def test_a_frame_that_does_not_decrypt_is_tampering_even_under_a_valid_signature() -> None:
    """A writer bug (or a stolen signing key without the backup key): frames must decrypt."""
    import hashlib

    blob = bytearray(_backup())
    trailer = bytes(blob).rindex(b'{"payload')
    blob[trailer - 10] ^= 1  # inside the last frame
    body = bytes(blob[len(MAGIC): trailer])
    fixed = _resign(bytes(blob), {"body_sha256": hashlib.sha256(body).hexdigest()}, NODE_SK)
    out = io.BytesIO()
    with pytest.raises(BackupError) as exc:
        open_backup(io.BytesIO(fixed), out, verify_keys=[bytes(NODE_SK.verify_key)],
                    node_id="KAZ-BS", key=KEY)
    assert exc.value.reason == "backup_tampered"
