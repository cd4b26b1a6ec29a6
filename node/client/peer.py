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

import grpc
import nacl.signing

from node.audit.chain import HashChainLog
from node.core import envelope as env_mod
from node.core import limits
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

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    def _channel(self, endpoint: str) -> grpc.Channel:
        ch = self._channels.get(endpoint)
        if ch is None:
            opts = [("grpc.max_receive_message_length", limits.MAX_REQUEST_BYTES),
                    ("grpc.max_send_message_length", limits.MAX_REQUEST_BYTES)]
            if self._tls is None:
                ch = grpc.insecure_channel(endpoint, options=opts)
            else:
                creds = grpc.ssl_channel_credentials(
                    root_certificates=self._tls.ca, private_key=self._tls.key,
                    certificate_chain=self._tls.cert)
                ch = grpc.secure_channel(endpoint, creds, options=opts)
            self._channels[endpoint] = ch
        return ch

    def build(self, ctx: QueryContext, kind: QueryKind, items: Sequence[Query]) -> Envelope:
        header = RequestHeader(
            requester=self._node_id, key_id=self._key_id, operator=ctx.operator,
            purpose=ctx.purpose, legal_basis=ctx.legal_basis, case_ref=ctx.case_ref,
            issued_at_ms=self._clock_ms(), nonce=os.urandom(24))
        request = LookupRequest(header=header, kind=kind, items=tuple(items))
        return env_mod.sign(payload_type=env_mod.REQUEST_TYPE,
                            payload=convert.encode_request(request),
                            signer=self._node_id, key=self._key)

    def lookup(self, peer: str, ctx: QueryContext, kind: QueryKind,
               items: Sequence[Query]) -> LookupAnswer:
        return self.send(peer, self.build(ctx, kind, items), expected_items=len(items))

    def send(self, peer: str, request: Envelope, *, expected_items: int) -> LookupAnswer:
        """Send a signed request envelope and return the verified answer."""
        member = self._directory.member(peer)
        wire = pb.LookupRequest(envelope=convert.envelope_to_pb(request)).SerializeToString()
        call = self._channel(member.endpoint).unary_unary(_METHOD)
        digest = env_mod.digest(request)
        try:
            raw = call(wire, timeout=self._timeout)
        except grpc.RpcError as err:
            error = self._remote_error(peer, err, digest)
            self._keep(peer, request, None, None, outcome="refused", error=error)
            raise error from None
        try:
            response = convert.envelope_from_pb(pb.LookupResponse.FromString(raw).envelope)
        except Exception as exc:
            raise Unauthenticated("peer's response is malformed",
                                  reason="bad_response") from exc
        answer = self._verify(peer, response, digest)
        if not isinstance(answer, LookupAnswer):
            raise Unauthenticated("peer answered with a refusal but status OK",
                                  reason="bad_response")
        if len(answer.results) != expected_items or any(
                r.index != i for i, r in enumerate(answer.results)):
            raise Unauthenticated("peer's answer does not match the request items",
                                  reason="bad_response")
        self._keep(peer, request, response, answer, outcome="answered")
        return answer

    def _verify(self, peer: str, response: Envelope, digest: bytes) -> LookupAnswer | Refusal:
        member = self._directory.member(peer)
        if response.signer != peer:
            raise Unauthenticated("response is signed by another node", reason="bad_response")
        public = signing_key(member, response.key_id, self._clock_ms())
        env_mod.verify(response, public, expected_type=env_mod.RESPONSE_TYPE)
        body = convert.decode_response(response.payload)
        if body.responder != peer or body.key_id != response.key_id:
            raise Unauthenticated("response header names another node", reason="bad_response")
        if body.request_digest != digest:
            raise Unauthenticated("response is not bound to our request",
                                  reason="response_not_bound")
        return body

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

    def _keep(self, peer: str, request: Envelope, response: Envelope | None,
              answer: LookupAnswer | None, *, outcome: str, error: BxError | None = None) -> None:
        """Keep the receipt (signed request + signed response) and our own audit entry."""
        if self._store is None:
            return
        now = self._clock_ms()
        pack = convert.envelope_to_pb
        header = convert.decode_request(request.payload,
                                        max_items=limits.MAX_BATCH_ITEMS_HARD).header
        entry: dict[str, object] = {
            "event": "lookup_sent", "peer": peer, "outcome": outcome,
            "operator": header.operator, "purpose": header.purpose,
            "legal_basis": header.legal_basis, "case_ref": header.case_ref,
            "request_digest": env_mod.digest(request).hex()}
        if response is not None and answer is not None:
            entry.update(response_digest=hashlib.sha256(env_mod.pae(
                response.payload_type, response.payload)).hexdigest(),
                items=len(answer.results), hits=answer.hits, peer_audit_seq=answer.audit_seq)
        if error is not None:
            entry.update(status=error.status, reason=error.reason)
        with self._store.transaction():
            if response is not None:
                self._store.put_receipt(ReceiptRow(
                    "sent", peer, env_mod.digest(request), pack(request).SerializeToString(),
                    pack(response).SerializeToString(), now))
            HashChainLog(store=self._store).append(entry, time_ms=now)
