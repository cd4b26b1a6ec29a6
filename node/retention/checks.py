"""What the follow-up desk checks before it accepts a follow-up on a hit (issue 13):

* the receipt of the lookup is still held: one erased by the retention sweep, or older
  than the receipts' retention the last sweep applied (``retention.receipts_ms``, so the
  answer does not depend on when the next sweep runs), is
  ``FAILED_PRECONDITION/receipt_expired``;
* the alert behind the hit was not withdrawn since: ``FAILED_PRECONDITION/alert_withdrawn``
  (the signed answer stays verifiable; there is just nothing left to follow up).
"""

from __future__ import annotations

from node.core.errors import PeerError
from node.store.alerts import AlertTables
from node.store.db import Database
from node.store.retention import RetentionTables

__all__ = ["FollowUpPrecondition", "check_alert_live", "check_receipt_retention"]

RETENTION_META = "retention.receipts_ms"


class FollowUpPrecondition(PeerError):
    status = "FAILED_PRECONDITION"
    default_reason = "failed_precondition"


def check_receipt_retention(db: Database, *, requester: str, lookup_digest: bytes,
                            now_ms: int | None) -> None:
    tables = RetentionTables(db)
    tables.ensure_schema()
    heads = tables.receipts_for(request_digest=lookup_digest, peer=requester,
                                direction="received")
    if not heads:
        return  # unknown: the caller answers unknown_hit_reference
    expired = FollowUpPrecondition(
        "the receipt of that lookup is past its retention and was or will be erased; "
        "it can no longer be followed up", reason="receipt_expired")
    if all(h.erased_ms is not None for h in heads):
        raise expired
    retention = db.get_meta(RETENTION_META)
    if now_ms is not None and retention is not None and all(
            h.created_ms + int(retention) < now_ms for h in heads):
        raise expired


def check_alert_live(db: Database, reference: str) -> None:
    tables = AlertTables(db)
    tables.ensure_schema()
    if tables.withdrawn(reference) is not None:
        raise FollowUpPrecondition("the alert behind this hit was withdrawn by its owner "
                                   "since; there is nothing to follow up",
                                   reason="alert_withdrawn")
