"""Taking a backup of a node's database and restoring one (the CLI's work, without argparse).

* :func:`take_backup`: a consistent snapshot (:mod:`node.backup.sqlcipher`, or
  :mod:`node.store.postgresql.backup`), encrypted to the operator's key and signed by the node
  (:mod:`node.backup.archive`), written to ``FILE.partial`` and renamed to ``FILE`` once
  complete.  The node may be serving meanwhile.
* :func:`restore_backup`: check the file (signature first, then everything else:
  :func:`~node.backup.archive.open_backup`) while decrypting into a private file beside
  the database; check that file opens under the node's database key and holds the log the
  manifest names; write the :class:`~node.audit.hold.RestoreHold` into it; only then put
  it in place (the old database is moved aside, never deleted).  For PostgreSQL the
  decrypted export is loaded in one transaction that also writes the hold.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nacl.public

from node.audit.hold import RestoreHold, place_hold
from node.audit.log import MerkleAuditLog
from node.backup.archive import BackupError, Manifest, open_backup, write_backup
from node.backup.sqlcipher import install, private_temp, snapshot
from node.core.signer import SigningKeyLike

if TYPE_CHECKING:
    from node.config import NodeConfig

__all__ = ["RestoreResult", "open_backup_database", "restore_backup", "take_backup"]


@dataclass(frozen=True, slots=True)
class RestoreResult:
    manifest: Manifest
    #: where the database that was in place went (SQLCipher; None if there was none)
    replaced: Path | None
    hold: RestoreHold


def _head(log: MerkleAuditLog) -> tuple[str, int, bytes]:
    head = log.latest_head()
    if head is None:
        return log.current_origin(), 0, b""
    from node.audit.checkpoint import Checkpoint
    from node.audit.note import parse_note

    origin = Checkpoint.parse(parse_note(head.note).text).origin
    return origin, head.size, head.root


@contextlib.contextmanager
def _partial(out: Path) -> Iterator[Any]:
    part = out.with_name(out.name + ".partial")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)


def _record(cfg: NodeConfig, *, signing_key: SigningKeyLike, recipient: nacl.public.PublicKey,
            operator: str, now_ms: int) -> None:
    """The backup's own audit entry, sealed before the snapshot (so the backup holds it):
    who took a copy of everything, to which key.  A log on hold appends nothing (its
    backup then has no entry: the hold's own record says why)."""
    from node.app import open_store
    from node.audit.hold import hold_of
    from node.backup.keys import recipient_id

    store = open_store(cfg)
    try:
        if hold_of(store) is not None:
            return
        log = MerkleAuditLog(store=store, node_id=cfg.node_id, signing_key=signing_key)
        with store.transaction():
            log.append({"event": "backup_taken", "operator": operator,
                        "backend": cfg.storage.backend,
                        "recipient": recipient_id(recipient)}, time_ms=now_ms)
    finally:
        store.close()


def take_backup(cfg: NodeConfig, *, out: Path, recipient: nacl.public.PublicKey,
                signing_key: SigningKeyLike, now_ms: int, operator: str = "") -> Manifest:
    """See the module; ``operator`` is recorded in the backup's audit entry."""
    _record(cfg, signing_key=signing_key, recipient=recipient, operator=operator,
            now_ms=now_ms)
    if cfg.storage.backend == "postgresql":
        from node.store.postgresql.backup import export_database

        with _partial(out) as f, export_database(cfg) as (plaintext, origin, size, root):
            return write_backup(f, plaintext, node_id=cfg.node_id, backend="postgresql",
                                created_ms=now_ms, audit_origin=origin, audit_size=size,
                                audit_root=root, recipient=recipient, signing_key=signing_key)
    from node.store.keys import load_db_key
    from node.store.sqlcipher import Store

    key = load_db_key(cfg.db_key_file)
    with private_temp(cfg.db_path, "backup") as tmp:
        snapshot(cfg.db_path, key, tmp, timeout_s=cfg.storage.busy_timeout_s)
        copy = Store.open(tmp, key)
        try:
            origin, size, root = _head(MerkleAuditLog(store=copy, node_id=cfg.node_id))
        finally:
            copy.close()
            Path(f"{tmp}.lock").unlink(missing_ok=True)
        with _partial(out) as f, open(tmp, "rb") as plaintext:
            return write_backup(f, plaintext, node_id=cfg.node_id, backend="sqlcipher",
                                created_ms=now_ms, audit_origin=origin, audit_size=size,
                                audit_root=root, recipient=recipient, signing_key=signing_key)


def _hold(manifest: Manifest, now_ms: int) -> RestoreHold:
    return RestoreHold(since_ms=now_ms, backup_created_ms=manifest.created_ms,
                       backup_size=manifest.audit_size,
                       detail="its witnesses have not been asked yet what they hold")


def _check_log(log: MerkleAuditLog, manifest: Manifest) -> None:
    origin, size, root = _head(log)
    if (origin, size, root.hex()) != (manifest.audit_origin, manifest.audit_size,
                                      manifest.audit_root):
        raise BackupError("the restored database does not hold the audit log its signed "
                          "manifest names", reason="backup_tampered")


@contextlib.contextmanager
def open_backup_database(cfg: NodeConfig, file: Path, *, key: nacl.public.PrivateKey,
                         verify_keys: Sequence[bytes]) -> Iterator[tuple[Manifest, Any]]:
    """A SQLCipher backup, checked and decrypted into a private temporary file beside the
    node's database: ``(manifest, opened Store)``, both gone on exit (for recover-tail)."""
    from node.store.keys import load_db_key
    from node.store.sqlcipher import Store

    with private_temp(cfg.db_path, "tail") as tmp:
        with open(file, "rb") as f, open(tmp, "wb") as out:
            manifest = open_backup(f, out, verify_keys=verify_keys, node_id=cfg.node_id,
                                   key=key)
        if manifest.backend != "sqlcipher":
            raise BackupError("only a SQLCipher backup can give its log's tail to a node",
                              reason="backup_other_backend")
        store = Store.open(tmp, load_db_key(cfg.db_key_file))
        try:
            yield manifest, store
        finally:
            store.close()
            Path(f"{tmp}.lock").unlink(missing_ok=True)


def restore_backup(cfg: NodeConfig, file: Path, *, key: nacl.public.PrivateKey,
                   verify_keys: Sequence[bytes], now_ms: int) -> RestoreResult:
    """See the module.  The node must not be serving (the caller checks)."""
    if cfg.storage.backend == "postgresql":
        from node.store.postgresql.backup import import_database

        return import_database(cfg, file, key=key, verify_keys=verify_keys, now_ms=now_ms,
                               hold_for=_hold)
    from node.store.keys import load_db_key
    from node.store.sqlcipher import Store

    db_key = load_db_key(cfg.db_key_file)
    with private_temp(cfg.db_path, "restore") as tmp:
        with open(file, "rb") as f, open(tmp, "wb") as out:
            manifest = open_backup(f, out, verify_keys=verify_keys, node_id=cfg.node_id,
                                   key=key)
            out.flush()
            os.fsync(out.fileno())
        if manifest.backend != "sqlcipher":
            raise BackupError(f"the backup is of a {manifest.backend} database; this node "
                              "stores in SQLCipher", reason="backup_other_backend")
        try:
            restored = Store.open(tmp, db_key)
        except BackupError:
            raise
        except Exception as exc:
            raise BackupError(f"the backup's database does not open under this node's "
                              f"database key ({exc})", reason="backup_wrong_db_key") from None
        try:
            _check_log(MerkleAuditLog(store=restored, node_id=cfg.node_id), manifest)
            hold = _hold(manifest, now_ms)
            place_hold(restored, hold)  # in the file before it is the node's database
        finally:
            restored.close()
            Path(f"{tmp}.lock").unlink(missing_ok=True)
        stamp = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        replaced = install(tmp, cfg.db_path, stamp=stamp)
    return RestoreResult(manifest, replaced, hold)
