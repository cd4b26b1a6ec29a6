"""First-cut audit log: append-only, hash-chained entries in the node database.

Each entry's body is canonical JSON (sorted keys, no spaces, ASCII), stored as
the exact bytes that were hashed and never re-encoded to verify::

    hash[n] = SHA-256("bxnode-audit-v1" 0x00 || hash[n-1] || body[n]),  hash[0] = 32 x 0x00

Verification recomputes the chain and names the first bad entry: a changed
body, a removed or inserted row (sequence gap), or a reordered row (the seq
written inside the body no longer matches its place).  The Merkle log with
signed checkpoints (issue 4) replaces this behind the same :class:`AuditLog`
interface.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from node.store.sqlcipher import AuditRow, Store

__all__ = ["AuditLog", "AuditQuery", "HashChainLog", "VerifyReport", "canonical_json"]

_DOMAIN = b"bxnode-audit-v1\x00"
GENESIS = bytes(32)


def canonical_json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def entry_hash(prev: bytes, body: bytes) -> bytes:
    return hashlib.sha256(_DOMAIN + prev + body).digest()


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None = None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class AuditQuery:
    peer: str | None = None
    purpose: str | None = None
    outcome: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    limit: int = 1000


class AuditLog(Protocol):
    def append(self, event: dict[str, Any], *, time_ms: int) -> int:
        """Append within the caller's transaction; returns the entry's sequence number."""
        ...

    def verify(self) -> VerifyReport: ...

    def search(self, q: AuditQuery) -> Iterator[dict[str, Any]]: ...


class HashChainLog:
    def __init__(self, *, store: Store) -> None:
        self._store = store

    def append(self, event: dict[str, Any], *, time_ms: int) -> int:
        tail = self._store.audit_tail()
        seq, prev = (1, GENESIS) if tail is None else (tail[0] + 1, tail[1])
        body = canonical_json({**event, "seq": seq, "time_ms": time_ms, "v": 1})
        self._store.audit_insert(AuditRow(seq, time_ms, body, prev, entry_hash(prev, body)))
        return seq

    def verify(self) -> VerifyReport:
        prev = GENESIS
        expected = 1
        for row in self._store.audit_rows():
            bad = _check_row(row, expected, prev)
            if bad:
                return VerifyReport(False, expected - 1, prev.hex(), bad[0], bad[1])
            prev = row.hash
            expected += 1
        return VerifyReport(True, expected - 1, prev.hex())

    def search(self, q: AuditQuery) -> Iterator[dict[str, Any]]:
        n = 0
        for row in self._store.audit_rows(from_ms=q.from_ms, to_ms=q.to_ms):
            entry: dict[str, Any] = json.loads(row.body)
            if q.peer and entry.get("requester") != q.peer and entry.get("peer") != q.peer:
                continue
            if q.purpose and entry.get("purpose") != q.purpose:
                continue
            if q.outcome and entry.get("outcome") != q.outcome:
                continue
            yield entry
            n += 1
            if n >= q.limit:
                return


def _check_row(row: AuditRow, expected: int, prev: bytes) -> tuple[int, str] | None:
    if row.seq != expected:
        if row.seq > expected:
            return expected, f"entry {expected} is missing (next stored entry is {row.seq})"
        return row.seq, f"entry {row.seq} is out of order"
    try:
        inner = json.loads(row.body)
    except ValueError:
        return row.seq, f"entry {row.seq} body is not valid JSON"
    if not isinstance(inner, dict) or inner.get("seq") != row.seq:
        return row.seq, f"entry {row.seq} holds the body of another entry (reordered or copied)"
    if row.prev_hash != prev:
        return row.seq, f"entry {row.seq} does not link to entry {row.seq - 1}"
    if entry_hash(prev, row.body) != row.hash:
        return row.seq, f"entry {row.seq} was changed after it was written"
    if inner.get("time_ms") != row.time_ms:
        return row.seq, f"entry {row.seq} time was changed"
    return None
