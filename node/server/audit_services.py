"""The audit services on a node's gRPC server, and its periodic witnessing task.

* ``AuditService.GetInclusionProof``: a signed exchange (:class:`ProofHandler` through the
  generic :class:`~node.responder.Responder` pipeline, audited like every exchange).  Only
  the requester of the exchange asked about gets its proof; others get PERMISSION_DENIED
  ``not_your_entry``.
* ``WitnessService.AddCheckpoint``: C2SP tlog-witness over mTLS; the caller must be a
  federation node.  The new witness state is durable before the cosignature is returned.
* ``WitnessService.GetWitnessedCheckpoint``: the latest checkpoint of a log we cosigned,
  from the stored witness state, with a fresh cosignature; for federation nodes and
  auditors (mTLS), each call audited (``witness_read``) before it is answered.
* ``AuditorService``: search and proof bundles for members with the role ``auditor`` (their
  own TLS certificate); anyone else gets PERMISSION_DENIED ``not_an_auditor``.
* :func:`witness_once`: send our latest checkpoint, with a consistency proof from the size
  each peer last cosigned, to every witness; keep the cosignatures.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf.message import DecodeError

from node.audit.bundle import make_bundle, witness_name
from node.audit.checkpoint import Checkpoint, CosignatureV1Verifier
from node.audit.checkpoint_witness import AddCheckpointRequest
from node.audit.hold import AuditLogOnHold
from node.audit.log import AuditQuery, MerkleAuditLog
from node.audit.note import parse_note
from node.audit.witnessing import WitnessDesk, verify_cosignatures
from node.client.channel import open_channel
from node.core.errors import BxError, InvalidInput, NotAuthorised, for_peer
from node.core.members import Member, MemberDirectory
from node.core.metrics import NO_METRICS, Metrics
from node.core.model import RequestHeader
from node.core.ports import Answer
from node.federation.pki import TlsMaterial
from node.logging import error_fields
from node.responder import Responder, Verified
from node.server.errors import abort
from node.server.group_commit import BatchWriter
from node.server.grpc_server import REASON_KEY, NodeServer, SignedMethod, tls_fingerprint
from node.store.db import Database
from node.wire import audit as wire
from node.wire.audit import apb
from node.wire.trailers import reason, trailers

__all__ = ["AuditServices", "ProofHandler", "make_audit_services", "witness_once"]

T = TypeVar("T")

log = structlog.get_logger("bxnode.audit.services")

AUDIT_SERVICE = apb.DESCRIPTOR.services_by_name["AuditService"].full_name
WITNESS_SERVICE = apb.DESCRIPTOR.services_by_name["WitnessService"].full_name
AUDITOR_SERVICE = apb.DESCRIPTOR.services_by_name["AuditorService"].full_name
ADD_CHECKPOINT = f"/{WITNESS_SERVICE}/AddCheckpoint"
GET_WITNESSED = f"/{WITNESS_SERVICE}/GetWitnessedCheckpoint"
MAX_SEARCH = 10_000


class ProofHandler:
    """GetInclusionProof: the entry of the caller's own request, against a signed checkpoint."""

    event = "inclusion_proof"
    request_type = wire.PROOF_REQUEST_TYPE

    def __init__(self, responder: Responder) -> None:
        self._r = responder

    def decode(self, payload: bytes) -> wire.ProofRequest:
        return wire.decode_proof_request(payload)

    def header(self, request: wire.ProofRequest) -> RequestHeader:
        return request.header

    def describe(self, request: wire.ProofRequest) -> dict[str, Any]:
        return {"query_kind": "inclusion_proof", "asked_digest": request.request_digest.hex()}

    def answer(self, v: Verified[wire.ProofRequest], audit_seq: int) -> Answer:
        log_ = self._r.audit_log
        entry = log_.entry_for_request(v.request.request_digest.hex())
        if entry is None or entry.body is None:
            raise NotAuthorised("no audit entry of a request of yours has this digest",
                                reason="not_your_entry")
        if json.loads(entry.body).get("requester") != v.member.node_id:
            raise NotAuthorised("that audit entry is not of a request of yours",
                                reason="not_your_entry")
        bundle = make_bundle(log_, entry.seq, node_id=self._r.settings.node_id)
        return Answer(wire.PROOF_RESPONSE_TYPE, wire.encode_proof_answer(
            responder=self._r.settings.node_id, key_id=self._r.key_id,
            request_digest=v.digest, issued_at_ms=v.now_ms,
            audit_seq=audit_seq, bundle=bundle), facts={"proved_seq": entry.seq})


