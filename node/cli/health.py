"""``bxnode health``: ask this node's own server whether it is SERVING (gRPC health, v1).

For container probes and load-balancer checks.  The peer port requires a client
certificate (mutual TLS), so a plain gRPC probe (Kubernetes ``grpc:``) cannot reach it,
and a second, plaintext health-only port would be an unauthenticated listener on the
pod's address.  This command instead calls ``grpc.health.v1.Health/Check`` on the node's
own listener with the node's own certificate and key from ``node.toml`` (its own CA
roots verify the server), so the probe exercises the very TLS path peers use: an expired
or mismatched certificate fails the probe.

The address is ``127.0.0.1`` and the port the server reported in ``serve.port`` (or the
port of ``[server] listen``); the TLS name checked is the first subject alternative name
of the node's certificate.  Exit 0 when SERVING, 1 otherwise, with one line.  With
``--alive`` (liveness) any answer counts, NOT_SERVING too: a node whose database is
unreachable is alive, and restarting it would not bring the database back.
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path
from typing import Any

from node.cli.main import CliError, _config, _emit, _node_dir, add_command

__all__ = ["register"]

#: The longest a probe may wait for the answer (seconds): probes have their own timeouts.
MAX_TIMEOUT_S = 60.0


def local_address(listen: str, node_dir: Path) -> str:
    """``127.0.0.1:PORT`` for a server listening on ``listen`` (any host, or the port file)."""
    port_file = node_dir / "serve.port"
    if port_file.is_file():
        text = port_file.read_text().strip()
        if text.isdigit():
            return f"127.0.0.1:{int(text)}"
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) == 0:
        raise CliError(f"cannot tell the server's port from listen = {listen!r}; "
                       "pass --address HOST:PORT")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104  (the wildcard: ask over loopback)
        host = "127.0.0.1"
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"{host}:{int(port)}"


def certificate_name(cert_pem: bytes) -> str:
    """The first DNS name (else IP address) of the certificate's subject alternative names."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CliError("the node's TLS certificate has no subject alternative name") from None
    dns = san.get_values_for_type(x509.DNSName)
    if dns:
        return str(dns[0])
    ips = san.get_values_for_type(x509.IPAddress)
    if ips:
        return str(ips[0])
    raise CliError("the node's TLS certificate names no host or address")


def check(*, address: str, cert: bytes, key: bytes, ca: bytes, service: str,
          timeout_s: float) -> str:
    """The health status name the server at ``address`` gives ``service`` (mutual TLS), or
    ``call failed: CODE`` when the call itself fails (no server, TLS refused, unknown
    service: ``NOT_FOUND``)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                         certificate_chain=cert)
    options = [("grpc.ssl_target_name_override", certificate_name(cert))]
    with grpc.secure_channel(address, creds, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(  # type: ignore[attr-defined]  # stubs: HealthStub has no methods
                health_pb2.HealthCheckRequest(service=service),
                timeout=timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            return f"call failed: {code.name if code is not None else 'UNKNOWN'}"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def cmd_health(args: argparse.Namespace) -> int:
    from node.federation.pki import TlsMaterial

    if not 0 < args.timeout <= MAX_TIMEOUT_S:
        raise CliError(f"--timeout must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds")
    cfg = _config(args)
    address = args.address or local_address(cfg.listen, _node_dir(args))
    tls = TlsMaterial.from_files(cert=cfg.tls_cert, key=cfg.tls_key, ca=cfg.tls_ca)
    status = check(address=address, cert=tls.cert, key=tls.key, ca=tls.ca,
                   service=args.service, timeout_s=args.timeout)
    answered = status in ("SERVING", "NOT_SERVING")
    ok = status == "SERVING" or (args.alive and answered)
    _emit(args, {"address": address, "service": args.service, "status": status, "ok": ok},
          f"{address} {args.service or '(server)'}: {status}")
    return 0 if ok else 1


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    sp = add_command(sub, "health", cmd_health,
                     "ask this node's own server over mTLS whether it is SERVING "
                     "(container probes)", common)
    sp.add_argument("--address", help="HOST:PORT (default: 127.0.0.1 and the serving port)")
    sp.add_argument("--service", default="",
                    help="the service to ask about (default: the whole server)")
    sp.add_argument("--alive", action="store_true",
                    help="liveness: any answer, NOT_SERVING too, counts (exit 0)")
    sp.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
