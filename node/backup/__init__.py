"""Backups of a node: signed, encrypted, consistent snapshots, and restoring them safely.

* :mod:`node.backup.archive` -- the file: X25519 + secretstream, a DSSE-signed manifest;
* :mod:`node.backup.keys` -- the operator's backup key pair;
* :mod:`node.backup.sqlcipher`, :mod:`node.store.postgresql.backup` -- snapshots per backend;
* :mod:`node.backup.ops` -- take and restore (the CLI's work);
* :mod:`node.backup.serve` -- ``serve`` reports NOT_SERVING while a restored log is on
  hold (:mod:`node.audit.hold`).
"""

from node.backup.archive import BackupError, Manifest
from node.backup.ops import RestoreResult, restore_backup, take_backup

__all__ = ["BackupError", "Manifest", "RestoreResult", "restore_backup", "take_backup"]
