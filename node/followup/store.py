"""Follow-up tables: the ones filed with us (owner side) and the ones we filed (requester side).

The rows and their SQL are in :mod:`node.store.followups` (which protects hit references
and signed decisions on PostgreSQL); this module names what a follow-up may ask for and
opens the tables for the follow-up desk and client.
"""

from __future__ import annotations

from node.store.db import Database
from node.store.followups import FollowUpRow, FollowUpTables, SentRow

__all__ = ["DOCUMENT_FIELDS", "PERSON_FIELDS", "FollowUpRow", "FollowUpStore", "SentRow"]

#: What a follow-up may ask for, by the kind of record behind the hit.
PERSON_FIELDS = ("family_name", "given_names", "patronymic", "date_of_birth", "nationality",
                 "sex")
DOCUMENT_FIELDS = ("document_number", "issuing_state", "document_type", "loss_type")


class FollowUpStore(FollowUpTables):
    """The follow-up tables of one node database (created on first use); ``db`` is the
    database itself, for the caller's transaction."""

    def __init__(self, store: Database) -> None:
        super().__init__(store)
        self.ensure_schema()
