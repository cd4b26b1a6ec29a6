"""Fetching registry documents from peers over mTLS (``RegistryService.GetRegistry``).

The fetched bytes are not trusted: :class:`~node.federation.registry_keeper.RegistryKeeper`
verifies them against the version this node trusts.  A peer's addresses are tried in order
(:mod:`node.client.failover`); when none answers the error is :class:`EnvironmentFault`
(``peer_unavailable``); a peer without the version asked for answers NOT_FOUND
(``registry_version_unknown``).
"""

from __future__ import annotations

import threading

import grpc

from node.client.channel import open_channel
from node.client.failover import Refused, prefer, status_of, try_in_order
from node.core.errors import EnvironmentFault
from node.federation.pki import TlsMaterial
from node.federation.registry import MAX_REGISTRY_BYTES, NodeEntry
from node.wire import registry as wire

__all__ = ["GrpcRegistryFetcher", "RegistryVersionUnknown"]

#: Room for the document plus the message framing; the parser bounds the document itself.
_MAX_RECEIVE = MAX_REGISTRY_BYTES + 64 * 1024


class RegistryVersionUnknown(EnvironmentFault):
    """The peer never applied the version asked for (it answered NOT_FOUND): kept as
    NOT_FOUND/registry_version_unknown, the status that code is registered with."""

    status = "NOT_FOUND"
    default_reason = "registry_version_unknown"


class GrpcRegistryFetcher:
    def __init__(self, *, tls: TlsMaterial | None, timeout_s: float = 10.0,
                 dev_plaintext: bool = False) -> None:
        if tls is None and not dev_plaintext:
            raise ValueError("a fetcher without TLS needs dev_plaintext=True")
        self._tls = tls
        self._timeout = timeout_s
        self._channels: dict[str, grpc.Channel] = {}
        self._last_good: dict[str, str] = {}
        self._lock = threading.Lock()

    def _channel(self, endpoint: str) -> grpc.Channel:
        with self._lock:
            ch = self._channels.get(endpoint)
            if ch is None:
                ch = open_channel(endpoint, self._tls, max_message=_MAX_RECEIVE)
                self._channels[endpoint] = ch
            return ch

    def fetch(self, peer: NodeEntry, version: int) -> bytes:
        """Version ``version`` (0: the current one) from ``peer``, trying its addresses in
        order.  GetRegistry is an unsigned read, so the same request may go to the next
        address after a deadline too (``resend_safe``)."""
        def send(address: str, request: bytes, timeout: float) -> bytes:
            call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = self._channel(
                address).unary_unary(wire.GET_REGISTRY_METHOD)
            return call(request, timeout=timeout)

        with self._lock:
            addresses = prefer(peer.endpoint, self._last_good.get(peer.node_id))
        out = try_in_order(addresses, wire.encode_get_request(version), send,
                           peer=peer.node_id, deadline_s=self._timeout, renew=None,
                           resend_safe=True)
        if isinstance(out, Refused):
            status, _ = status_of(out.error)
            if status == "NOT_FOUND":
                raise RegistryVersionUnknown(f"registry from {peer.node_id}: not_found") from None
            raise EnvironmentFault(f"registry from {peer.node_id}: {status.lower()}",
                                   reason="peer_unavailable") from None
        with self._lock:
            self._last_good[peer.node_id] = out.address
        return wire.decode_get_response(out.value)

    def close(self) -> None:
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()
