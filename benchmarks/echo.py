"""The baseline: a bare grpc.aio unary echo server, no signature, policy or audit.

``python -m benchmarks.echo PORTFILE`` serves ``/bench.Echo/Echo`` on
127.0.0.1 (a free port, written to PORTFILE), over the same mTLS as the node when
``--tls CERT KEY CA`` is given, until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import grpc


async def serve(port_file: Path, tls: tuple[Path, Path, Path] | None) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])

    async def echo(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return raw[:64]

    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}),))
    if tls:
        cert, key, ca = (p.read_bytes() for p in tls)
        creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                            require_client_auth=True)
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    tmp = port_file.with_suffix(".tmp")  # whole, then renamed: the bench reads it at once
    tmp.write_text(str(port))
    tmp.replace(port_file)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0.5)


def main() -> None:
    tls = None
    if len(sys.argv) >= 6 and sys.argv[2] == "--tls":
        tls = (Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
    asyncio.run(serve(Path(sys.argv[1]), tls))


if __name__ == "__main__":
    main()