@dataclass
class AuditServices:
    """Everything the audit capability adds to a node's server."""

    responder: Responder
    directory: MemberDirectory
    desk: WitnessDesk
    writer: BatchWriter | None
    tls: TlsMaterial | None
    clock_ms: Callable[[], int]
    witnesses: tuple[str, ...]
    interval_s: int
    quorum: int
    metrics: Metrics = NO_METRICS
    #: The server's per-peer limits (:meth:`node.server.grpc_server.NodeServer.edge`), set
    #: by :meth:`bind` once the server exists; every witness and auditor call passes them.
    edge: NodeServer | None = None

    def bind(self, server: NodeServer) -> None:
        self.edge = server

    @property
    def log(self) -> MerkleAuditLog:
        log_: MerkleAuditLog = self.responder.audit_log
        return log_

    def signed_methods(self) -> list[SignedMethod]:
        return [SignedMethod(AUDIT_SERVICE, "GetInclusionProof", ProofHandler(self.responder),
                             apb.GetInclusionProofRequest, apb.GetInclusionProofResponse)]

    def service_names(self) -> list[str]:
        return [WITNESS_SERVICE, AUDITOR_SERVICE]

    # --- transport helpers ----------------------------------------------------------------

    def _caller(self, context: grpc.aio.ServicerContext[Any, Any]) -> Member | None:
        fp = tls_fingerprint(context)
        owner = None if fp is None else self.directory.owner_of_tls_cert(fp)
        return None if owner is None else self.directory.member(owner)

    async def _db(self, fn: Callable[[], T]) -> T:
        """Run a store-writing step on the database thread; return once it is durable."""
        return fn() if self.writer is None else await self.writer.run_in_batch(fn)

    async def _read(self, fn: Callable[[], T]) -> T:
        return fn() if self.writer is None else await self.writer.call(fn)

    async def _refuse(self, context: grpc.aio.ServicerContext[Any, Any], exc: BxError, *,
                      event: str, action: str, extra_md: tuple[tuple[str, str], ...] = ()) -> None:
        """Audit the refusal (who, from which certificate, why), log it, then abort: every
        request to every service is in the log, answered or refused."""
        fp = tls_fingerprint(context)
        caller = None if fp is None else self.directory.owner_of_tls_cert(fp)
        log.warning(event, caller=caller or "", action=action, reason=exc.reason)

        told = for_peer(exc)  # the entry keeps the real reason; the caller is told one it may see
        entry = {"event": event, "requester": caller or "", "tls_peer": fp or "plaintext",
                 "action": action, "outcome": "rejected", "status": exc.status,
                 "reason": exc.reason}
        if told is not exc:
            entry.update(told_status=told.status, told_reason=told.reason)

        def append() -> None:
            with self.log.store.transaction():
                self.log.append(entry, time_ms=self.clock_ms())

        try:
            await self._db(append)
        except AuditLogOnHold:  # a restored log appends nothing (node.audit.hold): logged only
            pass
        await abort(context, grpc.StatusCode[told.status], told.reason,
                    f"{told.reason}: {told.message}", trailers=extra_md)

    # --- WitnessService ---------------------------------------------------------------------

    async def add_checkpoint(self, request: Any,
                             context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        caller = self._caller(context)
        if caller is None or "node" not in caller.roles:
            await self._refuse(context, NotAuthorised("only federation nodes submit checkpoints",
                                                      reason="not_a_node"),
                               event="witness_refused", action="add_checkpoint")

        def add() -> bytes | BxError:
            try:
                return self.desk.add_checkpoint(bytes(request.body), now_ms=self.clock_ms())
            except BxError as exc:  # returned, not raised: its evidence commits with the batch
                return exc

        result = await self._db(add)  # tlog-witness: persist before answering (or refusing)
        if isinstance(result, BxError):
            stored = getattr(result, "stored_size", None)
            await self._refuse(context, result, event="witness_refused",
                               action="add_checkpoint",
                               extra_md=() if stored is None else (
                                   ("bxnode-witness-size", str(stored)),))
        assert isinstance(result, bytes)
        return apb.AddCheckpointResponse(cosignatures=result)

    async def get_witnessed(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        caller = self._caller(context)
        action = "get_witnessed_checkpoint"
        if caller is None or not {"node", "auditor"} & set(caller.roles):
            await self._refuse(context, NotAuthorised(
                "only federation nodes and auditors read witnessed checkpoints",
                reason="not_a_node"), event="witness_refused", action=action)
        assert caller is not None
        origin = str(request.origin)

        def read() -> tuple[bytes, bytes] | BxError:
            try:
                return self.desk.witnessed_checkpoint(origin, now_ms=self.clock_ms())
            except BxError as exc:
                return exc

        result = await self._read(read)
        if isinstance(result, BxError):
            await self._refuse(context, result, event="witness_refused", action=action)
        assert not isinstance(result, BxError)
        note, cosignatures = result
        size = Checkpoint.parse(parse_note(note).text).size if note else 0

        def append() -> None:
            with self.log.store.transaction():
                self.log.append({"event": "witness_read", "requester": caller.node_id,
                                 "action": action, "origin": origin, "size": size,
                                 "outcome": "answered"}, time_ms=self.clock_ms())

        await self._db(append)  # audited (durably) before it is answered
        return apb.GetWitnessedCheckpointResponse(checkpoint=note, cosignatures=cosignatures)

    # --- AuditorService ---------------------------------------------------------------------

    async def _auditor(self, context: grpc.aio.ServicerContext[Any, Any], what: str) -> Member:
        caller = self._caller(context)
        if caller is None or "auditor" not in caller.roles:
            await self._refuse(context, NotAuthorised("audit access needs the auditor role",
                                                      reason="not_an_auditor"),
                               event="auditor_access_refused", action=what)
        assert caller is not None
        return caller

    async def _log_access(self, who: Member, what: str, **fields: Any) -> None:
        def append() -> None:
            with self.log.store.transaction():
                self.log.append({"event": "auditor_access", "requester": who.node_id,
                                 "action": what, **fields}, time_ms=self.clock_ms())

        await self._db(append)

    async def search(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        who = await self._auditor(context, "search")
        limit = request.limit or 1000
        if limit > MAX_SEARCH:
            await self._refuse(context, InvalidInput("limit is at most 10000",
                                                     reason="limit_too_large"),
                               event="auditor_access_refused", action="search")
        q = AuditQuery(peer=request.peer or None, purpose=request.purpose or None,
                       outcome=request.outcome or None, operator=request.operator or None,
                       case_ref=request.case_ref or None, from_ms=request.from_ms or None,
                       to_ms=request.to_ms or None, limit=limit)
        entries = await self._read(lambda: [
            json.dumps(e, sort_keys=True, separators=(",", ":")).encode()
            for e in self.log.search(q)])
        await self._log_access(who, "search", results=len(entries))
        return apb.SearchEntriesResponse(entries=entries)

    async def proof_bundle(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        who = await self._auditor(context, "proof_bundle")

        def bundle_or_error() -> bytes | BxError:
            try:
                return make_bundle(self.log, int(request.seq),
                                   node_id=self.responder.settings.node_id)
            except BxError as exc:
                return exc

        bundle = await self._read(bundle_or_error)
        if isinstance(bundle, BxError):
            await self._refuse(context, bundle, event="auditor_access_refused",
                               action="proof_bundle")
        assert isinstance(bundle, bytes)
        await self._log_access(who, "proof_bundle", proved_seq=int(request.seq))
        return apb.GetProofBundleResponse(bundle=bundle)

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        return [
            grpc.method_handlers_generic_handler(WITNESS_SERVICE, {
                "AddCheckpoint": self._raw(self.add_checkpoint, apb.AddCheckpointRequest,
                                           apb.AddCheckpointResponse, event="witness_refused",
                                           action="add_checkpoint"),
                "GetWitnessedCheckpoint": self._raw(
                    self.get_witnessed, apb.GetWitnessedCheckpointRequest,
                    apb.GetWitnessedCheckpointResponse, event="witness_refused",
                    action="get_witnessed_checkpoint")}),
            grpc.method_handlers_generic_handler(AUDITOR_SERVICE, {
                "SearchEntries": self._raw(self.search, apb.SearchEntriesRequest,
                                           apb.SearchEntriesResponse,
                                           event="auditor_access_refused", action="search"),
                "GetProofBundle": self._raw(self.proof_bundle, apb.GetProofBundleRequest,
                                            apb.GetProofBundleResponse,
                                            event="auditor_access_refused",
                                            action="proof_bundle")}),
        ]

    def _raw(self, method: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]],
             request_type: Any, response_type: Any, *, event: str, action: str
             ) -> grpc.RpcMethodHandler[Any, Any]:
        """``method`` behind a handler that takes the request's bytes: a message that does
        not parse is refused INVALID_ARGUMENT/``malformed_request`` and audited (gRPC's own
        deserializer would answer INTERNAL with nothing in the log), and an error that is not
        a refusal (a bug, a driver error) becomes INTERNAL/``internal_error`` to the caller,
        with no detail, audited, and logged with its detail.  Each call first passes the
        server's per-peer limits (:attr:`edge`), as the signed methods do: over them it is
        refused RESOURCE_EXHAUSTED/``rate_limited``, counted into the peer's aggregated
        entry for ``event``."""
        async def call(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if self.edge is None:
                return await answer(raw, context)
            async with self.edge.edge(context, raw, event=event):
                return await answer(raw, context)

        async def answer(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                request = request_type.FromString(raw)
            except DecodeError:
                await self._refuse(context, InvalidInput("the request message does not parse",
                                                         reason="malformed_request"),
                                   event=event, action=action)
            try:
                return await method(request, context)
            except grpc.aio.AbortError:  # a refusal, audited already
                raise
            except Exception as exc:
                log.error("audit_service_failed", action=action, **error_fields(exc))
                await self._refuse(context, BxError("internal error"), event=event,
                                   action=action)

        return grpc.unary_unary_rpc_method_handler(
            call, response_serializer=response_type.SerializeToString)

    # --- witnessing (log side) ------------------------------------------------------------------

    def background(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(self.interval_s)
                try:
                    await witness_once(self)
                except Exception as exc:  # keep witnessing on the next round
                    log.warning("witnessing_failed", **error_fields(exc))

        return [loop]

    def witnessed(self, size: int) -> bool:
        head = self.log.head(size)
        return head is not None and len(head.cosignatures) >= self.quorum


async def witness_once(svc: AuditServices, *,
                       send: Callable[[str, bytes], Awaitable[bytes]] | None = None
                       ) -> dict[str, str]:
    """Send our latest checkpoint to every witness; returns ``{peer: outcome}``."""
    send = send or _grpc_sender(svc)
    head = await svc._read(svc.log.latest_head)
    if head is None:
        return {}
    checkpoint = Checkpoint.parse(parse_note(head.note).text)
    out: dict[str, str] = {}
    for peer in svc.witnesses:
        old = await svc._read(functools.partial(svc.desk.witnessed_size, peer))
        for _attempt in range(2):
            if old > head.size:
                out[peer] = f"witness holds size {old} > ours {head.size}"
                log.error("witness_ahead_of_log", peer=peer, witnessed=old, ours=head.size)
                svc.metrics.witness_result(witness=peer, result="witness_ahead")
                svc.metrics.witness_alert(kind="witness_ahead")
                break
            proof = await svc._read(functools.partial(svc.log.consistency_proof, old,
                                                      head.size))
            body = AddCheckpointRequest(old, tuple(proof), head.note).to_bytes()
            try:
                lines = await send(peer, body)
            except _SizeConflict as conflict:
                if conflict.size < old:  # it cosigned more before: restored, or misbehaving
                    log.error("witness_rolled_back", peer=peer, cosigned=old,
                              holds=conflict.size)
                old = conflict.size  # tlog-witness 409: learn the witness's size and retry
                continue
            except Exception as exc:
                out[peer] = f"failed: {exc}"
                if "log_origin_unlisted" in str(exc):  # a reset governance has not recorded
                    log.error("log_origin_unlisted", peer=peer, origin=checkpoint.origin,
                              detail="the witness cosigns only the origin the registry "
                                     "lists: bxnode registry propose --log-origin "
                                     f"{svc.responder.settings.node_id} {checkpoint.origin}")
                    svc.metrics.witness_result(witness=peer, result="origin_unlisted")
                    break
                log.warning("witness_unavailable", peer=peer, **error_fields(exc))
                svc.metrics.witness_result(witness=peer, result="unavailable")
                break
            member = svc.directory.member(peer)
            try:
                cosigs = _first_valid(lines, checkpoint, peer, member)
            except BxError as exc:
                out[peer] = f"bad cosignature: {exc.message}"
                svc.metrics.witness_result(witness=peer, result="bad_cosignature")
                break
            def keep(cosigs: list[Any] = cosigs, peer: str = peer) -> None:
                with svc.log.store.transaction():
                    for c in cosigs:
                        svc.log.add_cosignature(head.size, c.name, c.line(),
                                                time_ms=svc.clock_ms())
                    svc.desk.set_witnessed_size(peer, head.size, now_ms=svc.clock_ms())

            await svc._db(keep)
            out[peer] = "cosigned"
            svc.metrics.witness_result(witness=peer, result="cosigned")
            break
    if head.size and not await svc._read(functools.partial(svc.witnessed, head.size)):
        log.warning("checkpoint_not_witnessed", size=head.size, quorum=svc.quorum)
    return out


def _first_valid(lines: bytes, checkpoint: Checkpoint, peer: str, member: Member) -> list[Any]:
    last: BxError | None = None
    for key in member.keys:
        try:
            return verify_cosignatures(lines, checkpoint_body=checkpoint.body_bytes(),
                                       witness=CosignatureV1Verifier(name=witness_name(peer),
                                                                     public_key=key.public_key))
        except BxError as exc:
            last = exc
    assert last is not None
    raise last


class _SizeConflict(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"witness holds size {size}")
        self.size = size


def _grpc_sender(svc: AuditServices) -> Callable[[str, bytes], Awaitable[bytes]]:
    def call(peer: str, body: bytes) -> bytes:
        endpoint = svc.directory.member(peer).endpoint
        with open_channel(endpoint, svc.tls) as channel:
            stub = channel.unary_unary(
                ADD_CHECKPOINT, request_serializer=apb.AddCheckpointRequest.SerializeToString,
                response_deserializer=apb.AddCheckpointResponse.FromString)
            try:
                return bytes(stub(apb.AddCheckpointRequest(body=body), timeout=10).cosignatures)
            except grpc.RpcError as err:
                md = trailers(err)
                size = md.get("bxnode-witness-size")
                if md.get(REASON_KEY) == "old_size_mismatch" and size is not None:
                    raise _SizeConflict(int(str(size))) from None
                raise RuntimeError(f"{err.code().name}: {reason(err)}") from None

    async def send(peer: str, body: bytes) -> bytes:
        return await asyncio.to_thread(call, peer, body)

    return send


def make_audit_services(*, responder: Responder, store: Database,
                        directory: MemberDirectory, cfg: Any,
                        signing_key: Any, writer: BatchWriter | None,
                        tls: TlsMaterial | None, clock_ms: Callable[[], int],
                        metrics: Metrics = NO_METRICS) -> AuditServices:
    """The audit services of a node, from its ``[audit]`` settings."""
    audit = cfg.audit
    witnesses = audit.witnesses if audit.witnesses is not None else tuple(
        m.node_id for m in directory.members() if m.node_id != cfg.node_id and "node" in m.roles)
    desk = WitnessDesk(store=store, node_id=cfg.node_id, signing_key=signing_key,
                       directory=directory, metrics=metrics)
    return AuditServices(responder=responder, directory=directory, desk=desk, writer=writer,
                         tls=tls, clock_ms=clock_ms, witnesses=tuple(witnesses),
                         interval_s=audit.witness_interval_s, quorum=audit.witness_quorum,
                         metrics=metrics)
