"""The requester's side of a follow-up: file it, poll it or watch it, verify the answer.

The owner's decision is a signed ``FollowUpDecisionPayload`` bound to *our* FileFollowUp
request (its digest, kept in ``followups_sent``); each poll / watch answer is a signed
status bound to that poll / watch request.  Both bindings are checked before anything is
returned.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import grpc

from node.client.peer import PeerClient, QueryContext
from node.core import envelope as env_mod
from node.core.envelope import Envelope
from node.core.errors import Unauthenticated
from node.core.model import LookupAnswer, Outcome
from node.followup.owner import NotFound
from node.followup.store import FollowUpStore, SentRow
from node.store.db import Database as Store
from node.store.exchange import SqlReceiptStore
from node.wire import convert
from node.wire import crossings as wire
from node.wire.convert import pb
from node.wire.crossings import cpb

__all__ = ["Answer", "file_followup", "find_hit", "get_followup", "watch_followup"]

FILE_METHOD = "/bxnode.v1.FollowUpService/FileFollowUp"
GET_METHOD = "/bxnode.v1.FollowUpService/GetFollowUp"
WATCH_METHOD = "/bxnode.v1.FollowUpService/WatchFollowUp"


@dataclass(frozen=True, slots=True)
class Answer:
    status: wire.FollowUpStatus
    decision: wire.FollowUpDecision | None


def find_hit(store: Store, peer: str, reference: str) -> tuple[bytes, int]:
    """The latest lookup we sent ``peer`` that it answered HIT with ``reference``."""
    for r in reversed(SqlReceiptStore(store).all(direction="sent")):
        if r.peer != peer:
            continue
        response = convert.envelope_from_pb(pb.SignedEnvelope.FromString(r.response_env))
        if response.payload_type != env_mod.RESPONSE_TYPE:
            continue
        answer = convert.decode_response(response.payload)
        if not isinstance(answer, LookupAnswer):
            continue
        for res in answer.results:
            if res.outcome is Outcome.HIT and res.reference == reference:
                return bytes(r.request_digest), res.index
    raise NotFound(f"no HIT with reference {reference} from {peer} in our receipts",
                   reason="unknown_hit_reference")


def _verify_decision(client: PeerClient, peer: str, env: Envelope,
                     sent: SentRow) -> wire.FollowUpDecision:
    client.verify_response(peer, env, sent.file_digest,
                           expected_type=wire.FOLLOWUP_DECISION_TYPE)
    decision = wire.decode_followup_decision(env.payload)
    if decision.followup_id != sent.id:
        raise Unauthenticated("the decision is about another follow-up", reason="bad_response")
    return decision


def _answer(client: PeerClient, store: FollowUpStore, peer: str, status: wire.FollowUpStatus,
            sent: SentRow) -> Answer:
    if status.followup_id != sent.id:
        raise Unauthenticated("the answer is about another follow-up", reason="bad_response")
    decision = None
    if status.decision is not None:
        decision = _verify_decision(client, peer, status.decision, sent)
        if decision.state != status.state:
            raise Unauthenticated("status and decision disagree", reason="bad_response")
    with store.db.transaction():
        store.update_sent(peer, sent.id, state=status.state, decision_env=None if
                          status.decision is None else bytes(convert.envelope_to_pb(
                              status.decision).SerializeToString()))
    return Answer(status=status, decision=decision)


def file_followup(client: PeerClient, store: FollowUpStore, peer: str, ctx: QueryContext, *,
                  hit_request_digest: bytes, hit_item_index: int, hit_reference: str,
                  fields: Sequence[str]) -> wire.FollowUpStatus:
    req = wire.FollowUpFile(header=client.header(ctx), hit_request_digest=hit_request_digest,
                            hit_item_index=hit_item_index, hit_reference=hit_reference,
                            fields=tuple(fields))
    env = client.sign(wire.FOLLOWUP_FILE_TYPE, wire.encode_followup_file(req))
    # Not renewed: a FileFollowUp that may have reached the owner is not filed again at
    # another address (a second signed filing would open a second case for its officers).
    ex = client.exchange(peer, FILE_METHOD, env, request_cls=cpb.FileFollowUpRequest,
                         response_cls=cpb.FileFollowUpResponse,
                         response_type=wire.FOLLOWUP_STATUS_TYPE)
    env, response = ex.request, ex.response
    status = wire.decode_followup_status(response.payload)
    with store.db.transaction():
        store.add_sent(SentRow(
            id=status.followup_id, peer=peer, hit_reference=hit_reference,
            hit_request_digest=hit_request_digest, hit_item_index=hit_item_index,
            fields=tuple(fields), purpose=ctx.purpose, legal_basis=ctx.legal_basis,
            case_ref=ctx.case_ref, file_digest=env_mod.digest(env), filed_ms=status.issued_at_ms,
            state=status.state, deadline_ms=status.deadline_ms))
        client.keep(peer, env, response, outcome="answered", address=ex.address, extra={
            "event": "followup_sent", "followup_id": status.followup_id,
            "hit_request_digest": hit_request_digest.hex(), "hit_item_index": hit_item_index,
            "fields": sorted(fields), "peer_audit_seq": status.audit_seq})
    return status


def _sent(store: FollowUpStore, peer: str, fid: str) -> SentRow:
    sent = store.sent(peer, fid)
    if sent is None:
        raise NotFound(f"we filed no follow-up {fid} with {peer}", reason="unknown_followup")
    return sent


def _get_env(client: PeerClient, ctx: QueryContext, fid: str) -> Envelope:
    return client.sign(wire.FOLLOWUP_GET_TYPE, wire.encode_followup_get(
        wire.FollowUpGet(header=client.header(ctx), followup_id=fid)))


def get_followup(client: PeerClient, store: FollowUpStore, peer: str, ctx: QueryContext,
                 fid: str) -> Answer:
    """Poll once."""
    sent = _sent(store, peer, fid)
    ex = client.exchange(peer, GET_METHOD, _get_env(client, ctx, fid),
                         request_cls=cpb.GetFollowUpRequest, response_cls=cpb.GetFollowUpResponse,
                         response_type=wire.FOLLOWUP_STATUS_TYPE,
                         renew=lambda: _get_env(client, ctx, fid))
    answer = _answer(client, store, peer, wire.decode_followup_status(ex.response.payload), sent)
    client.keep(peer, ex.request, ex.response, outcome="answered", address=ex.address, extra={
        "event": "followup_polled", "followup_id": fid, "state": answer.status.state,
        "peer_audit_seq": answer.status.audit_seq})
    return answer


def watch_followup(client: PeerClient, store: FollowUpStore, peer: str, ctx: QueryContext,
                   fid: str, *, timeout_s: float = 600.0) -> Iterator[Answer]:
    """Stream the follow-up's state until it is decided; each message verified."""
    sent = _sent(store, peer, fid)
    stream = client.open_stream(peer, WATCH_METHOD, _get_env(client, ctx, fid),
                                request_cls=cpb.WatchFollowUpRequest,
                                renew=lambda: _get_env(client, ctx, fid), timeout_s=timeout_s)
    env, address = stream.request, stream.address
    digest = env_mod.digest(env)
    last: Envelope | None = None
    messages = itertools.chain(() if stream.first is None else (stream.first,), stream.rest)
    try:
        for raw in messages:
            response = convert.envelope_from_pb(cpb.WatchFollowUpResponse.FromString(raw).envelope)
            client.verify_response(peer, response, digest,
                                   expected_type=wire.FOLLOWUP_STATUS_TYPE)
            last = response
            answer = _answer(client, store, peer, wire.decode_followup_status(response.payload),
                             sent)
            if answer.decision is not None:
                client.keep(peer, env, response, outcome="answered", address=address, extra={
                    "event": "followup_watched", "followup_id": fid,
                    "state": answer.status.state, "peer_audit_seq": answer.status.audit_seq})
            yield answer
    except grpc.RpcError as err:
        error = client._remote_error(peer, err, digest)
        if last is None:
            client.keep(peer, env, None, outcome="refused", error=error, address=address)
        raise error from None
