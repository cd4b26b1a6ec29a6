"""The gRPC edge: translate bytes to core values and core errors to gRPC statuses.

Methods are registered with raw-bytes handlers so that even a request whose
outer protobuf does not parse reaches the responder and is audited.  Every
refusal carries trailing metadata ``bxnode-reason`` (the machine-readable
reason code), once the requester was verified ``bxnode-refusal-bin`` (a serialized,
signed SignedEnvelope with a Refusal payload) and the standard ``grpc-status-details-bin``
(node/server/errors.py builds them all).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, cast

import grpc
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from node.core import limits
from node.core.envelope import Envelope
from node.core.errors import BxError, InvalidInput
from node.federation.pki import TlsMaterial
from node.logging import error_fields, log_loop_exception
from node.responder import Exchange, Handler, Pending, Responder, log_exchange
from node.server.db_limits import DbTokens, SharedTokensUnavailable
from node.server.errors import (
    REASON_KEY,
    REFUSAL_KEY,
    abort,
    abort_reply,
    abort_reply_sync,
    refusal_metadata,
)
from node.server.fair import DEFAULT_SLOTS, FairGate, Pass
from node.server.group_commit import BatchWriter
from node.server.limits import (
    DEFAULT_RATE_WAIT_MS,
    DEFAULT_STREAMS,
    STRANGER,
    BucketTable,
    OverLimitTally,
    PeerLimiter,
    PeerLimits,
    PolicyLimits,
)
from node.server.reflection import enable_reflection
from node.store.db import Database, ping
from node.store.meta import delete_meta
from node.wire import convert
from node.wire._gen import bxnode_pb2_grpc as pb_grpc
from node.wire.convert import pb

__all__ = [
    "REASON_KEY",
    "REFUSAL_KEY",
    "SERVICE_NAME",
    "NodeServer",
    "Reply",
    "SignedMethod",
    "SyncNodeServicer",
    "lookup_method",
    "serve_forever",
    "signed_reply",
]

log = structlog.get_logger("bxnode.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["NodeService"].full_name

SERVER_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.max_receive_message_length", limits.MAX_REQUEST_BYTES),
    ("grpc.max_send_message_length", limits.MAX_REQUEST_BYTES),
    ("grpc.so_reuseport", 0),
)


#: How often the over-limit refusals counted so far are appended (one entry per peer): the
#: bound on how long a refusal is sent before its audit entry is durable.
REFUSAL_FLUSH_S = 1.0


def tls_fingerprint(context: grpc.ServicerContext | grpc.aio.ServicerContext[Any, Any],
                    ) -> str | None:
    """SHA-256 of the DER client certificate the TLS handshake verified, or None."""
    # grpc gives a list of PEM certificates (the sync stubs say bytes)
    certs = cast("list[bytes] | None", context.auth_context().get("x509_pem_cert"))
    if not certs:
        return None
    return _fingerprint(bytes(certs[0]))


@functools.lru_cache(maxsize=1024)
def _fingerprint(pem: bytes) -> str:  # parsed once per distinct certificate, not per call
    cert = x509.load_pem_x509_certificate(pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass(frozen=True, slots=True)
class Reply:
    """What to send back, independent of the gRPC flavour (aio or thread pool)."""

    body: bytes = b""
    code: grpc.StatusCode = grpc.StatusCode.OK
    details: str = ""
    metadata: tuple[tuple[str, str | bytes], ...] = ()


_LIMITED = "rate_limited: this peer asks faster, or more at once, than its agreement allows"
#: The over-limit refusal: the same bytes for every call, so its trailers are built once.
_RATE_LIMITED = Reply(code=grpc.StatusCode.RESOURCE_EXHAUSTED, details=_LIMITED,
                      metadata=refusal_metadata(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                                "rate_limited", _LIMITED))


@dataclass(frozen=True, slots=True)
class SignedMethod:
    """A unary RPC whose request and response messages each carry ``envelope = 1``."""

    service: str
    method: str
    handler: Handler[Any]
    request_cls: Any
    response_cls: Any

    def __post_init__(self) -> None:
        for cls in (self.request_cls, self.response_cls):  # envelope_message relies on it
            field = cls.DESCRIPTOR.fields_by_name.get("envelope")
            if field is None or field.number != 1 or field.message_type is None:
                raise TypeError(f"{cls.__name__} does not carry a message envelope = 1")


def lookup_method(handler: Handler[Any]) -> SignedMethod:
    """``NodeService.Lookup``: registered like every other capability's method."""
    return SignedMethod(SERVICE_NAME, "Lookup", handler, pb.LookupRequest, pb.LookupResponse)


