"""One way to open a gRPC channel to a peer: mutual TLS with this node's certificate.

A channel goes to one address.  Calls that should survive a dead address go through
:mod:`node.client.failover` (the peer client, the registry fetcher), which opens one channel
per address with this function.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from node.core import limits
from node.core.errors import ConfigError
from node.federation.pki import TlsMaterial

__all__ = ["open_channel"]


def open_channel(endpoint: str | Sequence[str], tls: TlsMaterial | None, *,
                 max_message: int = limits.MAX_REQUEST_BYTES) -> grpc.Channel:
    """A channel to ``endpoint``; plaintext only when ``tls`` is None (development).

    Given a member's address list, the channel goes to the primary (the first) only.
    """
    if not isinstance(endpoint, str):
        if not endpoint:
            raise ConfigError("the member lists no address to call", reason="no_endpoint")
        endpoint = endpoint[0]
    opts = [("grpc.max_receive_message_length", max_message),
            ("grpc.max_send_message_length", max_message)]
    if tls is None:
        return grpc.insecure_channel(endpoint, options=opts)
    creds = grpc.ssl_channel_credentials(root_certificates=tls.ca, private_key=tls.key,
                                         certificate_chain=tls.cert)
    return grpc.secure_channel(endpoint, creds, options=opts)
