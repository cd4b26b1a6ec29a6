"""The owner's side of a follow-up, with no network code.

* :func:`locate_hit`: the follow-up must name a HIT this node answered to *this*
  requester: its receipts hold the signed lookup request and answer.
* :class:`FollowUpDesk`: file, look up, approve, deny, mark overdue.  Every step is
  an audit entry linked to the original hit (``hit_audit_seq``, ``hit_request_digest``,
  ``hit_item_index``, ``followup_id``).  A refused step changes nothing but the
  audit log.
* Four eyes: when the follow-up policy says ``officers_required: 2`` (the agreement's
  ``four_eyes: true``), the first approval is only recorded
  (``followup_approval_pending``, nothing is signed or released); a second, different
  officer confirms it (``approve`` again, with no fields or the same fields), and only
  then is the decision signed and released.  The same officer confirming is refused
  (``FAILED_PRECONDITION/same_officer``); a confirmation naming other fields is refused
  (``FAILED_PRECONDITION/confirmation_differs``).  A denial needs one officer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from node.core import envelope as env_mod
from node.core.envelope import Envelope
from node.core.errors import BxError, InvalidInput, PeerError, PolicyDenied
from node.core.members import MemberDirectory
from node.core.model import DocumentQuery, LookupAnswer, Outcome, validate_id
from node.followup.policy import FOLLOWUP_QUERY, followup_decision, followup_input
from node.followup.store import DOCUMENT_FIELDS, PERSON_FIELDS, FollowUpRow, FollowUpStore
from node.policy import PolicyEngine
from node.retention.checks import check_alert_live, check_receipt_retention
from node.store.db import Database
from node.store.followup_confirmations import FollowUpConfirmations, PendingApproval
from node.store.followups import HitRecords
from node.store.receipts import ReceiptTables
from node.wire import convert
from node.wire import crossings as wire
from node.wire.convert import pb

__all__ = ["FailedPrecondition", "FollowUpDesk", "Hit", "NotFound", "locate_hit"]

MAX_DENY_REASON = 256


class AuditLog(Protocol):
    """The node's audit log (``node.audit.log.MerkleAuditLog``): append in the caller's
    transaction; ``next_seq`` is the seq the next entry gets."""

    def append(self, event: dict[str, Any], *, time_ms: int) -> int: ...

    def next_seq(self) -> int: ...


class NotFound(PeerError):
    status = "NOT_FOUND"
    default_reason = "not_found"


class FailedPrecondition(PeerError):
    status = "FAILED_PRECONDITION"
    default_reason = "failed_precondition"


@dataclass(frozen=True, slots=True)
class Hit:
    reference: str
    record_kind: str  # document | person
    audit_seq: int


def locate_hit(db: Database, *, requester: str, lookup_digest: bytes, index: int,
               reference: str, now_ms: int | None = None) -> Hit:
    """Find the HIT at ``index`` of the lookup ``lookup_digest`` that *we* answered to
    ``requester``.  Unknown, foreign (another requester's) or mismatching references raise
    NOT_FOUND ``unknown_hit_reference``; a NO_HIT raises FAILED_PRECONDITION ``not_a_hit``;
    a receipt past its retention ``receipt_expired`` and a hit on an alert withdrawn since
    ``alert_withdrawn`` (issue 13, :mod:`node.retention.checks`)."""
    unknown = NotFound("no HIT with this reference was answered to you",
                       reason="unknown_hit_reference")
    check_receipt_retention(db, requester=requester, lookup_digest=lookup_digest,
                            now_ms=now_ms)
    for receipt in ReceiptTables(db).received(peer=requester, request_digest=lookup_digest):
        request = convert.envelope_from_pb(pb.SignedEnvelope.FromString(receipt.request_env))
        response = convert.envelope_from_pb(pb.SignedEnvelope.FromString(receipt.response_env))
        if (request.payload_type != env_mod.REQUEST_TYPE
                or response.payload_type != env_mod.RESPONSE_TYPE):
            continue
        answer = convert.decode_response(response.payload)
        if not isinstance(answer, LookupAnswer):
            continue  # a refused lookup has no hits
        if not 0 <= index < len(answer.results):
            raise unknown
        result = answer.results[index]
        if result.outcome is not Outcome.HIT:
            raise FailedPrecondition("the item named was answered NO_HIT; there is nothing to "
                                     "follow up", reason="not_a_hit")
        if not result.reference or (reference and reference != result.reference):
            raise unknown
        item = convert.decode_request(request.payload, max_items=len(answer.results)).items[index]
        check_alert_live(db, result.reference)
        return Hit(reference=result.reference,
                   record_kind="document" if isinstance(item, DocumentQuery) else "person",
                   audit_seq=answer.audit_seq)
    raise unknown


def fields_for(kind: str) -> tuple[str, ...]:
    return DOCUMENT_FIELDS if kind == "document" else PERSON_FIELDS


def check_field_names(kind: str, fields: Sequence[str]) -> None:
    unknown = sorted(set(fields) - set(fields_for(kind)))
    if unknown:
        raise InvalidInput(f"{', '.join(unknown)} is not a field of a {kind} record "
                           f"(known: {', '.join(fields_for(kind))})", reason="unknown_field")


class FollowUpDesk:
    """Follow-ups filed with this node: the owner's desk."""

    def __init__(self, *, node_id: str, store: FollowUpStore, policy: PolicyEngine,
                 directory: MemberDirectory, sign: Callable[[str, bytes], Envelope],
                 key_id: str, deadline_ms: int, clock_ms: Callable[[], int],
                 audit: AuditLog) -> None:
        self.node_id = node_id
        self.store = store
        self.policy = policy
        self.directory = directory
        self._sign = sign
        self.key_id = key_id
        self.deadline_ms = deadline_ms
        self.clock_ms = clock_ms
        self.audit = audit

    def next_seq(self) -> int:
        return self.audit.next_seq()

    # --- steps ------------------------------------------------------------------------------

    def sweep_overdue(self, now_ms: int | None = None) -> list[str]:
        """Mark every pending follow-up past its deadline overdue (once), audited."""
        now = self.clock_ms() if now_ms is None else now_ms
        marked = []
        with self.store.db.transaction():
            for row in self.store.due(now):
                self.store.mark_overdue(row.id, now)
                self.audit.append({"event": "followup_overdue", **row.link,
                                   "deadline_ms": row.deadline_ms}, time_ms=now)
                marked.append(row.id)
        return marked

    def new_id(self) -> str:
        return f"FU-{os.urandom(8).hex().upper()}"

    def record_value(self, row: FollowUpRow, field: str) -> str:
        records = HitRecords(self.store.db)
        if row.record_kind == "person":
            p = records.person(row.hit_reference)
            if p is None:
                raise FailedPrecondition("the record behind this hit no longer exists",
                                         reason="record_withdrawn")
            values = dict(zip(PERSON_FIELDS, (p[1], p[2], p[3], p[4], p[5], p[6]), strict=True))
        else:
            d = records.document(row.hit_reference)
            if d is None:
                raise FailedPrecondition("the record behind this hit no longer exists",
                                         reason="record_withdrawn")
            values = dict(zip(DOCUMENT_FIELDS, (str(v) for v in d), strict=True))
        return str(values[field])

    def pending_approval(self, fid: str) -> PendingApproval | None:
        """Four eyes: the first approval of ``fid`` awaiting a second officer, if any."""
        return FollowUpConfirmations(self.store.db).get(fid)

    def approve(self, fid: str, *, fields: Sequence[str] | None, operator: str) -> FollowUpRow:
        """Release ``fields`` (default: every field requested and allowed).  An approval may
        narrow the request, never widen it; policy is asked again now."""
        return self._decide(fid, operator=operator, approve=True, fields=fields, reason="")

    def deny(self, fid: str, *, reason: str, operator: str) -> FollowUpRow:
        return self._decide(fid, operator=operator, approve=False, fields=None, reason=reason)

    def _decide(self, fid: str, *, operator: str, approve: bool, fields: Sequence[str] | None,
                reason: str) -> FollowUpRow:
        now = self.clock_ms()
        self.sweep_overdue(now)
        action = "approve" if approve else "deny"
        row: FollowUpRow | None = None
        try:
            validate_id(operator, "operator")
            row = self.store.get(fid)
            if row is None:
                raise NotFound(f"no follow-up {fid}", reason="unknown_followup")
            if row.state != "pending":
                raise FailedPrecondition(f"follow-up {fid} was already {row.state}",
                                         reason="already_decided")
            with self.store.db.transaction():
                return self._decide_pending(row, now=now, operator=operator, approve=approve,
                                            fields=fields, reason=reason)
        except BxError as exc:
            with self.store.db.transaction():
                self.audit.append({"event": f"followup_{action}_refused", "followup_id": fid,
                                   **(row.link if row else {}), "operator": operator,
                                   "status": exc.status, "reason": exc.reason,
                                   "reasons": list(getattr(exc, "reasons", (exc.reason,)))},
                                  time_ms=now)
            raise

    def _decide_pending(self, row: FollowUpRow, *, now: int, operator: str, approve: bool,
                        fields: Sequence[str] | None, reason: str) -> FollowUpRow:
        released: tuple[str, ...] = ()
        values: dict[str, str] = {}
        confirmations = FollowUpConfirmations(self.store.db)
        pending = confirmations.get(row.id)
        first_operator = ""
        if approve:
            chosen = tuple(sorted(set(fields))) if fields else (
                pending.fields if pending is not None else row.requested)
            if pending is not None and pending.approved_by == operator:
                raise FailedPrecondition(
                    f"{operator} recorded the first approval of {row.id}; four eyes: a "
                    "second, different followup_desk officer must confirm it",
                    reason="same_officer")
            if pending is not None and chosen != pending.fields:
                raise FailedPrecondition(
                    f"the confirmation must release exactly the fields of the first approval "
                    f"({', '.join(pending.fields)})", reason="confirmation_differs")
            check_field_names(row.record_kind, chosen)
            member = self.directory.member(row.requester)
            decision = followup_decision(self.policy.decide_query(FOLLOWUP_QUERY, followup_input(
                member=member, operator=row.operator, purpose=row.purpose,
                legal_basis=row.legal_basis, case_ref=row.case_ref,
                record_kind=row.record_kind, fields=chosen, responder=self.node_id,
                time_ms=now)))
            if not decision.allow:
                raise PolicyDenied("policy does not allow releasing these fields now",
                                   reasons=decision.reasons)
            wider = sorted(set(chosen) - set(row.requested))
            if wider:
                raise InvalidInput(f"{', '.join(wider)} was not requested; an approval may "
                                   "narrow a request, never widen it",
                                   reason="field_not_requested")
            released = tuple(f for f in chosen if f in decision.extra["fields"])
            if decision.extra["officers_required"] == 2 and pending is None:
                confirmations.put(PendingApproval(followup_id=row.id, approved_by=operator,
                                                  fields=released, approved_ms=now))
                self.audit.append({"event": "followup_approval_pending", **row.link,
                                   "operator": operator, "fields": list(released),
                                   "officers_required": 2}, time_ms=now)
                return row  # nothing is signed or released before a second officer confirms
            if pending is not None:
                first_operator = pending.approved_by
            values = {f: self.record_value(row, f) for f in released}
        else:
            reason = reason.strip()
            if not 0 < len(reason) <= MAX_DENY_REASON:
                raise InvalidInput(f"a denial needs a reason of 1-{MAX_DENY_REASON} characters",
                                   reason="bad_deny_reason")
        seq = self.next_seq()
        decision_payload = wire.FollowUpDecision(
            responder=self.node_id, key_id=self.key_id, request_digest=row.file_digest,
            issued_at_ms=now, audit_seq=seq, followup_id=row.id,
            state="approved" if approve else "denied", fields=values, reason=reason,
            hit_reference=row.hit_reference)
        env = self._sign(wire.FOLLOWUP_DECISION_TYPE,
                         wire.encode_followup_decision(decision_payload))
        env_bytes = bytes(convert.envelope_to_pb(env).SerializeToString())
        if not self.store.decide(row.id, state=decision_payload.state, now_ms=now, by=operator,
                                 released=released, deny_reason=reason,
                                 decision_env=env_bytes):
            raise FailedPrecondition(f"follow-up {row.id} was already decided",
                                     reason="already_decided")
        if pending is not None:
            confirmations.clear(row.id)
        digest = env_mod.digest(env).hex()
        if approve:
            four_eyes = {"first_operator": first_operator} if first_operator else {}
            self.audit.append({"event": "followup_approved", **row.link, "operator": operator,
                               **four_eyes, "fields": list(released),
                               "late": row.overdue_at(now), "decision_digest": digest},
                              time_ms=now)
            self.audit.append({"event": "followup_released", **row.link,
                               "fields": list(released), "decision_digest": digest},
                              time_ms=now)
        else:
            self.audit.append({"event": "followup_denied", **row.link, "operator": operator,
                               "late": row.overdue_at(now), "decision_digest": digest},
                              time_ms=now)
        got = self.store.get(row.id)
        assert got is not None
        return got
