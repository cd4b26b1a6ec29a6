"""``RegistryService.GetRegistry`` and the registry refresh loop of a serving node.

GetRegistry is not a signed exchange (the document carries its own threshold
signatures); it serves peers only: the caller's mTLS certificate must be listed,
inside its validity window, for a member node that is not revoked.  This check
deliberately ignores the registry's expiry: a peer whose registry expired needs
a newer one most.

The refresh loop runs in the serving event loop: every ``refresh_s`` it offers
the registry file and every peer's newer versions to the keeper (network in a
worker thread, applying on the loop thread, where the responder runs); every
few seconds it reflects the registry's freshness in the health status
(NOT_SERVING once expired beyond the grace period) and logs why.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import structlog

from node.federation.registry_keeper import RefreshReport, RegistryKeeper
from node.logging import error_fields
from node.server.errors import abort
from node.server.grpc_server import tls_fingerprint
from node.wire import registry as wire

T = TypeVar("T")

if TYPE_CHECKING:
    from node.app import NodeRuntime
    from node.server.grpc_server import NodeServer

__all__ = ["SERVICE_NAME", "RegistryParts", "registry_handler", "registry_loop",
           "registry_parts"]

log = structlog.get_logger("bxnode.registry")

SERVICE_NAME = wire.SERVICE_NAME


def _caller(keeper: RegistryKeeper, fingerprint: str, now_ms: int) -> str | None:
    reg = keeper.directory.current
    if reg.is_revoked("tls_cert_sha256", fingerprint):
        return None
    for m in reg.members:
        if reg.is_revoked("node_id", m.node_id):
            continue
        if any(c.sha256 == fingerprint and c.not_before_ms <= now_ms <= c.not_after_ms
               for c in m.tls_certs):
            return m.node_id
    return None


async def _direct(fn: Callable[[], T]) -> T:
    return fn()


def registry_handler(keeper: RegistryKeeper, *, dev_plaintext: bool = False,
                     read: Callable[[Callable[[], Any]], Awaitable[Any]] = _direct,
                     run: Callable[[Callable[[], Any]], Awaitable[Any]] = _direct,
                     edge: Callable[[], NodeServer | None] = lambda: None,
                     ) -> grpc.GenericRpcHandler:
    """``GetRegistry``: served to members only; every call, served or refused, audited.
    Each call first passes the server's per-peer limits (``edge()``, once the server is
    built: :meth:`~node.server.grpc_server.NodeServer.edge`), as every peer-facing call."""

    async def get_registry(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        server = edge()
        if server is None:
            return await serve(raw, context)
        async with server.edge(context, raw, event="registry_served"):
            return await serve(raw, context)

    async def serve(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        fp = None if dev_plaintext else tls_fingerprint(context)
        caller = None if fp is None else _caller(keeper, fp, keeper.now_ms())
        version = -1

        async def refuse(code: grpc.StatusCode, message: str, reason: str) -> None:
            await run(functools.partial(keeper.audit_served, requester=caller or "",
                                        tls_peer=fp or "plaintext", version=version,
                                        outcome="rejected", status=code.name, reason=reason))
            await abort(context, code, reason, message)

        if not dev_plaintext and caller is None:
            await refuse(grpc.StatusCode.PERMISSION_DENIED,
                         "the registry is served to federation members only", "not_a_member")
        try:
            version = wire.decode_get_request(raw)
        except Exception:
            await refuse(grpc.StatusCode.INVALID_ARGUMENT, "malformed request",
                         "malformed_request")
            raise
        doc = await read(functools.partial(keeper.document, version))
        if doc is None:
            await refuse(grpc.StatusCode.NOT_FOUND,
                         f"this node never applied registry version {version}",
                         "registry_version_unknown")
            raise AssertionError("unreachable")
        await run(functools.partial(keeper.audit_served, requester=caller or "",
                                    tls_peer=fp or "plaintext", version=version,
                                    outcome="answered"))
        return wire.encode_get_response(doc, version or keeper.directory.current.version)

    return grpc.method_handlers_generic_handler(
        SERVICE_NAME, {"GetRegistry": grpc.unary_unary_rpc_method_handler(get_registry)})


async def refresh(keeper: RegistryKeeper,
                  run: Callable[[Callable[[], Any]], Awaitable[Any]] = _direct) -> RefreshReport:
    """One refresh: apply a newer registry file, fetch from peers in a worker thread, apply
    what verifies.  Every store step runs through ``run`` (the database thread)."""
    report = RefreshReport()
    if await run(keeper.check_file) is not None:
        report.applied.append(keeper.directory.current.version)
    fetched = await asyncio.to_thread(keeper._fetch_all, report, skip_file=True)
    await run(functools.partial(keeper._apply_fetched, fetched, report))
    return report


async def registry_loop(keeper: RegistryKeeper, *, refresh_s: float,
                        set_serving: Callable[[bool], Awaitable[None]],
                        tick_s: float = 5.0,
                        run: Callable[[Callable[[], Any]], Awaitable[Any]] = _direct) -> None:
    """Refresh every ``refresh_s``; check freshness every ``tick_s``.  Runs until cancelled."""
    state: str | None = None
    next_refresh = time.monotonic() + refresh_s
    while True:
        refreshed = time.monotonic() >= next_refresh
        if refreshed:
            next_refresh = time.monotonic() + refresh_s
            try:
                report = await refresh(keeper, run)
                if report.applied or report.refused:
                    log.info("registry_refreshed", applied=report.applied,
                             refused=report.refused, unreachable=report.unreachable)
            except Exception as exc:  # a failed refresh must not stop the loop
                log.error("registry_refresh_failed", **error_fields(exc))
        status = keeper.directory.status()
        await set_serving(status.serving)  # every tick: idempotent, and wins any start-up race
        if status.state != state or refreshed:  # say why: on each change and each refresh
            if not status.serving:
                log.error("registry_expired", version=status.version, detail=status.message)
            elif status.state == "expired_in_grace":
                log.warning("registry_expired_in_grace", version=status.version,
                            detail=status.message)
            elif state is not None and status.state != state:
                log.info("registry_fresh", version=status.version, detail=status.message)
            state = status.state
        await asyncio.sleep(min(tick_s, refresh_s))


@dataclass
class RegistryParts:
    """What a node with a registry adds to its server: GetRegistry and the refresh loop."""

    keeper: RegistryKeeper
    handlers: tuple[grpc.GenericRpcHandler, ...]
    service_names: tuple[str, ...] = (SERVICE_NAME,)
    background: tuple[Callable[[], Coroutine[Any, Any, None]], ...] = ()
    #: The job a further worker runs instead of ``background`` (see ``build_server``).
    follower: Callable[[], Coroutine[Any, Any, None]] | None = None
    server: NodeServer | None = field(default=None, repr=False)

    def bind(self, server: NodeServer) -> NodeServer:
        self.server = server
        return server


def registry_parts(rt: NodeRuntime, *, dev_plaintext: bool = False) -> RegistryParts | None:
    """The registry's parts for ``build_server``, or None without ``[federation] registry``."""
    keeper = rt.registry
    if keeper is None:
        return None
    async def run(fn: Callable[[], T]) -> T:
        writer = parts.server.writer if parts.server is not None else None
        return fn() if writer is None else await writer.run_in_batch(fn)

    async def read(fn: Callable[[], T]) -> T:
        writer = parts.server.writer if parts.server is not None else None
        return fn() if writer is None else await writer.call(fn)

    parts = RegistryParts(keeper=keeper, handlers=(
        registry_handler(keeper, dev_plaintext=dev_plaintext, read=read, run=run,
                         edge=lambda: parts.server),))

    async def set_serving(serving: bool) -> None:
        server = parts.server
        if server is not None:
            await server.set_condition("registry", serving)

    async def loop() -> None:
        await registry_loop(keeper, refresh_s=rt.cfg.registry_refresh_s,
                            set_serving=set_serving, run=run)

    async def follow() -> None:
        """A further worker: take up the versions the primary applied (already verified,
        in the database), and say NOT_SERVING when the registry expired."""
        while True:
            try:
                trusted = await read(functools.partial(
                    RegistryKeeper.trusted_version, store=rt.store, path=keeper.path))
                if trusted.version > keeper.directory.current.version:
                    keeper.directory.swap(trusted)
                    log.info("registry_followed", version=trusted.version)
            except Exception as exc:  # keep following on the next tick
                log.error("registry_follow_failed", **error_fields(exc))
            await set_serving(keeper.directory.status().serving)
            await asyncio.sleep(5.0)

    parts.background = (loop,)
    parts.follower = follow
    return parts
