"""The asking side of ``ConfirmCrossing``: sign, verify the answer, keep the receipt."""

from __future__ import annotations

from collections.abc import Sequence

from node.client.peer import PeerClient, QueryContext
from node.core.envelope import Envelope
from node.core.errors import Unauthenticated
from node.crossings.model import CrossingQuestion, CrossingRequest, CrossingResponse
from node.wire import crossings as wire
from node.wire.crossings import cpb

__all__ = ["CONFIRM_METHOD", "confirm_crossings"]

CONFIRM_METHOD = "/bxnode.v1.CrossingService/ConfirmCrossing"


def confirm_crossings(client: PeerClient, peer: str, ctx: QueryContext,
                      questions: Sequence[CrossingQuestion]) -> CrossingResponse:
    """Ask ``peer``; return its answer only once verified: signed by ``peer``, bound to this
    request, one answer per question in order.  A refusal raises RemoteError."""
    def signed() -> Envelope:  # a fresh header (nonce, issued_at) each time: failover renews
        request = CrossingRequest(header=client.header(ctx), questions=tuple(questions))
        return client.sign(wire.CROSSING_REQUEST_TYPE, wire.encode_crossing_request(request))

    ex = client.exchange(peer, CONFIRM_METHOD, signed(), request_cls=cpb.ConfirmCrossingRequest,
                         response_cls=cpb.ConfirmCrossingResponse,
                         response_type=wire.CROSSING_RESPONSE_TYPE, renew=signed)
    answer = wire.decode_crossing_response(ex.response.payload)
    if len(answer.answers) != len(questions) or any(
            a.index != i for i, a in enumerate(answer.answers)):
        raise Unauthenticated("peer's answer does not match the questions",
                              reason="bad_response")
    client.keep(peer, ex.request, ex.response, outcome="answered", address=ex.address, extra={
        "event": "crossing_sent", "items": len(questions), "confirmed": answer.confirmed,
        "peer_audit_seq": answer.audit_seq})
    return answer
