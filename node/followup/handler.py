"""``FileFollowUp``, ``GetFollowUp`` and ``WatchFollowUp`` on the owner's side.

Steps 1-7, signing, audit and receipts are :class:`node.responder.Responder`'s.  Filing:
the hit must be one this node answered to this requester (:func:`locate_hit`), the
fields must exist for that kind of record, and policy must allow every field for this
requester and purpose; then the follow-up waits for a person (``bxnode followup``).
Polling and watching answer only the requester who filed it (anyone else: NOT_FOUND).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from node.core.errors import PolicyDenied
from node.core.model import RequestHeader
from node.core.ports import Answer, with_facts
from node.followup.owner import (
    FollowUpDesk,
    Hit,
    NotFound,
    check_field_names,
    locate_hit,
)
from node.followup.policy import FOLLOWUP_QUERY, followup_decision, followup_input
from node.followup.store import FollowUpRow
from node.policy.queries import QueryDecision
from node.responder import AUDIT_LOCK, Responder, Verified
from node.server.errors import abort_reply
from node.server.grpc_server import SignedMethod, signed_reply, tls_fingerprint
from node.wire import convert
from node.wire import crossings as wire
from node.wire.convert import pb
from node.wire.crossings import cpb

__all__ = ["FileFollowUpHandler", "GetFollowUpHandler", "watch_handler"]

FOLLOWUP_SERVICE = cpb.DESCRIPTOR.services_by_name["FollowUpService"].full_name
#: A watch ends after this long even when nothing was decided (the requester may watch again).
MAX_WATCH_S = 600.0
_POLL_S = 0.25


def _status(desk: FollowUpDesk, r: Responder, row: FollowUpRow, v: Verified[Any],
            audit_seq: int) -> bytes:
    decision = None
    if row.decision_env is not None:
        decision = convert.envelope_from_pb(pb.SignedEnvelope.FromString(row.decision_env))
    return wire.encode_followup_status(wire.FollowUpStatus(
        responder=r.settings.node_id, key_id=r.key_id, request_digest=v.digest,
        issued_at_ms=v.now_ms, audit_seq=audit_seq, followup_id=row.id,
        state=row.state, deadline_ms=row.deadline_ms, overdue=row.overdue_ms is not None,
        decision=decision))


class FileFollowUpHandler:
    event = "followup_file"
    request_type = wire.FOLLOWUP_FILE_TYPE

    def __init__(self, responder: Responder, desk: FollowUpDesk) -> None:
        self._r = responder
        self._desk = desk

    def decode(self, payload: bytes) -> wire.FollowUpFile:
        return wire.decode_followup_file(payload)

    def header(self, request: wire.FollowUpFile) -> RequestHeader:
        return request.header

    def describe(self, req: wire.FollowUpFile) -> dict[str, Any]:
        return {"query_kind": "followup", "hit_request_digest": req.hit_request_digest.hex(),
                "hit_item_index": req.hit_item_index, "fields": sorted(req.fields)}

    def prefetch(self, v: Verified[wire.FollowUpFile]) -> Hit:
        """The hit the follow-up is about (a read, on the database thread) and the field
        names checked against its kind of record: what the policy judges."""
        return self._hit(v)

    def predecide(self, v: Verified[wire.FollowUpFile]) -> QueryDecision:
        """The owner's policy on the fields asked for this kind of record (no database)."""
        hit, h = v.fetched, v.header
        assert isinstance(hit, Hit)
        decision = followup_decision(self._r.policy.decide_query(FOLLOWUP_QUERY, followup_input(
            member=v.member, operator=h.operator, purpose=h.purpose, legal_basis=h.legal_basis,
            case_ref=h.case_ref, record_kind=hit.record_kind, fields=v.request.fields,
            responder=self._r.settings.node_id, time_ms=v.now_ms)))
        if not decision.allow:
            raise with_facts(PolicyDenied("the owner's policy refused this follow-up",
                                          reasons=decision.reasons),
                             hit_audit_seq=hit.audit_seq, record_kind=hit.record_kind,
                             decision="deny", reasons=list(decision.reasons))
        return decision

    def _hit(self, v: Verified[wire.FollowUpFile]) -> Hit:
        req = v.request
        hit = locate_hit(self._desk.store.db, requester=v.member.node_id,
                         lookup_digest=req.hit_request_digest, index=req.hit_item_index,
                         reference=req.hit_reference, now_ms=v.now_ms)
        try:
            check_field_names(hit.record_kind, req.fields)
        except Exception as exc:
            raise with_facts(exc, hit_audit_seq=hit.audit_seq,
                             record_kind=hit.record_kind) from None
        return hit

    def answer(self, v: Verified[wire.FollowUpFile], audit_seq: int) -> Answer:
        req, h = v.request, v.header
        decision = v.decided  # the Responder ran prefetch and predecide
        assert isinstance(decision, QueryDecision)
        # Located again inside the unit of work: an alert withdrawn or a receipt erased
        # since the prefetch is refused now, exactly as if nothing had been read before.
        hit = self._hit(v)
        assert hit.record_kind == v.fetched.record_kind  # a receipt never changes its kind
        facts: dict[str, Any] = {"hit_audit_seq": hit.audit_seq, "record_kind": hit.record_kind,
                                 "decision": "allow", "reasons": list(decision.reasons)}
        row = FollowUpRow(
            id=self._desk.new_id(), requester=v.member.node_id, state="pending",
            record_kind=hit.record_kind, hit_reference=hit.reference,
            hit_request_digest=req.hit_request_digest, hit_item_index=req.hit_item_index,
            hit_audit_seq=hit.audit_seq, purpose=h.purpose, legal_basis=h.legal_basis,
            case_ref=h.case_ref, operator=h.operator, requested=tuple(sorted(set(req.fields))),
            allowed=tuple(decision.extra["fields"]), file_digest=v.digest, filed_ms=v.now_ms,
            deadline_ms=v.now_ms + self._desk.deadline_ms)
        self._desk.store.add(row)
        facts.update(row.link, event="followup_filed", deadline_ms=row.deadline_ms)
        return Answer(wire.FOLLOWUP_STATUS_TYPE, _status(self._desk, self._r, row, v, audit_seq),
                      facts=facts, items=1)


