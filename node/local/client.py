"""A typed Python client for the LocalService, for national systems and the CLI.

    from node.local.client import LocalClient

    with LocalClient.over_socket("/var/lib/bxnode/officers.sock", cert="kz-0193.crt",
                                 key="kz-0193.key", ca="/var/lib/bxnode/ca.crt") as node:
        result = node.lookup_document("N1234567", "KGZ", peers=["all"],
                                      purpose="border_check", case_ref="BCP-42")
        for peer in result.peers:
            print(peer.peer, peer.outcome, [r.outcome.value for r in peer.results])

A refusal raises :class:`LocalCallError` with the gRPC status and the node's reason code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from node.core.model import DocumentQuery, ItemResult, PersonQuery, Query
from node.wire import convert
from node.wire.local import lpb, lpb_grpc
from node.wire.trailers import trailers

__all__ = ["AlertSummary", "DeskFollowUp", "FanOut", "LocalCallError", "LocalClient",
           "PeerResult", "SentFollowUp", "WhoAmI"]

_REASON_KEY = "bxnode-reason"
_OUTCOMES = {lpb.PEER_OUTCOME_ANSWERED: "answered", lpb.PEER_OUTCOME_REFUSED: "refused",
             lpb.PEER_OUTCOME_UNREACHABLE: "unreachable", lpb.PEER_OUTCOME_NOT_ASKED: "not_asked",
             lpb.PEER_OUTCOME_UNVERIFIED: "unverified"}


class LocalCallError(Exception):
    """The call was refused: ``status`` (gRPC name) and ``reason`` (stable code).

    ``refused_by`` names the peer when a method that asks one peer (crossings,
    follow-ups) carries that peer's refusal (``refusal_verified``: its signed refusal
    verified); it is empty when the node itself refused the call."""

    def __init__(self, status: str, reason: str, details: str, *, refused_by: str = "",
                 refusal_verified: bool = False) -> None:
        super().__init__(f"{status.lower()}/{reason}: {details}")
        self.status, self.reason, self.details = status, reason, details
        self.refused_by, self.refusal_verified = refused_by, refusal_verified


@dataclass(frozen=True, slots=True)
class WhoAmI:
    identity: str
    method: str
    roles: tuple[str, ...]
    node_id: str


@dataclass(frozen=True, slots=True)
class PeerResult:
    """One peer's answer, never merged with another's.  ``outcome`` is answered, refused,
    unreachable, unverified or not_asked."""

    peer: str
    outcome: str
    results: tuple[ItemResult, ...]
    status: str
    reason: str
    refusal_verified: bool
    peer_audit_seq: int
    request_digest: bytes

    @property
    def hits(self) -> int:
        return sum(1 for r in self.results if r.outcome.value == "hit")


@dataclass(frozen=True, slots=True)
class FanOut:
    peers: tuple[PeerResult, ...]
    audit_seq: int

    def peer(self, node_id: str) -> PeerResult:
        return next(p for p in self.peers if p.peer == node_id)


@dataclass(frozen=True, slots=True)
class SentFollowUp:
    followup_id: str
    peer: str
    state: str
    fields: dict[str, str]
    reason: str
    deadline_ms: int


@dataclass(frozen=True, slots=True)
class AlertSummary:
    """An alert as the node reports it after a change (never its personal data):
    ``state`` is live, expired or withdrawn; ``alert_id`` the keyed id its audit uses."""

    owner_ref: str
    kind: str
    source: str
    state: str
    action: str
    expires: str
    alert_id: str


def _alert(m: Any) -> AlertSummary:
    return AlertSummary(owner_ref=m.owner_ref, kind=m.kind, source=m.source, state=m.state,
                        action=m.action, expires=m.expires, alert_id=m.alert_id)


@dataclass(frozen=True, slots=True)
class DeskFollowUp:
    followup_id: str
    requester: str
    state: str
    record_kind: str
    requested: tuple[str, ...]
    released: tuple[str, ...]
    decided_by: str
    approval_pending_by: str
    approval_pending_fields: tuple[str, ...]
    hit_reference: str = ""
    hit_audit_seq: int = 0
    hit_item_index: int = 0
    purpose: str = ""
    legal_basis: str = ""
    case_ref: str = ""
    operator: str = ""
    allowed: tuple[str, ...] = ()
    filed_ms: int = 0
    deadline_ms: int = 0
    decided_ms: int = 0
    deny_reason: str = ""
    fetched_ms: int = 0
    overdue: bool = False


def _item(r: Any) -> ItemResult:
    return ItemResult(index=r.index, outcome=convert._OUTCOME_FROM_PB[r.outcome],
                      reference=r.reference, action=convert._ACTION_FROM_PB.get(r.action),
                      contact=r.contact, source_agency=r.source_agency)


def _fan_out(m: Any) -> FanOut:
    return FanOut(audit_seq=m.audit_seq, peers=tuple(PeerResult(
        peer=p.peer, outcome=_OUTCOMES.get(p.outcome, "unspecified"),
        results=tuple(_item(r) for r in p.results), status=p.status, reason=p.reason,
        refusal_verified=p.refusal_verified, peer_audit_seq=p.peer_audit_seq,
        request_digest=bytes(p.request_digest)) for p in m.peers))


def _sent(m: Any) -> SentFollowUp:
    return SentFollowUp(followup_id=m.followup_id, peer=m.peer, state=m.state,
                        fields=dict(m.fields), reason=m.reason, deadline_ms=m.deadline_ms)


def _desk(m: Any) -> DeskFollowUp:
    return DeskFollowUp(followup_id=m.followup_id, requester=m.requester, state=m.state,
                        record_kind=m.record_kind, requested=tuple(m.requested),
                        released=tuple(m.released), decided_by=m.decided_by,
                        approval_pending_by=m.approval_pending_by,
                        approval_pending_fields=tuple(m.approval_pending_fields),
                        hit_reference=m.hit_reference, hit_audit_seq=m.hit_audit_seq,
                        hit_item_index=m.hit_item_index, purpose=m.purpose,
                        legal_basis=m.legal_basis, case_ref=m.case_ref, operator=m.operator,
                        allowed=tuple(m.allowed), filed_ms=m.filed_ms,
                        deadline_ms=m.deadline_ms, decided_ms=m.decided_ms,
                        deny_reason=m.deny_reason, fetched_ms=m.fetched_ms,
                        overdue=m.overdue)


def _read(p: str | Path | None) -> bytes | None:
    return None if p is None else Path(p).read_bytes()


class LocalClient:
    """One connection to a node's LocalService.  Use a factory: :meth:`over_socket`,
    :meth:`over_tcp`."""

    def __init__(self, *, channel: grpc.Channel, token: str | None = None,
                 timeout_s: float = 70.0) -> None:
        self._channel = channel
        self._stub = lpb_grpc.LocalServiceStub(channel)
        self._md = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout_s

    @classmethod
    def over_socket(cls, path: str | Path, *, cert: str | Path | None = None,
                    key: str | Path | None = None, ca: str | Path | None = None,
                    token: str | None = None, server_name: str = "localhost") -> LocalClient:
        """The node's unix socket: with an officer certificate (``cert``/``key``, and the
        ``ca`` that issued the node's listener certificate) over mTLS, or plain with a
        bearer ``token`` when the node takes tokens only."""
        target = f"unix:{Path(path).resolve()}"
        if cert is None:
            return cls(channel=grpc.insecure_channel(target), token=token)
        creds = grpc.ssl_channel_credentials(root_certificates=_read(ca),
                                             private_key=_read(key),
                                             certificate_chain=_read(cert))
        return cls(channel=grpc.secure_channel(target, creds, options=(
            ("grpc.ssl_target_name_override", server_name),)), token=token)

    @classmethod
    def over_tcp(cls, address: str, *, cert: str | Path, key: str | Path, ca: str | Path,
                 token: str | None = None) -> LocalClient:
        """``host:port`` of the node's ``[local] api_tcp`` (always mTLS)."""
        creds = grpc.ssl_channel_credentials(root_certificates=_read(ca),
                                             private_key=_read(key),
                                             certificate_chain=_read(cert))
        return cls(channel=grpc.secure_channel(address, creds), token=token)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self._timeout,
                                               metadata=self._md)
        except grpc.RpcError as err:
            raise _error(err) from None

    # --- methods ------------------------------------------------------------------------------

    def call(self, method: str, request: Any) -> Any:
        """Any LocalService method by name with its request message (e.g. the watchlist's:
        AddAlert, UpdateAlert, WithdrawAlert, ShowAlert, ListAlerts, AlertStats)."""
        return self._call(method, request)

    def whoami(self) -> WhoAmI:
        r = self._call("WhoAmI", lpb.WhoAmIRequest())
        return WhoAmI(identity=r.identity, method=r.method, roles=tuple(r.roles),
                      node_id=r.node_id)

    @staticmethod
    def _target(peers: Sequence[str], purpose: str, case_ref: str, legal_basis: str,
                deadline_ms: int) -> Any:
        return lpb.FanOut(peers=list(peers), deadline_ms=deadline_ms,
                          context=lpb.CaseContext(purpose=purpose, legal_basis=legal_basis,
                                                  case_ref=case_ref))

    def lookup_document(self, number: str, issuing_state: str, doc_type: str = "P", *,
                        peers: Sequence[str], purpose: str, case_ref: str,
                        legal_basis: str = "bilateral agreement",
                        deadline_ms: int = 0) -> FanOut:
        r = self._call("LookupDocument", lpb.LookupDocumentRequest(
            target=self._target(peers, purpose, case_ref, legal_basis, deadline_ms),
            document=convert.pb.DocumentQuery(number=number, issuing_state=issuing_state,
                                              document_type=doc_type)))
        return _fan_out(r.result)

    def lookup_person(self, person: PersonQuery, *, peers: Sequence[str], purpose: str,
                      case_ref: str, legal_basis: str = "bilateral agreement",
                      deadline_ms: int = 0) -> FanOut:
        r = self._call("LookupPerson", lpb.LookupPersonRequest(
            target=self._target(peers, purpose, case_ref, legal_basis, deadline_ms),
            person=convert._person_to_pb(person)))
        return _fan_out(r.result)

    def lookup_mrz(self, mrz: str, *, peers: Sequence[str], purpose: str, case_ref: str,
                   legal_basis: str = "bilateral agreement",
                   deadline_ms: int = 0) -> tuple[str, FanOut]:
        """(format, result): item 0 is the document, item 1 its holder."""
        r = self._call("LookupMrz", lpb.LookupMrzRequest(
            target=self._target(peers, purpose, case_ref, legal_basis, deadline_ms), mrz=mrz))
        return r.format, _fan_out(r.result)

    def lookup_manifest(self, items: Sequence[Query], *, peers: Sequence[str], purpose: str,
                        case_ref: str, legal_basis: str = "bilateral agreement",
                        deadline_ms: int = 0) -> FanOut:
        msg = lpb.LookupManifestRequest(
            target=self._target(peers, purpose, case_ref, legal_basis, deadline_ms))
        for q in items:
            if isinstance(q, DocumentQuery):
                msg.items.add(document=convert.pb.DocumentQuery(
                    number=q.number, issuing_state=q.issuing_state, document_type=q.doc_type))
            else:
                msg.items.add(person=convert._person_to_pb(q))
        return _fan_out(self._call("LookupManifest", msg).result)

    def lookup_paxlst(self, message: str, *, peers: Sequence[str], purpose: str,
                      case_ref: str, legal_basis: str = "bilateral agreement",
                      deadline_ms: int = 0) -> FanOut:
        r = self._call("LookupPaxlst", lpb.LookupPaxlstRequest(
            target=self._target(peers, purpose, case_ref, legal_basis, deadline_ms),
            message=message))
        return _fan_out(r.result)

    def send_followup(self, peer: str, reference: str, fields: Sequence[str], *,
                      purpose: str, case_ref: str, legal_basis: str = "bilateral agreement",
                      lookup_digest: bytes = b"", item_index: int = 0) -> SentFollowUp:
        """File a follow-up to the HIT ``reference`` (found in our receipts), or to item
        ``item_index`` of the lookup whose signed request has ``lookup_digest``."""
        r = self._call("SendFollowUp", lpb.SendFollowUpRequest(
            peer=peer, reference=reference, fields=list(fields), lookup_digest=lookup_digest,
            item_index=item_index,
            context=lpb.CaseContext(purpose=purpose, legal_basis=legal_basis,
                                    case_ref=case_ref)))
        return _sent(r.followup)

    def poll_followup(self, peer: str, followup_id: str, *, purpose: str = "",
                      case_ref: str = "", legal_basis: str = "") -> SentFollowUp:
        """The owner's current answer; asked under the filing's purpose and case unless
        ``purpose`` is given."""
        r = self._call("PollFollowUp", lpb.PollFollowUpRequest(
            peer=peer, followup_id=followup_id, context=lpb.CaseContext(
                purpose=purpose, legal_basis=legal_basis, case_ref=case_ref)))
        return _sent(r.followup)

    def await_followup(self, peer: str, followup_id: str, *, purpose: str = "",
                       case_ref: str = "", legal_basis: str = "",
                       timeout_s: int = 600) -> Iterator[SentFollowUp]:
        """Each state the owner reports until its decision (or ``timeout_s``)."""
        stream = self._stub.AwaitFollowUp(lpb.AwaitFollowUpRequest(
            peer=peer, followup_id=followup_id, timeout_s=timeout_s, context=lpb.CaseContext(
                purpose=purpose, legal_basis=legal_basis, case_ref=case_ref)),
            timeout=timeout_s + 10, metadata=self._md)
        try:
            for m in stream:
                yield _sent(m.followup)
        except grpc.RpcError as err:
            raise _error(err) from None

    def list_followups(self, state: str = "") -> list[DeskFollowUp]:
        r = self._call("ListDeskFollowUps", lpb.ListDeskFollowUpsRequest(state=state))
        return [_desk(m) for m in r.followups]

    def show_followup(self, followup_id: str) -> DeskFollowUp:
        """One follow-up filed with this node, in full (roles followup_desk, auditor)."""
        r = self._call("ShowDeskFollowUp", lpb.ShowDeskFollowUpRequest(followup_id=followup_id))
        return _desk(r.followup)

    def place_hold(self, case_ref: str, reason: str) -> Any:
        """Keep every record of ``case_ref`` past retention (roles watchlist_manager,
        auditor); the ``PlaceHoldResponse`` (the hold, who placed it, in which role)."""
        return self._call("PlaceHold", lpb.PlaceHoldRequest(case_ref=case_ref, reason=reason))

    def release_hold(self, case_ref: str, reason: str) -> Any:
        """Lift the hold on ``case_ref``; the ``ReleaseHoldResponse``."""
        return self._call("ReleaseHold", lpb.ReleaseHoldRequest(case_ref=case_ref,
                                                                reason=reason))

    def approve_followup(self, followup_id: str,
                         fields: Sequence[str] = ()) -> tuple[DeskFollowUp, bool]:
        """(the follow-up, whether its approval now awaits a second officer)."""
        r = self._call("ApproveFollowUp", lpb.ApproveFollowUpRequest(
            followup_id=followup_id, fields=list(fields)))
        return _desk(r.followup), bool(r.confirmation_pending)

    def deny_followup(self, followup_id: str, reason: str) -> DeskFollowUp:
        r = self._call("DenyFollowUp", lpb.DenyFollowUpRequest(followup_id=followup_id,
                                                                reason=reason))
        return _desk(r.followup)

    def confirm_crossings(self, peer: str, questions: Sequence[Any], *, purpose: str,
                          case_ref: str, legal_basis: str = "bilateral agreement"
                          ) -> tuple[list[Any], int]:
        """(answers, the peer's audit entry): ``questions`` are
        :class:`node.crossings.model.CrossingQuestion`, each answered CONFIRMED or
        NOT_FOUND (``bxnode.v1.CrossingAnswer``) in order."""
        from node.wire import crossings as cwire

        msg = lpb.ConfirmCrossingsRequest(peer=peer, context=lpb.CaseContext(
            purpose=purpose, legal_basis=legal_basis, case_ref=case_ref))
        for q in questions:
            m = msg.questions.add(bcp=q.bcp, section=q.section,
                                  direction=cwire._DIR_TO_PB[q.direction],
                                  window_start_ms=q.window_start_ms,
                                  window_end_ms=q.window_end_ms)
            if isinstance(q.subject, DocumentQuery):
                m.document.CopyFrom(convert.pb.DocumentQuery(
                    number=q.subject.number, issuing_state=q.subject.issuing_state,
                    document_type=q.subject.doc_type))
            else:
                m.person.CopyFrom(convert._person_to_pb(q.subject))
        r = self._call("ConfirmCrossings", msg)
        return list(r.answers), int(r.peer_audit_seq)

    def reconcile_crossings(self, peer: str, *, from_ms: int, to_ms: int,
                            transit_hours: float = 24, batch_size: int = 100,
                            purpose: str = "", case_ref: str = "",
                            legal_basis: str = "") -> Any:
        """A reconciliation run with ``peer`` (node id or country); the
        ``ReconcileCrossingsResponse`` (counts and one line per crossing checked).
        ``transit_hours`` may be fractional (sent as ``transit_ms``, as the direct CLI
        counts it)."""
        whole = transit_hours == int(transit_hours)
        if not whole and int(transit_hours * 3_600_000) == 0:
            raise ValueError("transit_hours is shorter than a millisecond")
        return self._call("ReconcileCrossings", lpb.ReconcileCrossingsRequest(
            peer=peer, from_ms=from_ms, to_ms=to_ms,
            transit_hours=int(transit_hours) if whole else 0,
            transit_ms=0 if whole else int(transit_hours * 3_600_000),
            batch_size=batch_size, context=lpb.CaseContext(
                purpose=purpose, legal_basis=legal_basis, case_ref=case_ref)))

    def add_alert(self, record: dict[str, str], *, source: str,
                  reason: str) -> AlertSummary:
        """Add one alert (role ``watchlist_manager``): ``record`` holds the watchlist's
        import columns (kind, owner_ref, action, expires, number, ... see local.proto
        ``AlertRecord``)."""
        r = self._call("AddAlert", lpb.AddAlertRequest(alert=lpb.AlertRecord(**record),
                                                       source=source, reason=reason))
        return _alert(r.alert)

    def update_alert(self, owner_ref: str, changes: dict[str, str], *,
                     reason: str) -> AlertSummary:
        """Change fields (import columns, or ``source``) of a live or expired alert."""
        r = self._call("UpdateAlert", lpb.UpdateAlertRequest(owner_ref=owner_ref,
                                                             changes=changes, reason=reason))
        return _alert(r.alert)

    def withdraw_alert(self, owner_ref: str, *, reason: str) -> AlertSummary:
        """Withdraw an alert: from the commit on it never hits."""
        r = self._call("WithdrawAlert", lpb.WithdrawAlertRequest(owner_ref=owner_ref,
                                                                 reason=reason))
        return _alert(r.alert)

    def raw(self, method: str, request: Any) -> Any:
        """Any LocalService method with its request message (see local.proto)."""
        return self._call(method, request)


def _error(err: grpc.RpcError) -> LocalCallError:
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    md = trailers(err)
    details = err.details() if hasattr(err, "details") else ""
    return LocalCallError(code.name, str(md.get(_REASON_KEY, "")), str(details or ""),
                          refused_by=str(md.get("bxnode-refused-by", "")),
                          refusal_verified=md.get("bxnode-refusal-verified") == "true")
