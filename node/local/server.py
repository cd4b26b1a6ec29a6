"""The LocalService listener: authenticate, authorise, check, act, audit.  Never the peer port.

Transports (``[local]``):

* ``api_socket`` (default ``unix:officers.sock`` in the node folder, mode 0600): mTLS over
  the socket when ``client_ca`` is set (every connection presents an officer or
  workstation certificate the agency CA issued; the handshake refuses any other), else
  plain gRPC whose callers must bring a bearer token (the socket's file mode keeps
  everyone but the node's own service accounts out);
* ``api_tcp`` (optional): always mTLS against ``client_ca``, for client systems on the
  agency's network.

Every call, in order: (1) the identity (token, else certificate; none:
``UNAUTHENTICATED/no_identity``), (2) the role (``PERMISSION_DENIED/role_required``),
(3) the size (at most :data:`MAX_LOCAL_MESSAGE_BYTES`: ``RESOURCE_EXHAUSTED/message_too_large``)
and the message (``INVALID_ARGUMENT/malformed_request``), (4) every field, (5) only then
the peers.  Each call, refusals included, leaves one audit entry ``local_call`` naming the
caller (the authenticated identity, or what is known of an unauthenticated one), committed
before the reply.  A certificate from another CA never gets this far: the TLS handshake
fails, so there is no call to audit (gRPC reports ``UNAVAILABLE`` to that client).

Both transports also serve ``grpc.health.v1.Health`` for ``""`` and
``bxnode.v1.LocalService``, SERVING and NOT_SERVING with the peer port (the same database
and registry conditions: :meth:`NodeServer.mirror_health`), unaudited like the peer port's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from google.protobuf.message import DecodeError

from node.core.errors import BxError, EnvironmentFault, InvalidInput, RemoteError, Unauthenticated
from node.core.model import QueryKind
from node.crossings.local import record_crossings
from node.followup.store import FollowUpRow
from node.local.auth import Identity, RoleTable, TokenVerifier, identity_from_certificate
from node.local.retention import hold_methods
from node.local.service import FanOutResult, LocalOps, PeerAnswer
from node.local.watchlist import watchlist_methods
from node.logging import error_fields, unexpected
from node.server.errors import abort
from node.store.followup_confirmations import PendingApproval
from node.wire import crossings as cwire
from node.wire import local as wire
from node.wire.local import lpb

if TYPE_CHECKING:
    from node.app import NodeRuntime
    from node.config import LocalApiSettings
    from node.server.grpc_server import NodeServer
    from node.watchlist.service import WatchlistOps

__all__ = ["MAX_LOCAL_MESSAGE_BYTES", "LocalApiServer", "build_local_api",
           "serve_with_local_api"]

log = structlog.get_logger("bxnode.local")

MAX_LOCAL_MESSAGE_BYTES = 8 * 1024 * 1024
_TRANSPORT_MAX = MAX_LOCAL_MESSAGE_BYTES + 1024 * 1024  # so our own bound answers first

Handler = Callable[[Identity, Any, dict[str, Any]], Awaitable[Any]]
StreamHandler = Callable[[Identity, Any, dict[str, Any]], AsyncIterator[Any]]


@dataclass(frozen=True, slots=True)
class _Method:
    name: str
    request_cls: Any
    unary: Handler | None = None
    stream: StreamHandler | None = None


class _Refused(Exception):
    def __init__(self, status: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def _ctx_args(ctx: Any) -> tuple[str, str, str]:
    return ctx.purpose, ctx.legal_basis or "", ctx.case_ref


class LocalApiServer:
    def __init__(self, *, settings: LocalApiSettings, ops: LocalOps, roles: RoleTable,
                 verifier: TokenVerifier | None, server_cert: bytes, server_key: bytes,
                 client_ca: bytes | None, clock_ms: Callable[[], int],
                 watchlist: WatchlistOps | None = None, holds: bool = False) -> None:
        self.settings = settings
        self.ops = ops
        self.watchlist = watchlist
        self._holds = holds
        self._roles = roles
        self._verifier = verifier
        self._cert, self._key, self._client_ca = server_cert, server_key, client_ca
        self._clock_ms = clock_ms
        self._server: grpc.aio.Server | None = None
        self.socket_path: Path | None = None
        self.tcp_port = 0
        self._methods = self._table()
        #: The peer server whose health this listener's grpc.health.v1 repeats.
        self.health_of: NodeServer | None = None
        self._health: Any = None

    # --- identity ---------------------------------------------------------------------------

    def authenticate(self, context: grpc.aio.ServicerContext[Any, Any],
                     caller: list[str]) -> Identity:
        certs = list(context.auth_context().get("x509_pem_cert") or ())
        cert_id = identity_from_certificate(bytes(certs[0])) if certs else ""
        if cert_id:
            caller[0] = cert_id
        md = {k: v for k, v in (context.invocation_metadata() or ())}
        auth = md.get("authorization")
        if auth is not None:
            text = auth if isinstance(auth, str) else auth.decode("ascii", "replace")
            if not text.startswith("Bearer ") or not text[7:].strip():
                raise Unauthenticated('the authorization header must be "Bearer <JWT>"',
                                      reason="bad_token")
            if self._verifier is None:
                raise Unauthenticated("this node accepts no bearer tokens (no [local] oidc_*)",
                                      reason="tokens_not_accepted")
            sub = self._verifier.verify(text[7:].strip())
            caller[0] = sub
            return Identity(name=sub, method="token", roles=self._roles.roles_for(sub),
                            client_system=cert_id)
        if cert_id:
            return Identity(name=cert_id, method="certificate",
                            roles=self._roles.roles_for(cert_id))
        raise Unauthenticated("no client certificate and no bearer token",
                              reason="no_identity")

    # --- the generic call -----------------------------------------------------------------------

    async def _audit(self, entry: dict[str, Any]) -> int:
        now = self._clock_ms()
        seq: int = await self.ops.writer.run_in_batch(
            lambda: self.ops.audit_log.append(entry, time_ms=now))
        return seq

    def _entry(self, m: _Method, context: grpc.aio.ServicerContext[Any, Any], caller: str,
               ident: Identity | None) -> dict[str, Any]:
        peer = str(context.peer() or "")
        return {"event": "local_call", "method": m.name, "caller": caller,
                "operator": ident.name if ident else "",
                "auth": ident.method if ident else "none",
                "client_system": ident.client_system if ident else "",
                "via": "unix" if peer.startswith("unix") or not peer else "tcp",
                "roles": list(ident.roles) if ident else []}

    async def _begin(self, m: _Method, raw: bytes, context: grpc.aio.ServicerContext[Any, Any],
                     entry: dict[str, Any]) -> tuple[Identity, Any]:
        caller = ["anonymous"]
        try:
            ident = self.authenticate(context, caller)
        finally:
            entry.update(self._entry(m, context, caller[0], None))
        entry.update(self._entry(m, context, caller[0], ident))
        ident.require(m.name)
        if len(raw) > MAX_LOCAL_MESSAGE_BYTES:
            raise _Refused("RESOURCE_EXHAUSTED", "message_too_large",
                           f"a LocalService message is at most {MAX_LOCAL_MESSAGE_BYTES} bytes")
        try:
            msg = m.request_cls.FromString(raw)
        except DecodeError:
            raise InvalidInput(f"request is not a valid {m.request_cls.__name__}",
                               reason="malformed_request") from None
        return ident, msg

    def _unary(self, m: _Method) -> grpc.RpcMethodHandler[Any, Any]:
        assert m.unary is not None
        fn = m.unary

        async def call(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            entry: dict[str, Any] = {}
            facts: dict[str, Any] = {}
            request_id = uuid.uuid4().hex[:16]
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                try:
                    ident, msg = await self._begin(m, raw, context, entry)
                    response = await fn(ident, msg, facts)
                except BaseException as exc:
                    status, reason, message = self._refusal(exc)
                    trailers = _refused_by(exc, facts)
                    entry.update(facts, outcome="refused", status=status, reason=reason,
                                 **_refused_by_facts(trailers))
                    await self._finish(entry)
                    await abort(context, grpc.StatusCode[status], reason,
                                f"{reason}: {message}", trailers=trailers)
                entry.update(facts, outcome="ok", status="OK")
                seq = await self._finish(entry)
                if hasattr(response, "result") and response.HasField("result"):
                    response.result.audit_seq = seq
                return bytes(response.SerializeToString())

        return grpc.unary_unary_rpc_method_handler(call)

    def _streaming(self, m: _Method) -> grpc.RpcMethodHandler[Any, Any]:
        assert m.stream is not None
        fn = m.stream

        async def call(raw: bytes,
                       context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[bytes]:
            entry: dict[str, Any] = {}
            facts: dict[str, Any] = {}
            sent = 0
            try:
                ident, msg = await self._begin(m, raw, context, entry)
                async for response in fn(ident, msg, facts):
                    sent += 1
                    yield bytes(response.SerializeToString())
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError | GeneratorExit):
                    entry.update(facts, outcome="cancelled", messages=sent)
                    with contextlib.suppress(Exception):
                        await self._finish(entry)
                    raise
                status, reason, message = self._refusal(exc)
                trailers = _refused_by(exc, facts)
                entry.update(facts, outcome="refused", status=status, reason=reason,
                             messages=sent, **_refused_by_facts(trailers))
                await self._finish(entry)
                await abort(context, grpc.StatusCode[status], reason, f"{reason}: {message}",
                            trailers=trailers)
            entry.update(facts, outcome="ok", status="OK", messages=sent)
            await self._finish(entry)

        return grpc.unary_stream_rpc_method_handler(call)

    async def _finish(self, entry: dict[str, Any]) -> int:
        try:
            return await self._audit(entry)
        except Exception as exc:  # nothing is answered without its audit entry
            log.error("local_call_not_audited", **error_fields(exc))
            raise _Refused("UNAVAILABLE", "audit_unavailable",
                           "the audit log could not be committed; retry") from exc

    @staticmethod
    def _refusal(exc: BaseException) -> tuple[str, str, str]:
        if isinstance(exc, _Refused):
            return exc.status, exc.reason, exc.message
        if isinstance(exc, BxError):
            status = exc.status if exc.status in grpc.StatusCode.__members__ else "INTERNAL"
            return status, exc.reason, exc.message
        log.error("local_call_failed", **unexpected(exc))
        return "INTERNAL", "internal_error", "internal error (see the node's error log)"

    # --- methods ------------------------------------------------------------------------------

    def _table(self) -> dict[str, _Method]:
        ms = [
            _Method("WhoAmI", lpb.WhoAmIRequest, unary=self._whoami),
            _Method("LookupDocument", lpb.LookupDocumentRequest, unary=self._lookup_document),
            _Method("LookupPerson", lpb.LookupPersonRequest, unary=self._lookup_person),
            _Method("LookupMrz", lpb.LookupMrzRequest, unary=self._lookup_mrz),
            _Method("LookupManifest", lpb.LookupManifestRequest, unary=self._lookup_manifest),
            _Method("LookupPaxlst", lpb.LookupPaxlstRequest, unary=self._lookup_paxlst),
            _Method("ConfirmCrossings", lpb.ConfirmCrossingsRequest, unary=self._confirm),
            _Method("ReconcileCrossings", lpb.ReconcileCrossingsRequest,
                    unary=self._reconcile),
            _Method("StoreCrossings", lpb.StoreCrossingsRequest, unary=self._store_crossings),
            _Method("SendFollowUp", lpb.SendFollowUpRequest, unary=self._send_followup),
            _Method("PollFollowUp", lpb.PollFollowUpRequest, unary=self._poll_followup),
            _Method("AwaitFollowUp", lpb.AwaitFollowUpRequest, stream=self._await_followup),
            _Method("ListDeskFollowUps", lpb.ListDeskFollowUpsRequest, unary=self._desk_list),
            _Method("ShowDeskFollowUp", lpb.ShowDeskFollowUpRequest, unary=self._desk_show),
            _Method("ApproveFollowUp", lpb.ApproveFollowUpRequest, unary=self._desk_approve),
            _Method("DenyFollowUp", lpb.DenyFollowUpRequest, unary=self._desk_deny),
        ]
        if self.watchlist is not None:  # the alert lifecycle (node/local/watchlist.py)
            ms += [_Method(name, cls, unary=fn)
                   for name, cls, fn in watchlist_methods(self.watchlist)]
        if self._holds:  # retention holds (node/local/retention.py)
            ms += [_Method(name, cls, unary=fn) for name, cls, fn in hold_methods(
                db=self.ops.followups.db, audit=self.ops.audit_log, writer=self.ops.writer,
                clock_ms=self._clock_ms)]
        return {m.name: m for m in ms}

    async def _whoami(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        return lpb.WhoAmIResponse(identity=ident.name, method=ident.method, roles=ident.roles,
                                  node_id=self.ops.node_id)

    async def _fan_out(self, ident: Identity, target: Any, kind: QueryKind, items: list[Any],
                       facts: dict[str, Any], *,
                       batches: list[list[Any]] | None = None) -> Any:
        ops = self.ops
        facts.update(kind=kind.value, items=len(items),
                     data_types=sorted({t for q in items for t in q.data_types}))
        ops.check_items(items, batches=batches is not None)
        ctx = ops.context(ident.name, *_ctx_args(target.context))
        facts.update(purpose=ctx.purpose, case_ref=ctx.case_ref)
        deadline = ops.deadline_s(target.deadline_ms)
        peers, skipped = ops.resolve_peers(list(target.peers), items=items, purpose=ctx.purpose)
        facts["peers_asked"] = peers
        result = await ops.fan_out(ctx, peers, skipped, kind, items, deadline, batches)
        facts["results"] = [a.summary() for a in result.peers]
        return _fan_out_pb(result)

    async def _lookup_document(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        doc = wire.document_from_pb(msg.document)
        return lpb.LookupDocumentResponse(result=await self._fan_out(
            ident, msg.target, QueryKind.DOCUMENT, [doc], facts))

    async def _lookup_person(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        person = wire.person_from_pb(msg.person)
        return lpb.LookupPersonResponse(result=await self._fan_out(
            ident, msg.target, QueryKind.PERSON, [person], facts))

    async def _lookup_mrz(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        from node.matching.mrz import parse_mrz

        mrz = parse_mrz(msg.mrz)
        facts["mrz_format"] = mrz.format
        return lpb.LookupMrzResponse(result=await self._fan_out(
            ident, msg.target, QueryKind.BATCH, [mrz.document, mrz.person], facts),
            format=mrz.format)

    async def _lookup_manifest(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        if len(msg.items) > self.ops.max_batch:
            raise InvalidInput(f"a batch may hold at most {self.ops.max_batch} items; this "
                               f"one has {len(msg.items)}", reason="batch_too_large")
        items = wire.items_from_pb(msg.items)
        return lpb.LookupManifestResponse(result=await self._fan_out(
            ident, msg.target, QueryKind.BATCH, items, facts))

    async def _lookup_paxlst(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        try:
            from node.watchlist import paxlst
        except ImportError:
            raise _Refused("UNIMPLEMENTED", "not_yet_available",
                           "PAXLST parsing is not available on this node yet") from None
        flight = paxlst.parse_paxlst(_paxlst_bytes(msg.message))
        flight_items = paxlst.flight_queries(flight)
        facts["travellers"] = len(flight.travellers)
        # a traveller's items stay in one signed batch (the CLI's grouping too)
        batches = [[fi.query for fi in b] for b in paxlst.flight_batches(
            flight_items, self.ops.max_batch)] if flight_items else None
        return lpb.LookupPaxlstResponse(result=await self._fan_out(
            ident, msg.target, QueryKind.BATCH, [fi.query for fi in flight_items], facts,
            batches=batches))

    async def _confirm(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        ops = self.ops
        questions = wire.questions_from_pb(msg.questions)
        ops.check_questions(questions)
        ctx = ops.context(ident.name, *_ctx_args(msg.context))
        peer = ops.peer(msg.peer)
        facts.update(peer=peer, questions=len(questions), purpose=ctx.purpose)
        answers, seq = await ops.confirm(peer, ctx, questions)
        facts["confirmed"] = sum(1 for a in answers if a.confirmed)
        return lpb.ConfirmCrossingsResponse(answers=wire.crossing_answers_to_pb(answers),
                                            peer_audit_seq=seq)

    async def _reconcile(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        ops = self.ops
        if msg.to_ms < msg.from_ms or msg.from_ms <= 0:
            raise InvalidInput("the period must end after it starts", reason="bad_window")
        if msg.to_ms - msg.from_ms > 31 * 86_400_000:
            raise InvalidInput("a reconciliation period is at most 31 days",
                               reason="window_too_long")
        if msg.transit_hours and msg.transit_ms:
            raise InvalidInput("give transit_hours or transit_ms, not both",
                               reason="invalid_argument")
        transit_ms = msg.transit_ms or (msg.transit_hours or 24) * 3_600_000
        batch = msg.batch_size or 100
        if not 0 < transit_ms <= MAX_TRANSIT_MS or not 1 <= batch <= MAX_BATCH_RECONCILE:
            raise InvalidInput(f"the transit must be over 0 and at most {MAX_TRANSIT_HOURS} "
                               f"hours, batch_size 1..{MAX_BATCH_RECONCILE}",
                               reason="invalid_argument")
        peer, country = ops.peer_or_country(msg.peer)
        facts["peer"] = peer
        purpose, legal, case_ref = _ctx_args(msg.context)

        def iso(ms: int) -> str:
            import datetime as dt

            return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")

        ctx = ops.context(ident.name, purpose or "migration_control",
                          legal or "bilateral agreement",
                          case_ref or f"RECON-{peer}-{iso(msg.from_ms)}-{iso(msg.to_ms)}")
        report = await ops.reconcile(peer, country, ctx, from_ms=msg.from_ms, to_ms=msg.to_ms,
                                     transit_ms=transit_ms, batch_size=batch)
        summary = report.summary()
        facts.update(peer=peer, purpose=ctx.purpose, case_ref=ctx.case_ref,
                     **{k: v for k, v in summary.items() if k not in ("peer", "from", "to")})
        return lpb.ReconcileCrossingsResponse(
            checked=int(summary["checked"]), matched=int(summary["matched"]),  # type: ignore[call-overload]
            exit_without_entry=int(summary["exit_without_entry"]),  # type: ignore[call-overload]
            entry_without_exit=int(summary["entry_without_exit"]),  # type: ignore[call-overload]
            batches=report.batches,
            lines=[lpb.ReconcileLine(outcome=ln.outcome, record_id=ln.record_id,
                                     event=ln.event, bcp=ln.bcp, crossed_at=ln.crossed_at,
                                     peer_bcp=ln.peer_bcp, peer_crossed_at=ln.peer_crossed_at,
                                     doc_number=ln.doc_number, doc_state=ln.doc_state,
                                     doc_type=ln.doc_type)
                   for ln in report.lines])

    async def _store_crossings(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        ops = self.ops
        req = cwire.cpb.RecordCrossingsRequest(records=msg.records, source=msg.source,
                                               operator=ident.name)
        facts.update(records=len(msg.records))
        new, dup = await ops.writer.run_in_batch(lambda: record_crossings(
            ops.crossings, ops.audit_log, req, country=ops.country, now_ms=ops.clock_ms()))
        facts.update(recorded=new + dup, duplicates=dup)
        return lpb.StoreCrossingsResponse(recorded=new + dup, duplicates=dup)

    async def _send_followup(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        ops = self.ops
        if msg.lookup_digest and len(msg.lookup_digest) != 32:
            raise InvalidInput("lookup_digest is a SHA-256 digest (32 bytes)",
                               reason="bad_digest")
        ctx = ops.context(ident.name, *_ctx_args(msg.context))
        peer = ops.peer(msg.peer)
        facts.update(peer=peer, purpose=ctx.purpose, fields=sorted(msg.fields))
        status = await ops.send_followup(peer, ctx, reference=msg.reference,
                                         lookup_digest=bytes(msg.lookup_digest),
                                         item_index=msg.item_index, fields=list(msg.fields))
        facts["followup_id"] = status.followup_id
        return lpb.SendFollowUpResponse(followup=lpb.SentFollowUp(
            followup_id=status.followup_id, peer=peer, state=status.state,
            deadline_ms=status.deadline_ms))

    async def _poll_followup(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        ops = self.ops
        peer = ops.peer(msg.peer)
        facts.update(peer=peer, followup_id=msg.followup_id[:64])
        sent = await ops._sent(peer, msg.followup_id)
        ctx = ops.context(ident.name, *self._filing_ctx(msg.context, sent))
        answer = await ops.poll_followup(peer, ctx, msg.followup_id)
        facts["state"] = answer.status.state
        return lpb.PollFollowUpResponse(followup=_sent_pb(peer, answer))

    async def _await_followup(self, ident: Identity, msg: Any,
                              facts: dict[str, Any]) -> AsyncIterator[Any]:
        ops = self.ops
        peer = ops.peer(msg.peer)
        timeout = msg.timeout_s or 600
        if timeout > 600:
            raise InvalidInput("a watch lasts at most 600 s", reason="bad_deadline")
        facts.update(peer=peer, followup_id=msg.followup_id[:64])
        sent = await ops._sent(peer, msg.followup_id)
        ctx = ops.context(ident.name, *self._filing_ctx(msg.context, sent))
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        done = object()

        def pump() -> None:
            try:
                for answer in ops.watch_followup(peer, ctx, sent, float(timeout)):
                    loop.call_soon_threadsafe(queue.put_nowait, answer)
            except BaseException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            loop.call_soon_threadsafe(queue.put_nowait, done)

        task = loop.run_in_executor(ops._pool, pump)
        try:
            while True:
                item = await queue.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    if isinstance(item, grpc.RpcError):
                        raise EnvironmentFault("the owner's watch ended", reason="watch_ended")
                    raise item
                facts["state"] = item.status.state
                yield lpb.AwaitFollowUpResponse(followup=_sent_pb(peer, item))
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), 0.1)

    @staticmethod
    def _filing_ctx(given: Any, sent: Any) -> tuple[str, str, str]:
        """A poll or watch asks under the filing's purpose, legal basis and case, each unless
        the caller names it."""
        return (given.purpose or sent.purpose, given.legal_basis or sent.legal_basis,
                given.case_ref or sent.case_ref)

    async def _desk_list(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        rows = await self.ops.desk_list(msg.state)
        facts.update(state=msg.state, followups=len(rows))
        return lpb.ListDeskFollowUpsResponse(followups=[_desk_pb(r, p) for r, p in rows])

    async def _desk_show(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        facts.update(followup_id=msg.followup_id[:64])
        row, pending = await self.ops.desk_show(msg.followup_id)
        facts.update(state=row.state)
        return lpb.ShowDeskFollowUpResponse(followup=_desk_pb(row, pending))

    async def _desk_approve(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        facts.update(followup_id=msg.followup_id[:64], fields=sorted(msg.fields))
        row, pending = await self.ops.desk_approve(msg.followup_id, list(msg.fields),
                                                   ident.name)
        facts.update(state=row.state, confirmation_pending=pending is not None)
        return lpb.ApproveFollowUpResponse(followup=_desk_pb(row, pending),
                                           confirmation_pending=pending is not None)

    async def _desk_deny(self, ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        facts.update(followup_id=msg.followup_id[:64])
        row = await self.ops.desk_deny(msg.followup_id, msg.reason, ident.name)
        facts.update(state=row.state)
        return lpb.DenyFollowUpResponse(followup=_desk_pb(row, None))

    async def invoke(self, ident: Identity, method: str, msg: Any, facts: dict[str, Any]) -> Any:
        """One unary method for another edge of the node (the operator console): the role
        check and the handler exactly as here; the caller audits (``facts``) and answers."""
        m = self._methods[method]
        ident.require(method)
        assert m.unary is not None
        return await m.unary(ident, msg, facts)

    # --- serving -------------------------------------------------------------------------------

    def handler(self) -> grpc.GenericRpcHandler:
        methods = {name: self._streaming(m) if m.stream is not None else self._unary(m)
                   for name, m in self._methods.items()}
        return grpc.method_handlers_generic_handler(wire.LOCAL_API_SERVICE, methods)

    async def start(self) -> None:
        server = grpc.aio.server(options=(
            ("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", _TRANSPORT_MAX),
            ("grpc.max_send_message_length", _TRANSPORT_MAX)))
        server.add_generic_rpc_handlers((self.handler(),))
        if self.health_of is not None:
            from grpc_health.v1 import health_pb2_grpc

            self._health = await self.health_of.mirror_health(("", wire.LOCAL_API_SERVICE))
            health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        s = self.settings
        if s.api_socket is not None:
            path = Path(s.api_socket[len("unix:"):])
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(path.lstat().st_mode):  # left over by a node that crashed
                    path.unlink()
            if self._client_ca is not None:
                server.add_secure_port(s.api_socket, self._credentials())
            else:
                server.add_insecure_port(s.api_socket)
            self.socket_path = path
        if s.api_tcp is not None:
            self.tcp_port = int(server.add_secure_port(s.api_tcp, self._credentials()))
            if self.tcp_port == 0:
                raise OSError(f"cannot listen on {s.api_tcp}")
        await server.start()
        if self.socket_path is not None:
            os.chmod(self.socket_path, 0o600)
        self._server = server
        log.info("local_api_listener", socket=str(self.socket_path or ""),
                 tcp_port=self.tcp_port, client_certificates=self._client_ca is not None,
                 tokens=self._verifier is not None)

    @property
    def health(self) -> Any:
        """This listener's grpc.health.v1 servicer while it serves (None before)."""
        return self._health

    def _credentials(self) -> grpc.ServerCredentials:
        assert self._client_ca is not None
        return grpc.ssl_server_credentials([(self._key, self._cert)],
                                           root_certificates=self._client_ca,
                                           require_client_auth=True)

    async def stop(self, grace: float) -> None:
        if self._health is not None and self.health_of is not None:
            await self._health.enter_graceful_shutdown()
            self.health_of.unmirror_health(self._health)
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)
        self.ops.close()


