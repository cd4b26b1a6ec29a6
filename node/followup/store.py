"""Follow-up tables: the ones filed with us (owner side) and the ones we filed (requester side)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.store.sqlcipher import Store

__all__ = ["DOCUMENT_FIELDS", "PERSON_FIELDS", "FollowUpRow", "FollowUpStore", "SentRow"]

#: What a follow-up may ask for, by the kind of record behind the hit.
PERSON_FIELDS = ("family_name", "given_names", "patronymic", "date_of_birth", "nationality",
                 "sex")
DOCUMENT_FIELDS = ("document_number", "issuing_state", "document_type", "loss_type")

_DDL = """
CREATE TABLE IF NOT EXISTS followups (
    id TEXT PRIMARY KEY, requester TEXT NOT NULL, state TEXT NOT NULL,
    record_kind TEXT NOT NULL, hit_reference TEXT NOT NULL, hit_request_digest BLOB NOT NULL,
    hit_item_index INTEGER NOT NULL, hit_audit_seq INTEGER NOT NULL, purpose TEXT NOT NULL,
    legal_basis TEXT NOT NULL, case_ref TEXT NOT NULL, operator TEXT NOT NULL,
    requested TEXT NOT NULL, allowed TEXT NOT NULL, file_digest BLOB NOT NULL,
    filed_ms INTEGER NOT NULL, deadline_ms INTEGER NOT NULL, overdue_ms INTEGER,
    decided_ms INTEGER, decided_by TEXT NOT NULL DEFAULT '', released TEXT NOT NULL DEFAULT '',
    deny_reason TEXT NOT NULL DEFAULT '', decision_env BLOB, fetched_ms INTEGER
);
CREATE INDEX IF NOT EXISTS followups_state ON followups (state, deadline_ms);
CREATE TABLE IF NOT EXISTS followups_sent (
    id TEXT NOT NULL, peer TEXT NOT NULL, hit_reference TEXT NOT NULL,
    hit_request_digest BLOB NOT NULL, hit_item_index INTEGER NOT NULL, fields TEXT NOT NULL,
    purpose TEXT NOT NULL, legal_basis TEXT NOT NULL, case_ref TEXT NOT NULL,
    file_digest BLOB NOT NULL, filed_ms INTEGER NOT NULL, state TEXT NOT NULL,
    deadline_ms INTEGER NOT NULL, decision_env BLOB, PRIMARY KEY (peer, id)
)
"""

_COLS = ("id, requester, state, record_kind, hit_reference, hit_request_digest, hit_item_index, "
         "hit_audit_seq, purpose, legal_basis, case_ref, operator, requested, allowed, "
         "file_digest, filed_ms, deadline_ms, overdue_ms, decided_ms, decided_by, released, "
         "deny_reason, decision_env, fetched_ms")
_SENT_COLS = ("id, peer, hit_reference, hit_request_digest, hit_item_index, fields, purpose, "
              "legal_basis, case_ref, file_digest, filed_ms, state, deadline_ms, decision_env")


def _split(text: str) -> tuple[str, ...]:
    return tuple(f for f in text.split(",") if f)


@dataclass(frozen=True, slots=True)
class FollowUpRow:
    id: str
    requester: str
    state: str
    record_kind: str
    hit_reference: str
    hit_request_digest: bytes
    hit_item_index: int
    hit_audit_seq: int
    purpose: str
    legal_basis: str
    case_ref: str
    operator: str
    requested: tuple[str, ...]
    allowed: tuple[str, ...]
    file_digest: bytes
    filed_ms: int
    deadline_ms: int
    overdue_ms: int | None = None
    decided_ms: int | None = None
    decided_by: str = ""
    released: tuple[str, ...] = ()
    deny_reason: str = ""
    decision_env: bytes | None = None
    fetched_ms: int | None = None

    @property
    def link(self) -> dict[str, Any]:
        """What links every audit event of this follow-up to the original hit."""
        return {"followup_id": self.id, "hit_audit_seq": self.hit_audit_seq,
                "hit_request_digest": self.hit_request_digest.hex(),
                "hit_item_index": self.hit_item_index, "requester": self.requester}

    def overdue_at(self, now_ms: int) -> bool:
        return self.state == "pending" and now_ms > self.deadline_ms


@dataclass(frozen=True, slots=True)
class SentRow:
    id: str
    peer: str
    hit_reference: str
    hit_request_digest: bytes
    hit_item_index: int
    fields: tuple[str, ...]
    purpose: str
    legal_basis: str
    case_ref: str
    file_digest: bytes
    filed_ms: int
    state: str
    deadline_ms: int
    decision_env: bytes | None = None


def _row(r: tuple[Any, ...]) -> FollowUpRow:
    return FollowUpRow(
        id=r[0], requester=r[1], state=r[2], record_kind=r[3], hit_reference=r[4],
        hit_request_digest=bytes(r[5]), hit_item_index=int(r[6]), hit_audit_seq=int(r[7]),
        purpose=r[8], legal_basis=r[9], case_ref=r[10], operator=r[11],
        requested=_split(r[12]), allowed=_split(r[13]), file_digest=bytes(r[14]),
        filed_ms=int(r[15]), deadline_ms=int(r[16]), overdue_ms=r[17], decided_ms=r[18],
        decided_by=r[19], released=_split(r[20]), deny_reason=r[21],
        decision_env=None if r[22] is None else bytes(r[22]), fetched_ms=r[23])


class FollowUpStore:
    def __init__(self, store: Store) -> None:
        self.db = store
        store.ensure_schema("followups", _DDL)

    # --- owner side -------------------------------------------------------------------------

    def add(self, r: FollowUpRow) -> None:
        self.db.execute(
            f"INSERT INTO followups ({_COLS}) VALUES ({','.join('?' * 24)})",  # noqa: S608 - constant columns
            (r.id, r.requester, r.state, r.record_kind, r.hit_reference, r.hit_request_digest,
             r.hit_item_index, r.hit_audit_seq, r.purpose, r.legal_basis, r.case_ref,
             r.operator, ",".join(r.requested), ",".join(r.allowed), r.file_digest, r.filed_ms,
             r.deadline_ms, r.overdue_ms, r.decided_ms, r.decided_by, ",".join(r.released),
             r.deny_reason, r.decision_env, r.fetched_ms))

    def get(self, fid: str) -> FollowUpRow | None:
        r = self.db.query_one(f"SELECT {_COLS} FROM followups WHERE id=?", (fid,))  # noqa: S608 - constant columns
        return None if r is None else _row(r)

    def all(self, *, state: str | None = None) -> list[FollowUpRow]:
        if state:
            return [_row(r) for r in self.db.query(
                f"SELECT {_COLS} FROM followups WHERE state=? ORDER BY filed_ms, id", (state,))]  # noqa: S608 - constant columns
        return [_row(r) for r in self.db.query(
            f"SELECT {_COLS} FROM followups ORDER BY filed_ms, id")]  # noqa: S608 - constant columns

    def due(self, now_ms: int) -> list[FollowUpRow]:
        """Pending, past the deadline and not yet marked overdue."""
        return [_row(r) for r in self.db.query(
            f"SELECT {_COLS} FROM followups WHERE state='pending' AND deadline_ms < ? AND "  # noqa: S608 - constant columns
            "overdue_ms IS NULL ORDER BY deadline_ms", (now_ms,))]

    def mark_overdue(self, fid: str, now_ms: int) -> None:
        self.db.execute("UPDATE followups SET overdue_ms=? WHERE id=? AND overdue_ms IS NULL",
                        (now_ms, fid))

    def decide(self, fid: str, *, state: str, now_ms: int, by: str, released: tuple[str, ...],
               deny_reason: str, decision_env: bytes) -> bool:
        """Record a decision; False when it was no longer pending (nothing changed)."""
        return self.db.execute(
            "UPDATE followups SET state=?, decided_ms=?, decided_by=?, released=?, deny_reason=?, "
            "decision_env=? WHERE id=? AND state='pending'",
            (state, now_ms, by, ",".join(released), deny_reason, decision_env, fid)) == 1

    def mark_fetched(self, fid: str, now_ms: int) -> bool:
        return self.db.execute(
            "UPDATE followups SET fetched_ms=? WHERE id=? AND fetched_ms IS NULL",
            (now_ms, fid)) == 1

    # --- requester side ---------------------------------------------------------------------

    def add_sent(self, r: SentRow) -> None:
        self.db.execute(
            f"INSERT OR REPLACE INTO followups_sent ({_SENT_COLS}) VALUES ({','.join('?' * 14)})",  # noqa: S608 - constant columns
            (r.id, r.peer, r.hit_reference, r.hit_request_digest, r.hit_item_index,
             ",".join(r.fields), r.purpose, r.legal_basis, r.case_ref, r.file_digest,
             r.filed_ms, r.state, r.deadline_ms, r.decision_env))

    def sent(self, peer: str, fid: str) -> SentRow | None:
        r = self.db.query_one(f"SELECT {_SENT_COLS} FROM followups_sent WHERE peer=? AND id=?",  # noqa: S608 - constant columns
                              (peer, fid))
        if r is None:
            return None
        return SentRow(id=r[0], peer=r[1], hit_reference=r[2], hit_request_digest=bytes(r[3]),
                       hit_item_index=int(r[4]), fields=_split(r[5]), purpose=r[6],
                       legal_basis=r[7], case_ref=r[8], file_digest=bytes(r[9]),
                       filed_ms=int(r[10]), state=r[11], deadline_ms=int(r[12]),
                       decision_env=None if r[13] is None else bytes(r[13]))

    def update_sent(self, peer: str, fid: str, *, state: str, decision_env: bytes | None) -> None:
        self.db.execute("UPDATE followups_sent SET state=?, decision_env=? WHERE peer=? AND id=?",
                        (state, decision_env, peer, fid))
