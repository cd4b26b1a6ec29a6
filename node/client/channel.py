"""One way to open a gRPC channel to a peer: mutual TLS with this node's certificate."""

from __future__ import annotations

import grpc

from node.core import limits
from node.federation.pki import TlsMaterial

__all__ = ["open_channel"]


def open_channel(endpoint: str, tls: TlsMaterial | None, *,
                 max_message: int = limits.MAX_REQUEST_BYTES) -> grpc.Channel:
    """A channel to ``endpoint``; plaintext only when ``tls`` is None (development)."""
    opts = [("grpc.max_receive_message_length", max_message),
            ("grpc.max_send_message_length", max_message)]
    if tls is None:
        return grpc.insecure_channel(endpoint, options=opts)
    creds = grpc.ssl_channel_credentials(root_certificates=tls.ca, private_key=tls.key,
                                         certificate_chain=tls.cert)
    return grpc.secure_channel(endpoint, creds, options=opts)
