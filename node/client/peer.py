"""The requesting side: build and sign a question, check the answer, keep the receipt.

Nothing reaches the user before the answer is verified: signed by the peer it
was sent to, with a key the federation lists for it, binding the digest of
exactly our request, with one result per item in order.

A peer may list several addresses; every call goes through
:func:`node.client.failover.try_in_order` (the retry rules are in that module).  Each
attempt leaves our own audit entry (``outcome`` ``unanswered`` with the address, status and
whether it may have been delivered; ``refused``; or ``answered`` with the receipt), and the
address that last answered a peer is tried first next time (for this client's lifetime).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from node.audit.log import MerkleAuditLog
from node.client.channel import open_channel
from node.client.failover import (
    Attempt,
    Delivery,
    Refused,
    prefer,
    status_of,
    try_in_order,
)
from node.core import envelope as env_mod
from node.core.envelope import Envelope
from node.core.errors import BxError, EnvironmentFault, RemoteError, Unauthenticated
from node.core.members import MemberDirectory, signing_key
from node.core.metrics import NO_METRICS, Metrics
from node.core.model import (
    LookupAnswer,
    LookupRequest,
    Query,
    QueryKind,
    Refusal,
    RequestHeader,
)
from node.core.ports import Receipt
from node.core.signer import SigningKeyLike, as_signer
from node.federation.pki import TlsMaterial
from node.server.grpc_server import REASON_KEY, REFUSAL_KEY
from node.store.db import Database as Store
from node.store.exchange import SqlReceiptStore
from node.wire import convert
from node.wire.convert import pb
from node.wire.trailers import trailers

__all__ = ["Exchange", "LookupOutcome", "PeerClient", "QueryContext", "Stream"]

_METHOD = "/bxnode.v1.NodeService/Lookup"
log = structlog.get_logger("bxnode.client")


@dataclass(frozen=True, slots=True)
class QueryContext:
    operator: str
    purpose: str
    legal_basis: str
    case_ref: str


@dataclass(frozen=True, slots=True)
class Exchange:
    """A verified exchange: the request ``address`` answered (after a deadline it is a fresh
    one, not the request first built), the peer's signed response, and every attempt."""

    request: Envelope
    response: Envelope
    address: str
    attempts: tuple[Attempt, ...]


@dataclass(frozen=True, slots=True)
class LookupOutcome:
    answer: LookupAnswer
    exchange: Exchange


@dataclass(frozen=True, slots=True)
class Stream:
    """A server stream opened at ``address`` for ``request``: its first message (None when
    the stream ended without one) and the rest.  Later messages are not failed over."""

    request: Envelope
    address: str
    attempts: tuple[Attempt, ...]
    first: bytes | None
    rest: Iterator[bytes]


class _NoFirstMessage(grpc.RpcError):
    """Our own deadline on a stream's first message, reported like the transport's."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self) -> str:
        return "no first message within this address's share of the deadline"

    def trailing_metadata(self) -> tuple[()]:
        return ()


def _reason_of(err: grpc.RpcError) -> str:
    """The peer's reason code (``bxnode-reason``) on an error, "" when it sent none."""
    md = trailers(err)
    return str(md.get(REASON_KEY, ""))


