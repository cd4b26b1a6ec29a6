"""The restore hold: a restored log signs nothing until it is known not to fork.

A node restored from a backup may be behind checkpoints it signed before and its
witnesses cosigned (C2SP tlog-witness: a witness keeps the latest checkpoint it cosigned
of each log).  Signing a checkpoint of a larger size from the restored, shorter log would
give the same origin two inconsistent trees: a fork.  So ``bxnode restore`` writes a
:class:`RestoreHold` into the restored database (``meta`` key :data:`HOLD_KEY`) before the
database is put in place, and while it is there:

* :meth:`node.audit.log.MerkleAuditLog.seal` refuses to sign (and a log without a key
  refuses to append), raising :class:`AuditLogOnHold` -- so nothing is audited, and so
  nothing is answered, anywhere: ``serve``, its workers, the CLI;
* ``serve`` reports NOT_SERVING and logs why (:mod:`node.backup.serve`);
* ``bxnode audit status`` says why, and exits 1.

The hold is lifted only when every witness has been asked what it holds of the log and
the log holds at least that, with the same root there
(:func:`node.audit.verification.judge_restored`) -- after the missing tail was recovered
(``bxnode audit recover-tail``) or a newer backup restored -- or when the operator declares
a log reset (``bxnode audit reset-log``), which starts a new origin
(:mod:`node.audit.origins`; the epoch is ``meta`` key :data:`EPOCH_KEY`).

Values and ``meta`` reads and writes over the :class:`~node.store.db.Database` port only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from node.audit.origins import MAX_EPOCH
from node.core.errors import ConfigError, EnvironmentFault
from node.store.db import Database
from node.store.meta import delete_meta, meta_values

__all__ = ["EPOCH_KEY", "HOLD_KEY", "AuditLogOnHold", "RestoreHold", "hold_of", "lift_hold",
           "log_epoch", "log_state", "place_hold", "set_epoch"]

HOLD_KEY: Final = "audit:restore_hold"
EPOCH_KEY: Final = "audit:origin_epoch"
#: Bound on the stored record (it is ours, but a meta value is read on every seal).
MAX_HOLD_BYTES: Final = 16_384


class AuditLogOnHold(EnvironmentFault):
    """The log was restored and may be behind its witnesses: nothing is signed or appended."""

    default_reason = "audit_log_on_hold"


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreHold:
    """Why a restored log is held.  ``witnessed``: what each witness said it holds of our
    log at the last check (absent: not asked, or did not answer)."""

    since_ms: int
    backup_created_ms: int
    backup_size: int
    detail: str
    witnessed: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"since_ms": self.since_ms,
                           "backup_created_ms": self.backup_created_ms,
                           "backup_size": self.backup_size, "detail": self.detail,
                           "witnessed": self.witnessed}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RestoreHold:
        """The record; an unreadable one is still a hold (fail closed), saying so."""
        try:
            doc: Any = json.loads(text) if len(text) <= MAX_HOLD_BYTES else None
            witnessed = doc["witnessed"]
            hold = cls(since_ms=int(doc["since_ms"]),
                       backup_created_ms=int(doc["backup_created_ms"]),
                       backup_size=int(doc["backup_size"]), detail=str(doc["detail"]),
                       witnessed={str(k): int(v) for k, v in witnessed.items()})
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls(since_ms=0, backup_created_ms=0, backup_size=0,
                       detail="the restore hold record is unreadable")
        return hold

    def explain(self) -> str:
        return (f"the audit log was restored from a backup of size {self.backup_size} and is "
                f"on hold: {self.detail}; recover the missing tail (bxnode audit "
                "recover-tail) or declare a log reset (bxnode audit reset-log --reason ...)")

    def error(self) -> AuditLogOnHold:
        return AuditLogOnHold("refusing to sign or append: " + self.explain())


def log_state(store: Database) -> tuple[int, RestoreHold | None]:
    """``(epoch, hold)`` in one read (the log calls this once per commit)."""
    rows = meta_values(store, EPOCH_KEY, HOLD_KEY)
    epoch = _epoch(rows.get(EPOCH_KEY))
    hold = rows.get(HOLD_KEY)
    return epoch, None if hold is None else RestoreHold.from_json(str(hold))


def _epoch(value: object) -> int:
    if value is None:
        return 1
    try:
        epoch = int(str(value))
    except ValueError:
        epoch = 0
    if not 1 <= epoch <= MAX_EPOCH:
        raise ConfigError(f"the stored audit log epoch {value!r} is corrupt",
                          reason="log_epoch_corrupt")
    return epoch


def hold_of(store: Database) -> RestoreHold | None:
    return log_state(store)[1]


def log_epoch(store: Database) -> int:
    return log_state(store)[0]


def place_hold(store: Database, hold: RestoreHold) -> None:
    with store.transaction():
        store.set_meta(HOLD_KEY, hold.to_json())


def lift_hold(store: Database) -> None:
    with store.transaction():
        delete_meta(store, HOLD_KEY)


def set_epoch(store: Database, epoch: int) -> None:
    """In the caller's transaction (the reset's entry is sealed under the new origin)."""
    if not 1 <= epoch <= MAX_EPOCH:
        raise ConfigError(f"log epoch {epoch} out of range", reason="log_epoch_corrupt")
    store.set_meta(EPOCH_KEY, str(epoch))