class GetFollowUpHandler:
    """Poll (``followup_get``); when it hands over a decision the entry is
    ``followup_fetched``.  The same handler answers the first message of a watch."""

    request_type = wire.FOLLOWUP_GET_TYPE

    def __init__(self, responder: Responder, desk: FollowUpDesk, *,
                 event: str = "followup_get") -> None:
        self._r = responder
        self._desk = desk
        self.event = event

    def decode(self, payload: bytes) -> wire.FollowUpGet:
        return wire.decode_followup_get(payload)

    def header(self, request: wire.FollowUpGet) -> RequestHeader:
        return request.header

    def describe(self, req: wire.FollowUpGet) -> dict[str, Any]:
        return {"query_kind": "followup", "followup_id": req.followup_id}

    def answer(self, v: Verified[wire.FollowUpGet], audit_seq: int) -> Answer:
        row = self._desk.store.get(v.request.followup_id)
        if row is None or row.requester != v.member.node_id:
            raise NotFound("no follow-up with this id was filed by you",
                           reason="unknown_followup")
        if row.overdue_at(v.now_ms) and row.overdue_ms is None:
            self._desk.store.mark_overdue(row.id, v.now_ms)
            self._desk.audit.append({"event": "followup_overdue", **row.link,
                                     "deadline_ms": row.deadline_ms}, time_ms=v.now_ms)
            row = self._desk.store.get(row.id)
            assert row is not None
        facts: dict[str, Any] = {**row.link, "state": row.state}
        if row.state != "pending":
            self._desk.store.mark_fetched(row.id, v.now_ms)
            facts.update(event="followup_fetched", delivered=row.state)
        return Answer(wire.FOLLOWUP_STATUS_TYPE, _status(self._desk, self._r, row, v, audit_seq),
                      facts=facts)