class PeerClient:
    def __init__(
        self,
        *,
        node_id: str,
        signing_key: SigningKeyLike,
        directory: MemberDirectory,
        tls: TlsMaterial | None,
        store: Store | None,
        clock_ms: Callable[[], int],
        timeout_s: float = 10.0,
        attempt_timeout_s: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        dev_plaintext: bool = False,
    ) -> None:
        """``timeout_s`` bounds all attempts of one call together; each address gets an
        equal share of what is left unless ``attempt_timeout_s`` caps it."""
        if tls is None and not dev_plaintext:
            raise ValueError("a client without TLS needs dev_plaintext=True")
        self._node_id = node_id
        self._key = as_signer(signing_key)
        self._key_id = env_mod.key_id_for(self._key.public_key)
        self._directory = directory
        self._tls = tls
        self._store = store
        self._clock_ms = clock_ms
        self._timeout = timeout_s
        self._attempt_timeout = attempt_timeout_s
        self._monotonic = monotonic
        self._channels: dict[str, grpc.Channel] = {}
        self._last_good: dict[str, str] = {}
        self._lock = threading.Lock()
        #: Each peer's last verified answer and unanswered attempts (``bxnode serve``).
        self.metrics: Metrics = NO_METRICS
        self.audit_log = None if store is None else MerkleAuditLog(
            store=store, node_id=node_id, signing_key=self._key)

    def close(self) -> None:
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()

    def _channel(self, address: str) -> grpc.Channel:
        with self._lock:
            ch = self._channels.get(address)
            if ch is None:
                ch = open_channel(address, self._tls)
                self._channels[address] = ch
            return ch

    def addresses(self, peer: str) -> tuple[str, ...]:
        """``peer``'s addresses in the order they will be tried: the one that last answered
        first, then the others in the order the directory lists them (the primary first)."""
        member = self._directory.member(peer)
        with self._lock:
            return prefer(member.endpoint, self._last_good.get(peer))

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
        return self.lookup_outcome(peer, ctx, kind, items).answer

    def lookup_outcome(self, peer: str, ctx: QueryContext, kind: QueryKind,
                       items: Sequence[Query]) -> LookupOutcome:
        """Ask ``peer``; after a deadline the next address gets a freshly signed request."""
        return self.send_outcome(peer, self.build(ctx, kind, items), expected_items=len(items),
                                 renew=lambda: self.build(ctx, kind, items))

    def send(self, peer: str, request: Envelope, *, expected_items: int,
             renew: Callable[[], Envelope] | None = None) -> LookupAnswer:
        """Send a signed lookup envelope and return the verified answer."""
        return self.send_outcome(peer, request, expected_items=expected_items,
                                 renew=renew).answer

    def send_outcome(self, peer: str, request: Envelope, *, expected_items: int,
                     renew: Callable[[], Envelope] | None = None) -> LookupOutcome:
        """:meth:`send`, also saying which address answered which request.  Without
        ``renew``, an attempt that may have been delivered ends the call."""
        ex = self.exchange(peer, _METHOD, request, request_cls=pb.LookupRequest,
                           response_cls=pb.LookupResponse,
                           response_type=env_mod.RESPONSE_TYPE, renew=renew)
        answer = convert.decode_response(ex.response.payload)
        if not isinstance(answer, LookupAnswer):
            raise Unauthenticated("peer answered with a refusal but status OK",
                                  reason="bad_response")
        if len(answer.results) != expected_items or any(
                r.index != i for i, r in enumerate(answer.results)):
            raise Unauthenticated("peer's answer does not match the request items",
                                  reason="bad_response")
        self.keep(peer, ex.request, ex.response, outcome="answered", address=ex.address,
                  extra={"items": len(answer.results), "hits": answer.hits,
                         "peer_audit_seq": answer.audit_seq})
        return LookupOutcome(answer=answer, exchange=ex)

    def call(self, peer: str, method: str, request: Envelope, *, request_cls: Any,
             response_cls: Any, response_type: str, keep: bool = True,
             timeout_s: float | None = None) -> Envelope:
        """Send a signed request to ``peer`` and return its verified, bound response envelope.

        ``method`` is the full gRPC path (``/bxnode.v1.NodeService/Lookup``); the request
        and response messages carry ``envelope = 1``.  A refusal raises
        :class:`RemoteError` (with ``refusal_verified``); no address answering raises
        :class:`~node.client.failover.PeerUnreachable` (an :class:`EnvironmentFault`).
        Receipts and our audit entry are kept when ``keep``.  ``request`` is never renewed
        here: only a connect failure moves it to the next address (see :meth:`exchange`).
        """
        ex = self.exchange(peer, method, request, request_cls=request_cls,
                           response_cls=response_cls, response_type=response_type,
                           timeout_s=timeout_s)
        if keep:
            self.keep(peer, ex.request, ex.response, outcome="answered", address=ex.address)
        return ex.response

    def exchange(self, peer: str, method: str, request: Envelope, *, request_cls: Any,
                 response_cls: Any, response_type: str,
                 renew: Callable[[], Envelope] | None = None,
                 timeout_s: float | None = None) -> Exchange:
        """:meth:`call` across ``peer``'s addresses, returning what was actually sent where.

        ``renew`` makes a fresh signed request (new nonce and ``issued_at``) for the next
        address after one that may have received the request; without it that ends the
        call.  The caller keeps the receipt of the answer (``keep``); failed attempts and a
        refusal are recorded here.
        """
        def send(address: str, env: Envelope, timeout: float) -> bytes:
            wire = request_cls(envelope=convert.envelope_to_pb(env)).SerializeToString()
            raw: bytes = self._channel(address).unary_unary(method)(wire, timeout=timeout)
            return raw

        out = try_in_order(self.addresses(peer), request, send, peer=peer,
                           deadline_s=timeout_s or self._timeout, renew=renew,
                           attempt_timeout_s=self._attempt_timeout, monotonic=self._monotonic,
                           on_failure=lambda address, env, err, delivery: self._keep_failed(
                               peer, address, env, err, delivery), reason_of=_reason_of)
        if isinstance(out, Refused):
            error = self._remote_error(peer, out.error, env_mod.digest(out.request))
            self.keep(peer, out.request, None, outcome="refused", error=error,
                      address=out.address)
            raise error from None
        try:
            response = convert.envelope_from_pb(response_cls.FromString(out.value).envelope)
        except Exception as exc:
            raise Unauthenticated("peer's response is malformed",
                                  reason="bad_response") from exc
        self.verify_response(peer, response, env_mod.digest(out.request),
                             expected_type=response_type)
        with self._lock:
            self._last_good[peer] = out.address
        self.metrics.peer_answered(peer=peer, at_s=self._clock_ms() / 1000)
        return Exchange(request=out.request, response=response, address=out.address,
                        attempts=out.attempts)

    def open_stream(self, peer: str, method: str, request: Envelope, *, request_cls: Any,
                    renew: Callable[[], Envelope] | None = None,
                    timeout_s: float) -> Stream:
        """A server-streaming call across ``peer``'s addresses, failed over until its first
        message arrives (each address's wait for it is bounded by its share of
        ``timeout_s``); ``timeout_s`` bounds the whole stream.  A refusal before the first
        message raises :class:`RemoteError`, recorded like :meth:`exchange`'s."""
        end = self._monotonic() + timeout_s

        def send(address: str, env: Envelope,
                 timeout: float) -> tuple[bytes | None, Iterator[bytes]]:
            wire = request_cls(envelope=convert.envelope_to_pb(env)).SerializeToString()
            call: grpc.UnaryStreamMultiCallable[bytes, bytes] = self._channel(
                address).unary_stream(method)
            stream = call(wire, timeout=max(end - self._monotonic(), 0.001))
            gave_up = threading.Event()

            def give_up() -> None:
                gave_up.set()
                stream.cancel()

            timer = threading.Timer(timeout, give_up)
            timer.start()
            try:
                first: bytes | None = next(stream, None)
            except grpc.RpcError as err:
                if gave_up.is_set() and status_of(err)[0] == "CANCELLED":
                    raise _NoFirstMessage() from None
                raise
            finally:
                timer.cancel()
            return first, stream

        out = try_in_order(self.addresses(peer), request, send, peer=peer,
                           deadline_s=timeout_s, renew=renew,
                           attempt_timeout_s=self._attempt_timeout, monotonic=self._monotonic,
                           on_failure=lambda address, env, err, delivery: self._keep_failed(
                               peer, address, env, err, delivery), reason_of=_reason_of)
        if isinstance(out, Refused):
            error = self._remote_error(peer, out.error, env_mod.digest(out.request))
            self.keep(peer, out.request, None, outcome="refused", error=error,
                      address=out.address)
            raise error from None
        with self._lock:
            self._last_good[peer] = out.address
        first, rest = out.value
        return Stream(request=out.request, address=out.address, attempts=out.attempts,
                      first=first, rest=rest)

    def _keep_failed(self, peer: str, address: str, request: Envelope, err: grpc.RpcError,
                     delivery: Delivery) -> None:
        """Our audit entry of an attempt nobody answered (no receipt: no response)."""
        status, _ = status_of(err)
        self.metrics.peer_failed(peer=peer, status=status)
        reason = _reason_of(err) or "peer_unavailable"
        log.warning("peer_address_failed", peer=peer, address=address, status=status,
                    reason=reason, delivery=delivery.value)
        self.keep(peer, request, None, outcome="unanswered", address=address,
                  extra={"status": status, "reason": reason, "delivery": delivery.value})

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
        md = trailers(err)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and (
                REASON_KEY not in md):  # the transport's, not the peer's "retry later"
            return EnvironmentFault(f"peer {peer} did not answer ({code.name.lower()})",
                                    reason="peer_unavailable")
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
             outcome: str, error: BxError | None = None, address: str | None = None,
             extra: dict[str, object] | None = None) -> None:
        """Keep the receipt (signed request + signed response) and our own audit entry;
        ``address`` is where the request went."""
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
        if address is not None:
            entry["address"] = address
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
                SqlReceiptStore(self._store).put(Receipt(
                    "sent", peer, env_mod.digest(request), pack(request).SerializeToString(),
                    pack(response).SerializeToString(), now))
            self.audit_log.append(entry, time_ms=now)