def signed_reply(responder: Responder, method: SignedMethod, raw: bytes,
                 fingerprint: str | None, *, dev_plaintext: bool) -> Reply:
    """Decode, answer and encode one signed call: the whole servicer, minus the transport."""
    first = prepare_reply(responder, method, raw, fingerprint, dev_plaintext=dev_plaintext)
    if isinstance(first, Reply):
        return first
    first = responder.predecide(responder.prefetch(first))
    return reply_of(logged(first, complete(responder, first)))


def prepare_reply(responder: Responder, method: SignedMethod, raw: bytes,
                  fingerprint: str | None, *, dev_plaintext: bool) -> Reply | Pending[Any]:
    """The part that needs no database: decode and authenticate (steps 1-6)."""
    request_id = os.urandom(8).hex()  # 16 random hex digits
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        if not dev_plaintext and fingerprint is None:  # require_client_auth makes this moot
            code, details = grpc.StatusCode.UNAUTHENTICATED, "no client certificate"
            return Reply(code=code, details=details, metadata=refusal_metadata(
                code, "no_client_certificate", details))
        item: Envelope | BxError
        try:
            msg = method.request_cls.FromString(raw)
            if not msg.HasField("envelope"):
                raise InvalidInput("request has no envelope", reason="bad_envelope")
            item = convert.envelope_from_pb(msg.envelope)
        except DecodeError:
            item = InvalidInput(f"request is not a valid {method.request_cls.__name__}",
                                reason="malformed_request")
        except BxError as exc:
            item = exc
        return responder.prepare(method.handler, item, tls_fingerprint=fingerprint,
                                 request_id=request_id)


def complete(responder: Responder, pending: Pending[Any]) -> Exchange:
    """Steps 7-11 (the database part), its log lines carrying the request id.  The
    request's own info line is :func:`logged`'s, once it is durable."""
    with structlog.contextvars.bound_contextvars(request_id=pending.request_id):
        return responder.complete(pending)


def logged(pending: Pending[Any], ex: Exchange) -> Exchange:
    """``ex``, its info line logged (node.responder.log_exchange) with the request id."""
    with structlog.contextvars.bound_contextvars(request_id=pending.request_id):
        log_exchange(pending, ex)
    return ex


def reply_of(ex: Exchange) -> Reply:
    """The reply to send for a completed exchange (no database: built on the event loop,
    so the database thread is free for the next request the moment its work is done)."""
    if ex.error is not None:
        code = grpc.StatusCode[ex.error.status]
        details = f"{ex.error.reason}: {ex.error.message}"
        signed = None if ex.refusal is None else ex.sent
        return Reply(code=code, details=details, metadata=refusal_metadata(
            code, ex.error.reason, details, signed_refusal=signed))
    assert ex.response is not None and ex.sent
    return Reply(body=envelope_message(ex.sent))


def envelope_message(envelope: bytes) -> bytes:
    """The response message of a :class:`SignedMethod` (only ``envelope = 1`` set) from
    the serialized envelope, as protobuf encodes it: the key of field 1, length-delimited
    (0x0a), the length as a base-128 varint, the bytes.  (The envelope is already
    serialized for the receipt: building and encoding the message again would do it twice.)
    """
    n, head = len(envelope), bytearray(b"\x0a")
    while n > 0x7F:
        head.append(0x80 | (n & 0x7F))
        n >>= 7
    head.append(n)
    return bytes(head) + envelope


class SyncNodeServicer(pb_grpc.NodeServiceServicer):  # type: ignore[misc]
    """The same servicer for a thread-pool ``grpc.server`` (and pytest-grpc).

    The responder's store is one connection: calls are serialised with a lock.
    """

    def __init__(self, *, responder: Responder, lookup: Handler[Any],
                 dev_plaintext: bool = False) -> None:
        self._responder = responder
        self._method = lookup_method(lookup)
        self._dev_plaintext = dev_plaintext
        self._lock = threading.Lock()

    def Lookup(self, request: pb.LookupRequest, context: grpc.ServicerContext) -> Any:
        fp = None if self._dev_plaintext else tls_fingerprint(context)
        with self._lock:
            reply = signed_reply(self._responder, self._method, request.SerializeToString(), fp,
                                 dev_plaintext=self._dev_plaintext)
        if reply.code is not grpc.StatusCode.OK:
            abort_reply_sync(context, reply)
        return pb.LookupResponse.FromString(reply.body)


