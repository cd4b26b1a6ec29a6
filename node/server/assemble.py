"""Build the gRPC server for a node with every service it offers.

Each capability adds its signed methods and extra handlers here, in one place,
so that ``bxnode serve``, the tests and the benchmarks run the same server.
"""

from __future__ import annotations

from node.app import NodeRuntime
from node.federation.pki import TlsMaterial
from node.server.grpc_server import NodeServer

__all__ = ["build_server"]


def build_server(rt: NodeRuntime, *, tls: TlsMaterial | None,
                 dev_plaintext: bool = False) -> NodeServer:
    return NodeServer(responder=rt.responder, tls=tls, dev_plaintext=dev_plaintext)