MAX_BATCH_RECONCILE = 1_000
#: The longest transit a reconciliation allows, as ``bxnode crossings reconcile`` does.
MAX_TRANSIT_HOURS = 31 * 24
MAX_TRANSIT_MS = MAX_TRANSIT_HOURS * 3_600_000
#: Trailers of a call a single peer refused (crossings, follow-ups): the refusal is that
#: peer's, not this node's, and its signed refusal did or did not verify.
REFUSED_BY_KEY = "bxnode-refused-by"
REFUSAL_VERIFIED_KEY = "bxnode-refusal-verified"


def _refused_by(exc: BaseException, facts: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    peer = facts.get("peer")
    if not isinstance(exc, RemoteError) or not isinstance(peer, str) or not peer:
        return ()
    return ((REFUSED_BY_KEY, peer),
            (REFUSAL_VERIFIED_KEY, "true" if exc.refusal_verified else "false"))


def _refused_by_facts(trailers: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    t = dict(trailers)
    if not t:
        return {}
    return {"refused_by": t[REFUSED_BY_KEY], "refusal_verified": t[REFUSAL_VERIFIED_KEY] == "true"}


def _paxlst_bytes(text: str) -> bytes:
    """The message's bytes in the character set its UNB syntax identifier names (UNOC is
    Latin-1, UNOW/UNOY UTF-8, ...), so the parser reads what the airline sent; a character
    that set cannot hold is the parser's ``bad_paxlst`` (encoded as UTF-8 it fails there)."""
    import re

    from node.watchlist.paxlst import _CODECS

    m = re.search(r"UNB.([A-Z]{4})", text[:64])
    codec = _CODECS.get(m.group(1), "utf-8") if m else "utf-8"
    try:
        return text.encode(codec)
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _fan_out_pb(result: FanOutResult) -> Any:
    return lpb.FanOutResult(peers=[_peer_pb(a) for a in result.peers])


def _peer_pb(a: PeerAnswer) -> Any:
    outcome = {"answered": lpb.PEER_OUTCOME_ANSWERED, "refused": lpb.PEER_OUTCOME_REFUSED,
               "unreachable": lpb.PEER_OUTCOME_UNREACHABLE,
               "not_asked": lpb.PEER_OUTCOME_NOT_ASKED,
               "unverified": lpb.PEER_OUTCOME_UNVERIFIED}[a.outcome.value]
    return lpb.PeerResult(peer=a.peer, outcome=outcome,
                          results=[wire.item_result_to_pb(r) for r in a.results],
                          status=a.status, reason=a.reason, refusal_verified=a.refusal_verified,
                          peer_audit_seq=a.peer_audit_seq, request_digest=a.request_digest,
                          hits=a.hits)


def _sent_pb(peer: str, answer: Any) -> Any:
    d = answer.decision
    return lpb.SentFollowUp(followup_id=answer.status.followup_id, peer=peer,
                            state="overdue" if answer.status.overdue and
                            answer.status.state == "pending" else answer.status.state,
                            fields=dict(d.fields) if d is not None else {},
                            reason=d.reason if d is not None else "",
                            deadline_ms=answer.status.deadline_ms)


def _desk_pb(r: FollowUpRow, pending: PendingApproval | None) -> Any:
    state = "overdue" if r.state == "pending" and r.overdue_ms is not None else r.state
    return lpb.DeskFollowUp(
        followup_id=r.id, requester=r.requester, state=state, record_kind=r.record_kind,
        requested=list(r.requested), released=list(r.released), purpose=r.purpose,
        case_ref=r.case_ref, filed_ms=r.filed_ms, deadline_ms=r.deadline_ms,
        decided_by=r.decided_by, approval_pending_by=pending.approved_by if pending else "",
        approval_pending_fields=list(pending.fields) if pending else [],
        hit_reference=r.hit_reference, hit_audit_seq=r.hit_audit_seq,
        hit_item_index=r.hit_item_index, legal_basis=r.legal_basis, operator=r.operator,
        allowed=list(r.allowed), decided_ms=r.decided_ms or 0, deny_reason=r.deny_reason,
        fetched_ms=r.fetched_ms or 0, overdue=r.overdue_ms is not None)


def build_local_api(rt: NodeRuntime, server: NodeServer, *,
                    loop: asyncio.AbstractEventLoop | None = None,
                    dev_plaintext: bool = False) -> LocalApiServer | None:
    """The LocalService for ``rt`` served beside ``server`` (sharing its group commit), or
    None when ``[local]`` configures no way to authenticate a caller."""
    from node.crossings.extension import followup_desk
    from node.crossings.store import CrossingStore
    from node.followup.store import FollowUpStore
    from node.local.peers import ServingPeerClient

    cfg = rt.cfg
    s = cfg.local_api
    if not s.enabled:
        if s.api_socket is not None or s.api_tcp is not None:
            log.info("local_api_off", note="set [local] client_ca or oidc_* to serve the "
                     "LocalService")
        return None
    writer = server.writer
    if writer is None:
        raise ValueError("the LocalService needs the server's group commit (BatchWriter)")
    from node.app import now_ms
    from node.store.keys import check_private_file

    cert_path = s.tls_cert or cfg.tls_cert
    key_path = s.tls_key or cfg.tls_key
    check_private_file(key_path, "local listener TLS key file")
    client_ca = s.client_ca.read_bytes() if s.client_ca is not None else None
    roles = (RoleTable.from_file(s.roles_file) if s.roles_file is not None
             else RoleTable(dict(s.roles)))
    verifier = None
    if s.oidc_jwks is not None:
        verifier = TokenVerifier(
            issuer=s.oidc_issuer, audience=s.oidc_audience,
            jwks=TokenVerifier.load_jwks(s.oidc_jwks), clock_ms=now_ms,
            leeway_s=s.token_leeway_s, **({"algorithms": s.oidc_algorithms}
                                          if s.oidc_algorithms else {}))
    the_loop = loop or asyncio.get_running_loop()
    tls = None if dev_plaintext else rt.tls(cfg)
    client = ServingPeerClient(
        node_id=cfg.node_id, signing_key=rt.signing_key, directory=rt.directory, tls=tls,
        store=rt.store, audit_log=rt.responder.audit_log, writer=writer, loop=the_loop,
        clock_ms=now_ms, dev_plaintext=dev_plaintext)
    client.metrics = rt.metrics  # each peer's last answer and failures (node/observability)
    ops = LocalOps(node_id=cfg.node_id, directory=rt.directory, client=client, writer=writer,
                   desk=followup_desk(rt), crossings=CrossingStore(rt.store),
                   followups=FollowUpStore(rt.store), audit_log=rt.responder.audit_log,
                   policy_dir=cfg.policy_dir, max_batch=cfg.max_batch, country=cfg.country,
                   clock_ms=now_ms, default_deadline_ms=s.fanout_deadline_ms)
    from node.core.signer import secret_material
    from node.watchlist.lifecycle import AlertDesk, alert_pseudonym
    from node.watchlist.service import WatchlistOps

    alerts = WatchlistOps(desk=AlertDesk(db=rt.store, audit=rt.responder.audit_log,
                                         clock_ms=now_ms,
                                         pseudonym=alert_pseudonym(secret_material(rt.signing_key))),
                          writer=writer, clock_ms=now_ms)
    api = LocalApiServer(settings=s, ops=ops, roles=roles, verifier=verifier,
                         server_cert=cert_path.read_bytes(), server_key=key_path.read_bytes(),
                         client_ca=client_ca, clock_ms=now_ms, watchlist=alerts, holds=True)
    api.health_of = server
    return api


async def serve_with_local_api(rt: NodeRuntime, server: NodeServer, listen: str, *,
                               dev_plaintext: bool = False,
                               on_ready: Callable[[int], None] | None = None) -> None:
    """``bxnode serve``: the peer-facing server and the LocalService until SIGTERM/SIGINT;
    the LocalService stops first (its calls may still need the peers and the database)."""
    from node.web.server import start_console

    port = await server.start(listen)
    api = console = None
    try:
        api = build_local_api(rt, server, dev_plaintext=dev_plaintext)
        if api is not None:
            await api.start()
        console = await start_console(rt, api)  # the operator console, when [console] is on
    except BaseException:
        if api is not None:
            await api.stop(0)
        await server.stop(0)
        raise
    log.info("serving", port=port, local_api=api is not None, console=console is not None)
    if on_ready is not None:
        on_ready(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting_down")
    if console is not None:
        await console.stop()
    if api is not None:
        await api.stop(5.0)
    await server.stop()
    log.info("stopped")