class NodeServer:
    """One node's gRPC server (grpc.aio) with health checking and reflection."""

    def __init__(self, *, responder: Responder, tls: TlsMaterial | None,
                 dev_plaintext: bool = False, signed_methods: Sequence[SignedMethod] = (),
                 extra_handlers: Sequence[grpc.GenericRpcHandler] = (),
                 extra_service_names: Sequence[str] = (),
                 writer: BatchWriter | None = None,
                 background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
                 processing_slots: int = DEFAULT_SLOTS,
                 max_concurrent_streams: int = DEFAULT_STREAMS,
                 rate_wait_ms: int = DEFAULT_RATE_WAIT_MS,
                 buckets: BucketTable | None = None) -> None:
        if tls is None and not dev_plaintext:
            raise ValueError("a server without TLS needs dev_plaintext=True")
        self._responder = responder
        self.writer = writer  # group commit: responses wait for their batch to be durable
        self._background = tuple(background)
        self._tasks: list[asyncio.Task[None]] = []
        self._methods = tuple(signed_methods)
        self._extra_handlers = tuple(extra_handlers)
        self._extra_names = tuple(extra_service_names)
        self._tls = tls
        self._dev_plaintext = dev_plaintext
        self.server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        self._conditions: dict[str, bool] = {}
        #: Health answers for the whole server ("") and for each service it serves, alike.
        self.health_names = ("", *sorted({m.service for m in self._methods}
                                         | set(self._extra_names)))
        #: Health servicers of this node's other listeners (the LocalService's), each with
        #: the names it answers for: SERVING and NOT_SERVING with this one.
        self._health_mirrors: list[tuple[health.aio.HealthServicer, tuple[str, ...]]] = []
        #: Share the port with the node's other worker processes (``serve --workers``).
        self.reuse_port = False
        #: gRPC server interceptors (monitoring: node/observability), set before start().
        self.interceptors: tuple[grpc.aio.ServerInterceptor, ...] = ()
        self.db_check_s = 1.0
        self.db_timeout_s = 2.0
        #: How long stop() waits for the background jobs it cancelled.
        self.task_stop_s = 5.0
        self.port = 0
        # Policy evaluation (and any handler's predecide) runs here: a slow policy server
        # holds one of these threads, never the loop or the database thread.
        self._policy_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=16, thread_name_prefix="bxnode-policy")
        self._limits = PolicyLimits(policy=responder.policy,
                                    responder=responder.settings.node_id,
                                    clock_ms=responder.clock_ms)
        #: Per-peer buckets: this process's, or (``buckets``) the table every worker of
        #: ``serve --workers`` shares (node/server/shared_limits.py).
        self.limiter = PeerLimiter(limits_for=self._limits.evaluate, clock=time.monotonic,
                                   table=buckets)
        #: Replicas on PostgreSQL: the tokens every replica shares (set by build_server).
        self.shared_tokens: DbTokens | None = None
        #: A peer's limits being evaluated, shared by its calls meanwhile (_limits_once).
        self._limits_pending: dict[str, asyncio.Future[PeerLimits]] = {}
        #: Over-limit refusals, audited as one aggregated entry per peer and interval.
        self.refusals = OverLimitTally(clock_ms=responder.clock_ms,
                                       policy_digest=lambda: responder.policy.digest)
        self.refusal_flush_s = REFUSAL_FLUSH_S
        #: How long a request over its peer's rate waits for its token (``[server]
        #: rate_wait_ms``): paced, not refused, within it (node/server/limits.py).
        self.rate_wait_s = rate_wait_ms / 1000
        #: Admitted requests in processing at once (``[server] processing_slots``), the
        #: free slots handed to the peer holding fewest (node/server/fair.py).
        self.gate = FairGate(processing_slots)
        #: Calls one connection has open in the node at once (``[server]
        #: max_concurrent_streams``): the rest wait on the client's side, not in gRPC's core.
        self.max_concurrent_streams = max_concurrent_streams
        #: Read the answers of a batch's lookups before its transaction, outside the
        #: writers' lock (Responder.preread): worth it only where another writer takes that
        #: lock meanwhile (``serve --workers``, PostgreSQL replicas; node/server/
        #: assemble.py).  A lone writer gains nothing, and a flooder's burst then delays
        #: another peer's first answers more (benchmarks/README.md, 2026-12-07 evening).
        self.reads_before_lock = False

    @contextlib.asynccontextmanager
    async def edge(self, context: grpc.aio.ServicerContext[Any, Any], raw: bytes, *,
                   event: str) -> AsyncIterator[tuple[str | None, str | None]]:
        """``async with server.edge(context, raw, event=...) as (fp, bucket)``: the call
        admitted for its whole body (:meth:`admit`), its limiter slot (and the replicas'
        shared slot it took) given back after it, however it ends."""
        fp, bucket, slot = await self.admit(context, raw, event=event)
        try:
            yield fp, bucket
        finally:
            if bucket is not None:
                self.limiter.release(bucket)
                if slot and self.shared_tokens is not None:
                    self.shared_tokens.release_slot(bucket)

    async def admit(self, context: grpc.aio.ServicerContext[Any, Any], raw: bytes, *,
                    event: str) -> tuple[str | None, str | None, bool]:
        """The edge, for every service a peer reaches: (TLS fingerprint, the limiter bucket
        admitted, whether it holds a slot of the replicas' shared ``max_in_flight``) --
        release the bucket with ``limiter.release`` once the call is done, and the shared
        slot with ``shared_tokens.release_slot`` (:meth:`edge` does all three).  One
        peer cannot starve the others (node/server/limits.py): the limit is checked on the
        TLS identity alone, before anything the request holds is parsed or verified.  A
        request beyond the bucket waits here for its token, up to ``rate_wait_s`` (or until
        its peer gives up); a refusal beyond that, or over ``max_in_flight``, is sent at once
        from here (RESOURCE_EXHAUSTED/rate_limited):
        it is counted into the peer's aggregated audit entry for ``event`` (appended within
        refusal_flush_s, and at shutdown), never queued on the database thread.  A
        certificate the CA signed but no member lists gets the stranger's limits on its
        fingerprint: within them it is refused by the service (audited each), beyond them it
        cannot make each refusal cost an audit entry either.  (None, None) on a development
        plaintext listener, which has no identity to limit."""
        fp = None if self._dev_plaintext else tls_fingerprint(context)
        if fp is None:
            return None, None, False
        peer = self._responder.directory.owner_of_tls_cert(fp)
        bucket = peer or f"unlisted:{fp}"
        limits = STRANGER if peer is None else (
            self._limits.cached(peer) or await self._limits_once(peer))
        wait = self.limiter.reserve(bucket, limits, max_wait_s=self.rate_wait_s)
        shared = slot = False  # a token and a slot of the replicas' shared bucket taken
        if wait is not None and self.shared_tokens is not None:  # replicas: the node's bucket
            wait, shared, slot = await self._take_shared(
                bucket, limits, wait, peer=peer or "", event=event, fp=fp, raw=raw)
        if wait is None:
            self.refusals.add(peer=peer or "", event=event, tls_peer=fp, raw=raw)
            await abort_reply(context, _RATE_LIMITED)  # its trailers built once
        elif wait > 0.0:  # paced: its token comes within the wait (node/server/limits.py)
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:  # the peer gave up (or its deadline passed)
                self.limiter.refund(bucket)
                if self.shared_tokens is not None:
                    if shared:
                        self.shared_tokens.refund_soon(bucket, limits)
                    if slot:
                        self.shared_tokens.release_slot(bucket)
                self.refusals.add(peer=peer or "", event=event, tls_peer=fp, raw=raw,
                                  cancelled=True)
                raise
        return fp, bucket, slot

    async def _take_shared(self, bucket: str, limits: PeerLimits, wait: float, *, peer: str,
                           event: str, fp: str, raw: bytes
                           ) -> tuple[float | None, bool, bool]:
        """A slot of the replicas' shared ``max_in_flight``, then the shared bucket's token
        (node/server/db_limits.py): (the later of the two waits, True, True), or (None,
        False, False) -- the local slot and token, and a shared slot taken, given back --
        when either refuses.  The slot first: a peer over its calls in flight is refused
        without taking a token it would have to give back.  What cannot be asked leaves
        the local decision: (``wait``, False, False) when the slot cannot (the token is
        not asked either: the same database), (``wait``, False, True) when the token
        cannot; nothing not taken is given back later."""
        tokens = self.shared_tokens
        assert tokens is not None
        try:
            slot = await tokens.take_slot(bucket, limits)
        except SharedTokensUnavailable:
            return wait, False, False
        except asyncio.CancelledError:
            self.limiter.refund(bucket)
            self.refusals.add(peer=peer, event=event, tls_peer=fp, raw=raw, cancelled=True)
            raise
        if not slot:
            self.limiter.refund(bucket)
            return None, False, False
        try:
            shared = await tokens.take(bucket, limits, max_wait_s=self.rate_wait_s)
        except SharedTokensUnavailable:
            return wait, False, True
        except asyncio.CancelledError:
            tokens.release_slot(bucket)
            self.limiter.refund(bucket)
            self.refusals.add(peer=peer, event=event, tls_peer=fp, raw=raw, cancelled=True)
            raise
        if shared is None:
            tokens.release_slot(bucket)
            self.limiter.refund(bucket)
            return None, False, False
        return max(wait, shared), True, True

    async def _limits_once(self, peer: str) -> PeerLimits:
        """``peer``'s limits from the policy, evaluated once however many of its calls ask
        at the same moment (a burst at the start of the day, or after a policy change,
        would otherwise queue one evaluation per call on the policy threads, every other
        peer's decisions behind them).  Shielded: a caller that gives up does not cancel
        the evaluation the others wait for."""
        pending = self._limits_pending.get(peer)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(
                self._policy_pool, self._limits.evaluate, peer))
            self._limits_pending[peer] = pending
            pending.add_done_callback(lambda _done: self._limits_pending.pop(peer, None))
        return await asyncio.shield(pending)

    def _unary(self, method: SignedMethod) -> grpc.RpcMethodHandler[Any, Any]:
        async def call(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            loop = asyncio.get_running_loop()
            async with self.edge(context, raw, event=method.handler.event) as (fp, bucket):
                # Within its limits a request waits its turn, peer by peer (node/server/
                # fair.py): a burst one peer was allowed never queues ahead of another's.
                turn = await self.gate.enter(bucket or "")
                try:
                    first = prepare_reply(self._responder, method, raw, fp,
                                          dev_plaintext=self._dev_plaintext)
                    if isinstance(first, Reply):
                        await abort_reply(context, first)
                    reply = await self._finish(method, first, context, loop, turn)
                finally:
                    turn.release()
            if reply.code is not grpc.StatusCode.OK:
                await abort_reply(context, reply)
            return reply.body

        return grpc.unary_unary_rpc_method_handler(call)

    async def _finish(self, method: SignedMethod, first: Pending[Any],
                      context: grpc.aio.ServicerContext[Any, Any],
                      loop: asyncio.AbstractEventLoop, turn: Pass) -> Reply:
        """The decision's reads (a handler's ``prefetch``) on the database thread between
        batches, policy off the loop and off the database thread, then the answer's reads
        (a handler's ``preread``) just before the batch's transaction and steps 7-11 in
        it, on the database thread; durable first.

        A decision the policy's cache already holds is taken here, on the loop (a dict
        look-up: no evaluation, no policy server to wait for); only a miss goes to the
        policy pool, holding no slot of the fair gate meanwhile (a slow policy server
        holds a thread, never the other peers' turns).  ``turn`` (the request's slot) is
        given back once its step has run: waiting for the batch's commit costs no one
        anything, and the next requests are verified meanwhile."""
        if getattr(method.handler, "prefetch", None) is not None and first.error is None:
            first = (self._responder.prefetch(first) if self.writer is None else
                     await self.writer.call(functools.partial(self._responder.prefetch, first)))
        if getattr(method.handler, "predecide", None) is not None and first.error is None:
            decided = self._responder.predecide_cached(first)
            first = decided if decided is not None else await turn.aside(  # no slot held
                loop.run_in_executor(self._policy_pool, self._responder.predecide, first))
        if self.writer is None:
            return reply_of(logged(first, complete(self._responder, first)))

        reads = self.reads_before_lock

        def preread() -> None:  # on the database thread, just before the batch's lock
            nonlocal first
            first = self._responder.preread(first, answer=reads)

        def step() -> Exchange:
            try:
                return complete(self._responder, first)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                    loop.call_soon_threadsafe(turn.release)

        pre = preread if first.error is None and first.verified is not None else None
        try:  # nothing is sent before the batch holding its audit entry is durable
            ex = await self.writer.run_in_batch(step, peer=turn.peer, pre=pre)
        except Exception as exc:
            log.error("request_not_durable", **error_fields(exc))
            if getattr(exc, "reason", None) == "audit_log_on_hold":  # node.audit.hold
                await abort(context, grpc.StatusCode.UNAVAILABLE, "audit_log_on_hold",
                            "this node's audit log is on hold after a restore; ask "
                            "another node")
            await abort(context, grpc.StatusCode.UNAVAILABLE, "audit_unavailable",
                        "the audit log could not be committed; retry")
        # logged and built here, on the loop: the database thread is already free
        return reply_of(logged(first, ex))

    async def flush_refusals(self) -> int:
        """Append the over-limit refusals counted so far (one entry per peer and event) and
        wait until they are durable; returns how many refusals they record.  If the commit
        fails they are kept for the next flush."""
        records = self.refusals.drain()
        if not records:
            return 0
        try:
            if self.writer is None:
                seqs = self._responder.record_refusals(records)
            else:
                seqs = await self.writer.run_in_batch(
                    functools.partial(self._responder.record_refusals, records))
        except Exception as exc:
            self.refusals.restore(records)
            log.error("refusals_not_durable", **error_fields(exc),
                      refused=sum(int(r.facts["refused"]) for r in records))
            return 0
        for record, seq in zip(records, seqs, strict=True):
            log.info("rate_limited_refusals", for_event=record.event,
                     requester=record.requester, refused=record.facts["refused"],
                     audit_seq=seq)
        return sum(int(r.facts["refused"]) for r in records)

    async def _flush_refusals_every(self) -> None:
        while True:
            await asyncio.sleep(self.refusal_flush_s)
            await self.flush_refusals()

    async def start(self, listen: str) -> int:
        # a task that fails unseen is logged without its text (node/logging.py)
        asyncio.get_running_loop().set_exception_handler(log_loop_exception)
        options = [o for o in SERVER_OPTIONS if o[0] != "grpc.so_reuseport"]
        options.append(("grpc.so_reuseport", 1 if self.reuse_port else 0))
        # HTTP/2's stream limit: a connection's calls past it wait on the client's side.
        # gRPC's "overload protection" would instead refuse a new stream (RST_STREAM
        # REFUSED_STREAM: UNAVAILABLE, sent by gRPC's core, never audited) while the core
        # still counts calls the client already saw answered -- 4,079 of a flood's calls in
        # the fairness benchmark; per-peer limits and the fair gate are the node's checks.
        options.append(("grpc.max_concurrent_streams", self.max_concurrent_streams))
        options.append(("grpc.http.overload_protection", 0))
        server = grpc.aio.server(options=options, interceptors=self.interceptors)
        by_service: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = {}
        for m in self._methods:
            by_service.setdefault(m.service, {})[m.method] = self._unary(m)
        server.add_generic_rpc_handlers(tuple(
            grpc.method_handlers_generic_handler(name, methods)
            for name, methods in by_service.items()) + self._extra_handlers)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        enable_reflection((*self.health_names[1:], health.SERVICE_NAME), server)
        if self._tls is None:
            log.warning("dev_plaintext_listener",
                        note="serving WITHOUT TLS: development only, never in production")
            port = int(server.add_insecure_port(listen))
        else:
            creds = grpc.ssl_server_credentials(
                [(self._tls.key, self._tls.cert)], root_certificates=self._tls.ca,
                require_client_auth=True)
            port = int(server.add_secure_port(listen, creds))
        if port == 0:
            raise OSError(f"cannot listen on {listen}")
        await server.start()
        if self.writer is not None:
            self.writer.start()
        loop = asyncio.get_running_loop()
        jobs = [*self._background, self._flush_refusals_every,
                *((self._watch_database,) if self.writer is not None else ())]
        self._tasks = [loop.create_task(job(), name=_job_name(job)) for job in jobs]
        await self._publish_health()
        self.server, self.port = server, port
        return port

    def preset_condition(self, name: str, ok: bool) -> None:
        """A health condition's value before the server starts (no SERVING moment first)."""
        self._conditions[name] = ok

    async def set_condition(self, name: str, ok: bool) -> None:
        """One input of the node's health: SERVING only while every condition holds (the
        database answers, the federation registry is fresh)."""
        if self._conditions.get(name) != ok:
            self._conditions[name] = ok
            await self._publish_health()

    async def _publish_health(self) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if all(self._conditions.values())
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for servicer, names in ((self.health, self.health_names), *self._health_mirrors):
            for name in names:  # NOT_SERVING together: one database behind them all
                await servicer.set(name, status)

    async def mirror_health(self, names: Sequence[str]) -> health.aio.HealthServicer:
        """A grpc.health.v1 servicer for another listener of this node, answering for
        ``names`` exactly as this server answers (its database and registry conditions);
        :meth:`unmirror_health` it when that listener stops."""
        servicer = health.aio.HealthServicer()
        self._health_mirrors.append((servicer, tuple(names)))
        await self._publish_health()
        return servicer

    def unmirror_health(self, servicer: health.aio.HealthServicer) -> None:
        self._health_mirrors = [m for m in self._health_mirrors if m[0] is not servicer]

    async def _watch_database(self) -> None:
        """NOT_SERVING while the database does not answer within ``db_timeout_s``; SERVING
        again once it does.  Requests meanwhile fail with UNAVAILABLE (nothing is answered
        without a durable audit entry), health just tells load balancers early.

        The probe is a read; after a batch failed to commit it is a write, committed like a
        batch (a full disk still answers reads).  One probe at a time: a database thread
        stuck on a lock is not sent another each round."""
        assert self.writer is not None
        writer, store = self.writer, self.writer.store
        probe: asyncio.Future[None] | None = None
        while True:
            if probe is None or probe.done():
                probe = asyncio.ensure_future(
                    writer.run_in_batch(functools.partial(_write_probe, store))
                    if writer.commit_error is not None
                    else writer.call(functools.partial(ping, store)))
            try:
                await settled_within(probe, self.db_timeout_s)
                ok = True
            except Exception as exc:
                if self._conditions.get("database", True):
                    log.error("database_unreachable", **error_fields(exc))
                ok = False
            if ok and self._conditions.get("database") is False:
                log.info("database_reachable")
            await self.set_condition("database", ok)
            await asyncio.sleep(self.db_check_s)

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        if self.server is not None:
            await self.server.stop(grace)
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # one that ignores its cancellation must not hold the flush below
            _, stuck = await asyncio.wait(self._tasks, timeout=self.task_stop_s)
            for task in self._tasks:
                if task in stuck:
                    log.error("background_task_not_stopped", task=task.get_name())
                elif not task.cancelled():
                    task.exception()  # retrieved: a job's failure was logged by the job
        self._tasks = []
        # No call is served any more: the last over-limit refusals get their entry.
        await self.flush_refusals()
        if self.refusals.pending():
            log.error("refusals_unrecorded", refused=self.refusals.pending())
        if self.writer is not None:
            await self.writer.stop()
        self._policy_pool.shutdown(wait=False, cancel_futures=True)
        if self.shared_tokens is not None:  # its last refunds sent, its connection closed
            await asyncio.get_running_loop().run_in_executor(None, self.shared_tokens.close)


async def serve_forever(node_server: NodeServer, listen: str, *, on_ready: object = None) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight calls and stop."""
    port = await node_server.start(listen)
    log.info("serving", port=port, tls=node_server._tls is not None)
    if callable(on_ready):
        on_ready(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting_down")
    await node_server.stop()
    log.info("stopped")


def _job_name(job: Callable[[], Any]) -> str:
    """A background job's task name, for the log line of one that would not stop."""
    fn = job.func if isinstance(job, functools.partial) else job
    return str(getattr(fn, "__qualname__", None) or fn)


async def settled_within(fut: asyncio.Future[Any], seconds: float) -> None:
    """Wait for ``fut`` at most ``seconds`` (TimeoutError), leaving it running then.

    Not ``asyncio.wait_for``: Python 3.11's returns the result of a future that finished as
    the waiting task was cancelled, and swallows the cancellation -- the database watch
    then never ended and ``stop()`` hung on it.  ``asyncio.timeout`` tells its own
    cancellation from another's."""
    async with asyncio.timeout(seconds):
        await asyncio.shield(fut)


def _write_probe(store: Database) -> None:
    """A write that leaves nothing behind but still has pages to commit (a health probe
    after a failed commit, in a batch of its own)."""
    store.set_meta("health_write_probe", "1")
    delete_meta(store, "health_write_probe")
