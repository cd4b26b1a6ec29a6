"""Everything issue 3's capabilities add to a node's server, built in one call.

``node/server/assemble.py`` serves a :class:`NodeServerWithLocal` built from
:func:`crossings_extension`: the signed methods ``CrossingService.ConfirmCrossing``,
``FollowUpService.FileFollowUp`` and ``GetFollowUp``, the streaming
``FollowUpService.WatchFollowUp``, and the local-only listener
(``LocalCrossingService``), which is never part of the peer-facing server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from node.crossings.handler import ConfirmCrossingHandler
from node.crossings.local import LocalServer
from node.crossings.policy import CROSSINGS_QUERY
from node.crossings.settings import load_settings
from node.crossings.store import CrossingStore
from node.followup.handler import FOLLOWUP_SERVICE, file_method, get_method, watch_handler
from node.followup.owner import FollowUpDesk
from node.followup.policy import FOLLOWUP_QUERY
from node.followup.store import FollowUpStore
from node.server.grpc_server import NodeServer, SignedMethod
from node.wire.crossings import cpb

if TYPE_CHECKING:
    from node.app import NodeRuntime

__all__ = ["CROSSING_SERVICE", "CrossingsExtension", "NodeServerWithLocal",
           "crossings_extension", "followup_desk"]

CROSSING_SERVICE = cpb.DESCRIPTOR.services_by_name["CrossingService"].full_name
T = TypeVar("T")


class Durability:
    """Runs a store-writing step of a handler that the server's signed-unary path does not
    wrap (the watch stream, the local listener) inside the server's group commit when it
    has one (``NodeServer.writer``): the step's writes are durable before it returns."""

    def __init__(self) -> None:
        self.writer: Any = None

    async def run(self, fn: Callable[[], T]) -> T:
        w = self.writer
        return fn() if w is None else await w.run_in_batch(fn)

    async def read(self, fn: Callable[[], T]) -> T:
        """Read on the database thread (the loop never touches the store)."""
        w = self.writer
        return fn() if w is None else await w.call(fn)


@dataclass(frozen=True, slots=True)
class CrossingsExtension:
    signed_methods: tuple[SignedMethod, ...]
    extra_handlers: tuple[grpc.GenericRpcHandler, ...]
    service_names: tuple[str, ...]
    local: LocalServer | None
    durability: Durability = field(default_factory=Durability)


def followup_desk(rt: NodeRuntime) -> FollowUpDesk:
    settings = load_settings(rt.cfg)
    r = rt.responder
    return FollowUpDesk(node_id=rt.cfg.node_id, store=FollowUpStore(rt.store), policy=rt.policy,
                        directory=rt.directory, sign=r.sign, key_id=r.key_id,
                        deadline_ms=settings.followup_deadline_ms, clock_ms=r.clock_ms,
                        audit=r.audit_log)


def crossings_extension(rt: NodeRuntime, *, dev_plaintext: bool = False) -> CrossingsExtension:
    settings = load_settings(rt.cfg)
    r = rt.responder
    crossings = CrossingStore(rt.store)
    desk = followup_desk(rt)
    for query in (CROSSINGS_QUERY, FOLLOWUP_QUERY):  # compile now, not on the first request
        rt.policy.decide_query(query, {})
    durability = Durability()
    confirm = SignedMethod(CROSSING_SERVICE, "ConfirmCrossing",
                           ConfirmCrossingHandler(r, crossings, country=rt.cfg.country),
                           cpb.ConfirmCrossingRequest, cpb.ConfirmCrossingResponse)
    local = None if settings.local_listen is None else LocalServer(
        listen=settings.local_listen, store=crossings, country=rt.cfg.country,
        clock_ms=r.clock_ms, audit=r.audit_log, run=durability.run)
    return CrossingsExtension(
        signed_methods=(confirm, file_method(r, desk), get_method(r, desk)),
        extra_handlers=(watch_handler(r, desk, dev_plaintext=dev_plaintext,
                                      run=durability.run, read=durability.read),),
        service_names=(CROSSING_SERVICE, FOLLOWUP_SERVICE),
        local=local, durability=durability)


class NodeServerWithLocal(NodeServer):
    """The peer-facing :class:`NodeServer` serving ``ext``'s methods too, plus the local
    listener, started after and stopped before the peer-facing server."""

    def __init__(self, ext: CrossingsExtension, **kwargs: Any) -> None:
        kwargs["signed_methods"] = (*kwargs.get("signed_methods", ()), *ext.signed_methods)
        kwargs["extra_handlers"] = (*kwargs.get("extra_handlers", ()), *ext.extra_handlers)
        kwargs["extra_service_names"] = (*kwargs.get("extra_service_names", ()),
                                         *ext.service_names)
        super().__init__(**kwargs)
        self.crossings = ext
        ext.durability.writer = getattr(self, "writer", None)

    async def start(self, listen: str) -> int:
        port = await super().start(listen)
        if self.crossings.local is not None:
            try:
                await self.crossings.local.start()
            except BaseException:
                await super().stop(0)
                raise
        return port

    async def stop(self, grace: float = 5.0) -> None:
        if self.crossings.local is not None:
            await self.crossings.local.stop(grace)
        await super().stop(grace)
