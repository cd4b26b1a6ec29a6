"""The requesting side: build and sign a question, check the answer, keep the receipt.

Nothing reaches the user before the answer is verified: signed by the peer it
was sent to, with a key the federation lists for it, binding the digest of
exactly our request, with one result per item in order.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import nacl.signing

from node.audit.log import MerkleAuditLog
from node.client.channel import open_channel
from node.core import envelope as env_mod
from node.core.envelope import Envelope
from node.core.errors import BxError, EnvironmentFault, RemoteError, Unauthenticated
from node.core.members import MemberDirectory, signing_key
from node.core.model import (
    LookupAnswer,
    LookupRequest,
    Query,
    QueryKind,
    Refusal,
    RequestHeader,
)
from node.federation.pki import TlsMaterial
from node.server.grpc_server import REASON_KEY, REFUSAL_KEY
from node.store.sqlcipher import ReceiptRow, Store
from node.wire import convert
from node.wire.convert import pb

__all__ = ["PeerClient", "QueryContext"]

_METHOD = "/bxnode.v1.NodeService/Lookup"


@dataclass(frozen=True, slots=True)
class QueryContext:
    operator: str
    purpose: str
    legal_basis: str
    case_ref: str


class PeerClient:
    def __init__(
        self,
        *,
        node_id: str,
        signing_key: nacl.signing.SigningKey,
        directory: MemberDirectory,
        tls: TlsMaterial | None,
        store: Store | None,
        clock_ms: Callable[[], int],
        timeout_s: float = 10.0,
        dev_plaintext: bool = False,
    ) -> None:
        if tls is None and not dev_plaintext:
            raise ValueError("a client without TLS needs dev_plaintext=True")
        self._node_id = node_id
        self._key = signing_key
        self._key_id = env_mod.key_id_for(bytes(signing_key.verify_key))
        self._directory = directory
        self._tls = tls
        self._store = store
        self._clock_ms = clock_ms
        self._timeout = timeout_s
        self._channels: dict[str, grpc.Channel] = {}
        self.audit_log = None if store is None else MerkleAuditLog(
            store=store, node_id=node_id, signing_key=signing_key)

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    def _channel(self, endpoint: str) -> grpc.Channel:
        ch = self._channels.get(endpoint)
        if ch is None:
            ch = open_channel(endpoint, self._tls)
            self._channels[endpoint] = ch
        return ch

    def header(self, ctx: QueryContext) -> RequestHeader:
        """A fresh request header: our node and key, now, and a new random nonce."""
        return RequestHeader(
            requester=self._node_id, key_id=self._key_id, operator=ctx.operator,
            purpose=ctx.purpose, legal_basis=ctx.legal_basis, case_ref=ctx.case_ref,
            issued_at_ms=self._clock_ms(), nonce=os.urandom(24))

    def sign(self, payload_type: str, payload: bytes) -> Envelope:
        return env_mod.sign(payload_type=payload_type, payload=payload,
                            signer=self._node_id, key=self._key)

    def build(self, ctx: QueryContext, kind: QueryKind, items: Sequence[Query]) -> Envelope:
        request = LookupRequest(header=self.header(ctx), kind=kind, items=tuple(items))
        return self.sign(env_mod.REQUEST_TYPE, convert.encode_request(request))

    def lookup(self, peer: str, ctx: QueryContext, kind: QueryKind,
               items: Sequence[Query]) -> LookupAnswer:
        return self.send(peer, self.build(ctx, kind, items), expected_items=len(items))

    def send(self, peer: str, request: Envelope, *, expected_items: int) -> LookupAnswer:
        """Send a signed lookup envelope and return the verified answer."""
        response = self.call(peer, _METHOD, request, request_cls=pb.LookupRequest,
                             response_cls=pb.LookupResponse,
                             response_type=env_mod.RESPONSE_TYPE, keep=False)
        answer = convert.decode_response(response.payload)
        if not isinstance(answer, LookupAnswer):
            raise Unauthenticated("peer answered with a refusal but status OK",
                                  reason="bad_response")
        if len(answer.results) != expected_items or any(
                r.index != i for i, r in enumerate(answer.results)):
            raise Unauthenticated("peer's answer does not match the request items",
                                  reason="bad_response")
        self.keep(peer, request, response, outcome="answered",
                  extra={"items": len(answer.results), "hits": answer.hits,
                         "peer_audit_seq": answer.audit_seq})
        return answer

    def call(self, peer: str, method: str, request: Envelope, *, request_cls: Any,
             response_cls: Any, response_type: str, keep: bool = True,
             timeout_s: float | None = None) -> Envelope:
        """Send a signed request to ``peer`` and return its verified, bound response envelope.

        ``method`` is the full gRPC path (``/bxnode.v1.NodeService/Lookup``); the request
        and response messages carry ``envelope = 1``.  A refusal raises
        :class:`RemoteError` (with ``refusal_verified``); a transport failure raises
        :class:`EnvironmentFault`.  Receipts and our audit entry are kept when ``keep``.
        """
        member = self._directory.member(peer)
        wire = request_cls(envelope=convert.envelope_to_pb(request)).SerializeToString()
        stub = self._channel(member.endpoint).unary_unary(method)
        digest = env_mod.digest(request)
        try:
            raw = stub(wire, timeout=timeout_s or self._timeout)
        except grpc.RpcError as err:
            error = self._remote_error(peer, err, digest)
            self.keep(peer, request, None, outcome="refused", error=error)
            raise error from None
        try:
            response = convert.envelope_from_pb(response_cls.FromString(raw).envelope)
        except Exception as exc:
            raise Unauthenticated("peer's response is malformed",
                                  reason="bad_response") from exc
        self.verify_response(peer, response, digest, expected_type=response_type)
        if keep:
            self.keep(peer, request, response, outcome="answered")
        return response

    def verify_response(self, peer: str, response: Envelope, digest: bytes, *,
                        expected_type: str) -> pb.ResponseHead:
        """Signed by ``peer`` with a listed key, over PAE, naming ``peer``, bound to ``digest``."""
        member = self._directory.member(peer)
        if response.signer != peer:
            raise Unauthenticated("response is signed by another node", reason="bad_response")
        public = signing_key(member, response.key_id, self._clock_ms())
        env_mod.verify(response, public, expected_type=expected_type)
        head = convert.decode_response_head(response.payload)
        if head.responder != peer or head.key_id != response.key_id:
            raise Unauthenticated("response header names another node", reason="bad_response")
        if head.request_digest != digest:
            raise Unauthenticated("response is not bound to our request",
                                  reason="response_not_bound")
        return head

    def _verify(self, peer: str, response: Envelope, digest: bytes) -> LookupAnswer | Refusal:
        self.verify_response(peer, response, digest, expected_type=env_mod.RESPONSE_TYPE)
        return convert.decode_response(response.payload)

    def _remote_error(self, peer: str, err: grpc.RpcError, digest: bytes) -> BxError:
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return EnvironmentFault(f"peer {peer} did not answer ({code.name.lower()})",
                                    reason="peer_unavailable")
        md = dict(err.trailing_metadata() or ()) if hasattr(err, "trailing_metadata") else {}
        reason = str(md.get(REASON_KEY, "unknown"))
        verified = False
        refusal_raw = md.get(REFUSAL_KEY)
        if isinstance(refusal_raw, bytes):
            try:
                env = convert.envelope_from_pb(pb.SignedEnvelope.FromString(refusal_raw))
                body = self._verify(peer, env, digest)
                verified = isinstance(body, Refusal) and body.reason == reason
            except Exception:  # an unverifiable refusal is reported as unverified, not trusted
                verified = False
        details = err.details() if hasattr(err, "details") else ""
        return RemoteError(f"peer {peer} refused: {details}", status=code.name, reason=reason,
                           refusal_verified=verified)

    def keep(self, peer: str, request: Envelope, response: Envelope | None, *,
             outcome: str, error: BxError | None = None,
             extra: dict[str, object] | None = None) -> None:
        """Keep the receipt (signed request + signed response) and our own audit entry."""
        if self._store is None or self.audit_log is None:
            return
        now = self._clock_ms()
        pack = convert.envelope_to_pb
        header = convert.decode_request_header(request.payload)
        entry: dict[str, object] = {
            "event": "request_sent", "request_type": request.payload_type, "peer": peer,
            "outcome": outcome, "operator": header.operator, "purpose": header.purpose,
            "legal_basis": header.legal_basis, "case_ref": header.case_ref,
            "request_digest": env_mod.digest(request).hex()}
        if request.payload_type == env_mod.REQUEST_TYPE:
            entry["event"] = "lookup_sent"
        if response is not None:
            entry["response_digest"] = hashlib.sha256(env_mod.pae(
                response.payload_type, response.payload)).hexdigest()
        if error is not None:
            entry.update(status=error.status, reason=error.reason)
        entry.update(extra or {})
        with self._store.transaction():
            if response is not None:
                self._store.put_receipt(ReceiptRow(
                    "sent", peer, env_mod.digest(request), pack(request).SerializeToString(),
                    pack(response).SerializeToString(), now))
            self.audit_log.append(entry, time_ms=now)
