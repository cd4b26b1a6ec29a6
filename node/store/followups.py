"""Follow-up tables: the ones filed with us (owner side, ``followups``) and the ones we filed
(requester side, ``followups_sent``) (:mod:`node.followup`).

Personal identifiers go through the backend's :class:`~node.store.db.FieldCodec`:

* the hit's reference (an owner reference of a watchlist record) and the signed decision
  (which carries the released field values);
* SQLCipher (the whole file is encrypted): every column holds its value, as always, and
  ``sealed`` is NULL;
* PostgreSQL: ``hit_reference`` is blank and ``sealed`` holds it as AES-GCM ciphertext;
  ``decision_env`` is sealed in place.

Follow-up ids, node ids, field names, purposes, states, digests and times are stored as
they are.  Text is never ordered in SQL (PostgreSQL's collation need not be SQLite's
binary one): rows are sorted here, in code point order, as SQLite's ``ORDER BY`` did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from node.store._fields import open_blob, open_text, seal_blob
from node.store.db import Database
from node.store.schema import register
from node.store.watchlist import SqlWatchlistStore

__all__ = ["FOLLOWUPS_SCHEMA", "FOLLOWUPS_SCHEMA_NAME", "FOLLOWUPS_SEALED_SCHEMA_NAME",
           "FOLLOWUPS_SEALED_STEP", "FollowUpRow", "FollowUpTables", "HitRecords", "SentRow"]

FOLLOWUPS_SCHEMA_NAME: Final = "followups"
FOLLOWUPS_SCHEMA: Final = register(FOLLOWUPS_SCHEMA_NAME, 1, """
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
""").ddl
#: The sealed hit references (NULL in SQLCipher, where the file is encrypted); a schema
#: name of its own, as ``crossings_sealed`` (:mod:`node.store.crossings`).
FOLLOWUPS_SEALED_SCHEMA_NAME: Final = "followups_sealed"
FOLLOWUPS_SEALED_STEP: Final = register(FOLLOWUPS_SEALED_SCHEMA_NAME, 1, """
ALTER TABLE followups ADD COLUMN sealed BLOB;
ALTER TABLE followups_sent ADD COLUMN sealed BLOB
""").ddl

_REF: Final = "followups.hit_reference"
_DECISION: Final = "followups.decision_env"
_SENT_REF: Final = "followups_sent.hit_reference"
_SENT_DECISION: Final = "followups_sent.decision_env"

_COLS: Final = (
    "id, requester, state, record_kind, hit_reference, hit_request_digest, hit_item_index, "
    "hit_audit_seq, purpose, legal_basis, case_ref, operator, requested, allowed, "
    "file_digest, filed_ms, deadline_ms, overdue_ms, decided_ms, decided_by, released, "
    "deny_reason, decision_env, fetched_ms, sealed")
_SENT_COLS: Final = (
    "id, peer, hit_reference, hit_request_digest, hit_item_index, fields, purpose, "
    "legal_basis, case_ref, file_digest, filed_ms, state, deadline_ms, decision_env, sealed")


def _split(text: str) -> tuple[str, ...]:
    return tuple(f for f in text.split(",") if f)


@dataclass(frozen=True, slots=True)
class FollowUpRow:
    """A follow-up filed with this node."""

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
    """A follow-up this node filed with a peer."""

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


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


class FollowUpTables:
    """The follow-up tables over one :class:`~node.store.db.Database` (callers hold the
    transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._protects = db.codec.protects

    def ensure_schema(self) -> None:
        self.db.ensure_schema(FOLLOWUPS_SCHEMA_NAME, FOLLOWUPS_SCHEMA)
        self.db.ensure_schema(FOLLOWUPS_SEALED_SCHEMA_NAME, FOLLOWUPS_SEALED_STEP)

    def _ref_columns(self, kind: str, ref: str) -> tuple[str, bytes | None]:
        """``(hit_reference, sealed)`` as stored."""
        if self._protects:
            return "", self.db.codec.seal(kind, ref.encode())
        return ref, None

    def _ref(self, kind: str, column: Any, sealed: Any) -> str:
        return str(column) if sealed is None else open_text(self.db.codec, kind, bytes(sealed))

    # --- owner side -------------------------------------------------------------------------

    def add(self, r: FollowUpRow) -> None:
        ref, sealed = self._ref_columns(_REF, r.hit_reference)
        self.db.execute(
            f"INSERT INTO followups ({_COLS}) VALUES ({','.join('?' * 25)})",  # noqa: S608 - constant columns
            (r.id, r.requester, r.state, r.record_kind, ref, r.hit_request_digest,
             r.hit_item_index, r.hit_audit_seq, r.purpose, r.legal_basis, r.case_ref,
             r.operator, ",".join(r.requested), ",".join(r.allowed), r.file_digest, r.filed_ms,
             r.deadline_ms, r.overdue_ms, r.decided_ms, r.decided_by, ",".join(r.released),
             r.deny_reason, seal_blob(self.db.codec, _DECISION, r.decision_env), r.fetched_ms,
             sealed))

    def get(self, fid: str) -> FollowUpRow | None:
        r = self.db.query_one(f"SELECT {_COLS} FROM followups WHERE id=?", (fid,))  # noqa: S608 - constant columns
        return None if r is None else self._row(r)

    def all(self, *, state: str | None = None) -> list[FollowUpRow]:
        """Every follow-up (in ``state``), by filing time and then id."""
        if state:
            rows = self.db.query(f"SELECT {_COLS} FROM followups WHERE state=?", (state,))  # noqa: S608 - constant columns
        else:
            rows = self.db.query(f"SELECT {_COLS} FROM followups")  # noqa: S608 - constant columns
        return sorted((self._row(r) for r in rows), key=lambda f: (f.filed_ms, f.id))

    def due(self, now_ms: int) -> list[FollowUpRow]:
        """Pending, past the deadline and not yet marked overdue, by deadline."""
        return [self._row(r) for r in self.db.query(
            f"SELECT {_COLS} FROM followups WHERE state='pending' AND deadline_ms < ? AND "  # noqa: S608 - constant columns
            "overdue_ms IS NULL ORDER BY deadline_ms", (now_ms,))]

    def mark_overdue(self, fid: str, now_ms: int) -> None:
        self.db.execute("UPDATE followups SET overdue_ms=? WHERE id=? AND overdue_ms IS NULL",
                        (now_ms, fid))

    def decide(self, fid: str, *, state: str, now_ms: int, by: str, released: Sequence[str],
               deny_reason: str, decision_env: bytes) -> bool:
        """Record a decision; False when it was no longer pending (nothing changed)."""
        return self.db.execute(
            "UPDATE followups SET state=?, decided_ms=?, decided_by=?, released=?, deny_reason=?, "
            "decision_env=? WHERE id=? AND state='pending'",
            (state, now_ms, by, ",".join(released), deny_reason,
             seal_blob(self.db.codec, _DECISION, decision_env), fid)) == 1

    def mark_fetched(self, fid: str, now_ms: int) -> bool:
        return self.db.execute(
            "UPDATE followups SET fetched_ms=? WHERE id=? AND fetched_ms IS NULL",
            (now_ms, fid)) == 1

    def _row(self, r: Sequence[Any]) -> FollowUpRow:
        return FollowUpRow(
            id=str(r[0]), requester=str(r[1]), state=str(r[2]), record_kind=str(r[3]),
            hit_reference=self._ref(_REF, r[4], r[24]), hit_request_digest=bytes(r[5]),
            hit_item_index=int(r[6]), hit_audit_seq=int(r[7]), purpose=str(r[8]),
            legal_basis=str(r[9]), case_ref=str(r[10]), operator=str(r[11]),
            requested=_split(str(r[12])), allowed=_split(str(r[13])), file_digest=bytes(r[14]),
            filed_ms=int(r[15]), deadline_ms=int(r[16]), overdue_ms=_opt_int(r[17]),
            decided_ms=_opt_int(r[18]), decided_by=str(r[19]), released=_split(str(r[20])),
            deny_reason=str(r[21]), decision_env=open_blob(self.db.codec, _DECISION, r[22]),
            fetched_ms=_opt_int(r[23]))

    # --- requester side ---------------------------------------------------------------------

    def add_sent(self, r: SentRow) -> None:
        """Record a follow-up we filed; one filed again under the same (peer, id) replaces
        the earlier row in every column."""
        ref, sealed = self._ref_columns(_SENT_REF, r.hit_reference)
        self.db.execute(
            f"INSERT INTO followups_sent ({_SENT_COLS}) VALUES ({','.join('?' * 15)}) "  # noqa: S608 - constant columns
            "ON CONFLICT (peer, id) DO UPDATE SET hit_reference=excluded.hit_reference, "
            "hit_request_digest=excluded.hit_request_digest, "
            "hit_item_index=excluded.hit_item_index, fields=excluded.fields, "
            "purpose=excluded.purpose, legal_basis=excluded.legal_basis, "
            "case_ref=excluded.case_ref, file_digest=excluded.file_digest, "
            "filed_ms=excluded.filed_ms, state=excluded.state, "
            "deadline_ms=excluded.deadline_ms, decision_env=excluded.decision_env, "
            "sealed=excluded.sealed",
            (r.id, r.peer, ref, r.hit_request_digest, r.hit_item_index, ",".join(r.fields),
             r.purpose, r.legal_basis, r.case_ref, r.file_digest, r.filed_ms, r.state,
             r.deadline_ms, seal_blob(self.db.codec, _SENT_DECISION, r.decision_env), sealed))

    def sent(self, peer: str, fid: str) -> SentRow | None:
        r = self.db.query_one(f"SELECT {_SENT_COLS} FROM followups_sent WHERE peer=? AND id=?",  # noqa: S608 - constant columns
                              (peer, fid))
        return None if r is None else self._sent(r)

    def _sent(self, r: Sequence[Any]) -> SentRow:
        return SentRow(id=str(r[0]), peer=str(r[1]),
                       hit_reference=self._ref(_SENT_REF, r[2], r[14]),
                       hit_request_digest=bytes(r[3]), hit_item_index=int(r[4]),
                       fields=_split(str(r[5])), purpose=str(r[6]), legal_basis=str(r[7]),
                       case_ref=str(r[8]), file_digest=bytes(r[9]), filed_ms=int(r[10]),
                       state=str(r[11]), deadline_ms=int(r[12]),
                       decision_env=open_blob(self.db.codec, _SENT_DECISION, r[13]))

    def all_sent(self) -> list[SentRow]:
        """Every follow-up we filed, by peer and then id (``bxnode store copy``)."""
        rows = [self._sent(r) for r in self.db.query(
            f"SELECT {_SENT_COLS} FROM followups_sent")]  # noqa: S608 - constant columns
        return sorted(rows, key=lambda s: (s.peer, s.id))

    def update_sent(self, peer: str, fid: str, *, state: str, decision_env: bytes | None) -> None:
        self.db.execute("UPDATE followups_sent SET state=?, decision_env=? WHERE peer=? AND id=?",
                        (state, seal_blob(self.db.codec, _SENT_DECISION, decision_env), peer,
                         fid))


class HitRecords:
    """The watchlist record behind a HIT, for the follow-up desk to release fields of
    (through the watchlist's own store, which opens its sealed layout on PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._records = SqlWatchlistStore(db)

    def document(self, owner_ref: str) -> tuple[str, str, str, str] | None:
        """``(number, issuing_state, doc_type, loss_type)`` of the document record
        ``owner_ref``, the first by number when it names several."""
        return self._records.document_of(owner_ref)

    def person(self, owner_ref: str) -> tuple[str, ...] | None:
        """``(owner_ref, family_name, given_names, patronymic, dob, nationality, sex, action,
        contact, expires)`` of the person record ``owner_ref``."""
        return self._records.person(owner_ref)
