"""The Merkle audit log as the pipeline's :class:`~node.core.ports.AuditSink`."""

from __future__ import annotations

from typing import Any, Protocol

from node.core.ports import AuditRecord

__all__ = ["MerkleAuditSink"]


class _Log(Protocol):
    def next_seq(self) -> int: ...

    def append(self, event: dict[str, Any], *, time_ms: int, seq: int | None = None
               ) -> int: ...


class MerkleAuditSink:
    """Appends typed records to a :class:`node.audit.log.MerkleAuditLog`.

    :meth:`reserve` is exact because the unit of work holds the log's append lock
    (``Database.lock("audit")``) from before it until the transaction ends.
    """

    def __init__(self, log: _Log) -> None:
        self._log = log

    def reserve(self) -> int:
        return self._log.next_seq()

    def append_record(self, record: AuditRecord, *, seq: int | None = None) -> int:
        return self._log.append(record.body(), time_ms=record.time_ms, seq=seq)
