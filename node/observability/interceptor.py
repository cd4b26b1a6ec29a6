"""Count every unary call on the peer port, whichever service answers it.

A ``grpc.aio`` server interceptor wraps each method handler the server resolved (so an
unknown method, answered UNIMPLEMENTED by gRPC itself, is never a label), times the call
and, once it ends, reads what was sent: the status code and the ``bxnode-reason`` trailing
metadata of an abort, or OK.  The peer is the member whose TLS client certificate made the
call (node/core/members.py), ``unlisted`` for a certificate no member lists, ``none``
without one (development plaintext); a member without the ``node`` role (an auditor) is
counted as ``auditor``, so no person's identifier becomes a label.  Streaming methods
(reflection, health's Watch) are not counted.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from node.core.members import MemberDirectory
from node.core.metrics import Metrics
from node.server.grpc_server import REASON_KEY, tls_fingerprint

__all__ = ["RequestMetrics"]


class RequestMetrics(grpc.aio.ServerInterceptor):
    def __init__(self, *, metrics: Metrics, directory: MemberDirectory) -> None:
        self._metrics = metrics
        self._directory = directory

    async def intercept_service(
            self, continuation: Callable[[Any], Awaitable[Any]],
            details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        service, _, method = str(details.method).lstrip("/").rpartition("/")
        inner = handler.unary_unary
        observe = self._observe

        if inspect.iscoroutinefunction(inner):
            async def timed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                start, answered = time.perf_counter(), False
                try:
                    reply = await inner(request, context)
                    answered = True
                    return reply
                finally:
                    observe(service, method, context, time.perf_counter() - start, answered)
        else:  # a synchronous handler: gRPC runs it off the loop; so does its wrapper
            def timed(request: Any, context: grpc.ServicerContext) -> Any:  # type: ignore[misc]
                start, answered = time.perf_counter(), False
                try:
                    reply = inner(request, context)
                    answered = True
                    return reply
                finally:
                    observe(service, method, context, time.perf_counter() - start, answered)

        return handler._replace(unary_unary=timed)

    def _observe(self, service: str, method: str, context: Any, seconds: float,
                 answered: bool) -> None:
        try:
            code = context.code()
            if code is None:  # no status set: OK, or gRPC's UNKNOWN for an escaped exception
                outcome = "OK" if answered else "UNKNOWN"
            else:
                outcome = getattr(code, "name", "UNKNOWN")
            trailing = dict(context.trailing_metadata() or ())
            cause = str(trailing.get(REASON_KEY, "")) if outcome != "OK" else ""
            self._metrics.request(service=service, method=method, outcome=outcome,
                                  cause=cause, peer=self._peer(context), seconds=seconds)
        except Exception:  # noqa: S110  # monitoring must never change an answer
            pass

    def _peer(self, context: Any) -> str:
        fp = tls_fingerprint(context)
        if fp is None:
            return "none"
        owner = self._directory.owner_of_tls_cert(fp)
        if owner is None:
            return "unlisted"
        try:
            roles = self._directory.member(owner).roles
        except Exception:
            return "unlisted"
        return owner if "node" in roles else "auditor"
