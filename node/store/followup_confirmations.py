"""Four eyes on follow-up releases: approvals that wait for a second officer
(:mod:`node.followup.owner`).

One row per follow-up whose first approval is recorded and not yet confirmed: who
approved it and which field names it would release (names only, never values), and when.
The row goes when the follow-up is decided (confirmed or denied).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from node.store.db import Database
from node.store.schema import register

__all__ = ["CONFIRMATIONS_SCHEMA_NAME", "FollowUpConfirmations", "PendingApproval"]

CONFIRMATIONS_SCHEMA_NAME: Final = "followup_confirmations"
CONFIRMATIONS_SCHEMA: Final = register(CONFIRMATIONS_SCHEMA_NAME, 1, """
CREATE TABLE IF NOT EXISTS followup_confirmations (
    followup_id TEXT PRIMARY KEY, approved_by TEXT NOT NULL, fields TEXT NOT NULL,
    approved_ms INTEGER NOT NULL
)
""").ddl


@dataclass(frozen=True, slots=True)
class PendingApproval:
    followup_id: str
    approved_by: str
    fields: tuple[str, ...]
    approved_ms: int


class FollowUpConfirmations:
    """The pending first approvals (callers hold the transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema(CONFIRMATIONS_SCHEMA_NAME, CONFIRMATIONS_SCHEMA)

    def get(self, fid: str) -> PendingApproval | None:
        row = self.db.query_one("SELECT followup_id, approved_by, fields, approved_ms "
                                "FROM followup_confirmations WHERE followup_id = ?", (fid,))
        if row is None:
            return None
        return PendingApproval(followup_id=str(row[0]), approved_by=str(row[1]),
                               fields=tuple(f for f in str(row[2]).split(",") if f),
                               approved_ms=int(row[3]))

    def put(self, p: PendingApproval) -> None:
        self.db.execute("INSERT INTO followup_confirmations (followup_id, approved_by, fields, "
                        "approved_ms) VALUES (?, ?, ?, ?)",
                        (p.followup_id, p.approved_by, ",".join(p.fields), p.approved_ms))

    def clear(self, fid: str) -> None:
        self.db.execute("DELETE FROM followup_confirmations WHERE followup_id = ?", (fid,))
