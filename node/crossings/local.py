"""The local-only listener: ``LocalCrossingService.RecordCrossings`` for this agency's own systems.

It is a separate gRPC server bound to a unix socket in the node folder (mode 0700,
the socket itself 0600) or to a loopback address, configured as ``[local] listen``.
It is never added to the peer-facing mTLS server, so a peer asking for it there
gets UNIMPLEMENTED.  Calls are not signed: the operating system's file permissions
are the authentication, as for the database key file.

Every call is all or nothing and audited (``crossings_recorded`` or
``crossings_record_refused``), including bytes that do not parse
(INVALID_ARGUMENT/``malformed_request``) and an unexpected error (INTERNAL/
``internal_error``, no detail to the caller, the detail in the error log).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import structlog
from google.protobuf.message import DecodeError

from node.core.errors import BxError, InvalidInput
from node.core.model import validate_id
from node.crossings.importer import make_record
from node.crossings.store import CrossingStore
from node.logging import error_fields
from node.server.errors import abort
from node.wire import crossings as wire
from node.wire.crossings import cpb

__all__ = ["LOCAL_SERVICE", "MAX_LOCAL_RECORDS", "LocalServer", "record_crossings"]

log = structlog.get_logger("bxnode.crossings.local")

LOCAL_SERVICE = cpb.DESCRIPTOR.services_by_name["LocalCrossingService"].full_name
MAX_LOCAL_RECORDS = 10_000


def record_crossings(store: CrossingStore, audit: Any, msg: Any, *, country: str,
                     now_ms: int) -> tuple[int, int]:
    """Validate every record of a RecordCrossingsRequest, then store all or none.

    Raises InvalidInput naming the first bad record (by index); the refusal is audited.
    """
    source = str(msg.source)[:64]
    operator = str(msg.operator)[:64]
    try:
        if len(msg.records) == 0:
            raise InvalidInput("no records", reason="empty_request")
        if len(msg.records) > MAX_LOCAL_RECORDS:
            raise InvalidInput(f"at most {MAX_LOCAL_RECORDS} records per call",
                               reason="batch_too_large")
        if operator:
            validate_id(operator, "operator")
        bmap = store.bcp_map()
        own = {c for c, b in bmap.bcps.items() if b.country == country}
        records = []
        seen: set[str] = set()
        for i, r in enumerate(msg.records):
            try:
                if r.mode not in wire.MODE_FROM_PB:
                    raise InvalidInput("mode must be road, rail, air or foot", reason="bad_mode")
                rec = make_record(
                    record_id=r.record_id, event=r.event, bcp=r.bcp,
                    crossed_at_ms=r.crossed_at_ms, mode=wire.MODE_FROM_PB[r.mode].value,
                    doc_number=r.document.number, doc_state=r.document.issuing_state,
                    doc_type=r.document.document_type, family_name=r.family_name,
                    given_names=r.given_names, dob=r.date_of_birth,
                    nationality=r.nationality, own_bcps=own)
                if rec.record_id in seen:
                    raise InvalidInput(f"record_id {rec.record_id} is sent twice",
                                       reason="duplicate_record")
            except BxError as exc:
                raise type(exc)(f"record {i}: {exc.message}", reason=exc.reason) from None
            seen.add(rec.record_id)
            records.append(rec)
        with store.db.transaction():
            new, dup = store.insert(records, now_ms=now_ms)
            audit.append({"event": "crossings_recorded", "via": "local_grpc", "source": source,
                          "operator": operator, "records": new, "duplicates": dup},
                         time_ms=now_ms)
        return new, dup
    except BxError as exc:
        _audit_refusal(store, audit, exc, source=source, operator=operator,
                      records=len(msg.records), now_ms=now_ms)
        raise
    except Exception as exc:  # a bug or a driver error: nothing stored (rolled back)
        log.error("crossings_record_failed", **error_fields(exc))
        refusal = BxError("internal error")  # INTERNAL/internal_error, no detail given
        _audit_refusal(store, audit, refusal, source=source, operator=operator,
                      records=len(msg.records), now_ms=now_ms)
        raise refusal from None


def _audit_refusal(store: CrossingStore, audit: Any, exc: BxError, *, source: str,
                  operator: str, records: int, now_ms: int) -> None:
    """The ``crossings_record_refused`` entry for a refused call (committed)."""
    with store.db.transaction():
        audit.append({"event": "crossings_record_refused", "via": "local_grpc",
                      "source": source, "operator": operator, "status": exc.status,
                      "reason": exc.reason, "records": records}, time_ms=now_ms)


def _parse_request(store: CrossingStore, audit: Any, raw: bytes, *, now_ms: int) -> Any:
    """The RecordCrossingsRequest in ``raw``; bytes that do not parse are refused
    INVALID_ARGUMENT/``malformed_request``, audited (gRPC's own deserializer answered
    INTERNAL with nothing in the log)."""
    try:
        return cpb.RecordCrossingsRequest.FromString(raw)
    except DecodeError:
        exc = InvalidInput("the request message does not parse", reason="malformed_request")
        _audit_refusal(store, audit, exc, source="", operator="", records=0, now_ms=now_ms)
        raise exc from None


class LocalServer:
    """The local listener.  ``listen`` is ``unix:/abs/path`` or a loopback host:port."""

    def __init__(self, *, listen: str, store: CrossingStore, country: str,
                 clock_ms: Callable[[], int], audit: Any,
                 run: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None) -> None:
        self.listen = listen
        self._run = run
        self._store = store
        self._audit = audit  # the node's audit log (MerkleAuditLog)
        self._country = country
        self._clock_ms = clock_ms
        self._server: grpc.aio.Server | None = None

    def _handler(self) -> grpc.GenericRpcHandler:
        async def record(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            def step() -> tuple[int, int]:
                now_ms = self._clock_ms()
                request = _parse_request(self._store, self._audit, raw, now_ms=now_ms)
                return record_crossings(self._store, self._audit, request,
                                        country=self._country, now_ms=now_ms)

            try:
                new, dup = await self._run(step) if self._run is not None else step()
            except BxError as exc:
                await abort(context, grpc.StatusCode[exc.status], exc.reason,
                            f"{exc.reason}: {exc}")
            except Exception as exc:  # even the refusal's audit entry failed: no detail
                log.error("crossings_record_not_audited", **error_fields(exc))
                await abort(context, grpc.StatusCode.UNAVAILABLE, "audit_unavailable",
                            "audit_unavailable: the call could not be audited; retry")
            log.info("crossings_recorded", records=new, duplicates=dup)
            return cpb.RecordCrossingsResponse(recorded=new + dup, duplicates=dup)

        return grpc.method_handlers_generic_handler(LOCAL_SERVICE, {
            "RecordCrossings": grpc.unary_unary_rpc_method_handler(
                record, response_serializer=cpb.RecordCrossingsResponse.SerializeToString)})

    async def start(self) -> None:
        server = grpc.aio.server(options=(("grpc.so_reuseport", 0),))
        server.add_generic_rpc_handlers((self._handler(),))
        path = Path(self.listen[len("unix:"):]) if self.listen.startswith("unix:") else None
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(path.lstat().st_mode):  # left over by a node that crashed
                    path.unlink()
        if server.add_insecure_port(self.listen) == 0 and path is None:
            raise OSError(f"cannot listen on {self.listen}")
        await server.start()
        if path is not None:
            os.chmod(path, 0o600)
        self._server = server
        log.info("local_listener", listen=self.listen)

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self.listen.startswith("unix:"):
            Path(self.listen[len("unix:"):]).unlink(missing_ok=True)
