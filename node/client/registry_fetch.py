"""Fetching registry documents from peers over mTLS (``RegistryService.GetRegistry``).

The fetched bytes are not trusted: :class:`~node.federation.registry_keeper.RegistryKeeper`
verifies them against the version this node trusts.  Transport failures become
:class:`EnvironmentFault` (``peer_unavailable``); a peer without the version asked for
answers NOT_FOUND (``registry_version_unknown``).
"""

from __future__ import annotations

import threading

import grpc

from node.client.channel import open_channel
from node.core.errors import EnvironmentFault
from node.federation.pki import TlsMaterial
from node.federation.registry import MAX_REGISTRY_BYTES, NodeEntry
from node.wire import registry as wire

__all__ = ["GrpcRegistryFetcher"]

#: Room for the document plus the message framing; the parser bounds the document itself.
_MAX_RECEIVE = MAX_REGISTRY_BYTES + 64 * 1024


class GrpcRegistryFetcher:
    def __init__(self, *, tls: TlsMaterial | None, timeout_s: float = 10.0,
                 dev_plaintext: bool = False) -> None:
        if tls is None and not dev_plaintext:
            raise ValueError("a fetcher without TLS needs dev_plaintext=True")
        self._tls = tls
        self._timeout = timeout_s
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def _channel(self, endpoint: str) -> grpc.Channel:
        with self._lock:
            ch = self._channels.get(endpoint)
            if ch is None:
                ch = open_channel(endpoint, self._tls, max_message=_MAX_RECEIVE)
                self._channels[endpoint] = ch
            return ch

    def fetch(self, peer: NodeEntry, version: int) -> bytes:
        call = self._channel(peer.endpoint).unary_unary(wire.GET_REGISTRY_METHOD)
        try:
            raw = call(wire.encode_get_request(version), timeout=self._timeout)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
            reason = ("registry_version_unknown" if code is grpc.StatusCode.NOT_FOUND
                      else "peer_unavailable")
            raise EnvironmentFault(f"registry from {peer.node_id}: {code.name.lower()}",
                                   reason=reason) from None
        return wire.decode_get_response(raw)

    def close(self) -> None:
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()