def file_method(responder: Responder, desk: FollowUpDesk) -> SignedMethod:
    return SignedMethod(FOLLOWUP_SERVICE, "FileFollowUp", FileFollowUpHandler(responder, desk),
                        cpb.FileFollowUpRequest, cpb.FileFollowUpResponse)


def get_method(responder: Responder, desk: FollowUpDesk) -> SignedMethod:
    return SignedMethod(FOLLOWUP_SERVICE, "GetFollowUp", GetFollowUpHandler(responder, desk),
                        cpb.GetFollowUpRequest, cpb.GetFollowUpResponse)


async def _direct(fn: Callable[[], Any]) -> Any:
    return fn()


def watch_handler(responder: Responder, desk: FollowUpDesk, *, dev_plaintext: bool = False,
                  run: Callable[[Callable[[], Any]], Awaitable[Any]] = _direct,
                  read: Callable[[Callable[[], Any]], Awaitable[Any]] = _direct,
                  ) -> grpc.GenericRpcHandler:
    """``WatchFollowUp``: the first message is a signed, audited answer exactly like a poll
    (bound to the watch request); then the owner's state is re-read every 250 ms and,
    once decided, one more signed message carries the decision and the stream ends.
    ``run`` performs each store-writing step (inside the server's group commit, if any),
    ``read`` each read (on the database thread)."""
    method = SignedMethod(FOLLOWUP_SERVICE, "WatchFollowUp",
                          GetFollowUpHandler(responder, desk, event="followup_watch"),
                          cpb.WatchFollowUpRequest, cpb.WatchFollowUpResponse)

    async def watch(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        fp = None if dev_plaintext else tls_fingerprint(context)
        reply = await run(lambda: signed_reply(responder, method, raw, fp,
                                               dev_plaintext=dev_plaintext))
        if reply.code is not grpc.StatusCode.OK:
            await abort_reply(context, reply)
        yield reply.body
        first = wire.decode_followup_status(convert.envelope_from_pb(
            cpb.WatchFollowUpResponse.FromString(reply.body).envelope).payload)
        if first.state != "pending":
            return
        request_env = convert.envelope_from_pb(cpb.WatchFollowUpRequest.FromString(raw).envelope)
        loop = asyncio.get_running_loop()
        until = loop.time() + MAX_WATCH_S
        while loop.time() < until:
            await asyncio.sleep(_POLL_S)
            row = await read(functools.partial(desk.store.get, first.followup_id))
            if row is None or row.state == "pending":
                continue
            yield await run(functools.partial(_deliver, responder, desk, row, request_env))
            return

    return grpc.method_handlers_generic_handler(FOLLOWUP_SERVICE, {
        "WatchFollowUp": grpc.unary_stream_rpc_method_handler(watch)})


def _deliver(responder: Responder, desk: FollowUpDesk, row: FollowUpRow,
             request_env: Any) -> bytes:
    """Sign the decided state for a watch, bound to the watch request; audit the fetch."""
    from node.core import envelope as env_mod

    now = responder.clock_ms()
    digest = env_mod.digest(request_env)
    with desk.store.db.transaction():
        decision = convert.envelope_from_pb(pb.SignedEnvelope.FromString(
            row.decision_env or b""))
        responder.uow.lock(AUDIT_LOCK)
        seq = responder.audit.reserve()
        payload = wire.encode_followup_status(wire.FollowUpStatus(
            responder=responder.settings.node_id, key_id=responder.key_id,
            request_digest=digest, issued_at_ms=now, audit_seq=seq, followup_id=row.id,
            state=row.state, deadline_ms=row.deadline_ms, overdue=row.overdue_ms is not None,
            decision=decision))
        env = responder.sign(wire.FOLLOWUP_STATUS_TYPE, payload)
        desk.store.mark_fetched(row.id, now)
        desk.audit.append({"event": "followup_fetched", **row.link, "via": "watch",
                           "delivered": row.state, "request_digest": digest.hex(),
                           "response_digest": env_mod.digest(env).hex()}, time_ms=now)
    return bytes(cpb.WatchFollowUpResponse(
        envelope=convert.envelope_to_pb(env)).SerializeToString())
