"""Why a certificate from another CA cannot be audited (README, "For the national system
integrator"), pinned against the installed grpcio so the statement stays true.

Plain grpc.aio servers on 127.0.0.1 with a test CA; no component of ours is involved, so
nothing is stood in for.  If grpcio ever hands the application a refused certificate, or
a handshake hook that knows the client, these tests fail and the LocalService should
start auditing refused handshakes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from node.federation import pki
from tests.integration.local_federation import pem, pem_key

CA = pki.new_ca("Agency officers CA", "Agency")
OTHER = pki.new_ca("Another CA", "Other")
SERVER_KEY = pki.new_tls_key()
SERVER_CERT = pki.issue_cert(cn="node", org="Border Service", key=SERVER_KEY,
                             hosts=["localhost", "127.0.0.1"], ca=CA)


def _officer(ca: Any) -> tuple[bytes, bytes]:
    key = pki.new_tls_key()
    return pem_key(key), pem(pki.issue_cert(cn="kz-duty", org="Border Service", key=key,
                                            hosts=["kz-duty"], ca=ca))


async def _serve_and_call(creds: grpc.ServerCredentials) -> dict[str, Any]:
    """Call once with an officer certificate from the agency CA, once from another CA."""
    seen: list[Any] = []

    def handler(raw: bytes, context: grpc.ServicerContext) -> bytes:
        seen.append(context.auth_context().get("x509_pem_cert"))
        return b""

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "t.S", {"M": grpc.unary_unary_rpc_method_handler(handler)}),))
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    out: dict[str, Any] = {}
    try:
        for who, ca in (("agency", CA), ("other", OTHER)):
            key, cert = _officer(ca)
            async with grpc.aio.secure_channel(
                    f"127.0.0.1:{port}", grpc.ssl_channel_credentials(pem(CA[1]), key, cert),
                    options=(("grpc.ssl_target_name_override", "localhost"),)) as ch:
                before = len(seen)
                call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary("/t.S/M")
                try:
                    await call(b"", timeout=5)
                    out[who] = ("OK", bool(seen[before]))
                except grpc.aio.AioRpcError as err:
                    out[who] = (err.code().name, len(seen) > before)
    finally:
        await server.stop(0)
    return out


def test_required_client_auth_refuses_another_ca_before_any_handler() -> None:
    creds = grpc.ssl_server_credentials([(pem_key(SERVER_KEY), pem(SERVER_CERT))],
                                        root_certificates=pem(CA[1]), require_client_auth=True)
    got = asyncio.run(_serve_and_call(creds))
    assert got == {"agency": ("OK", True),          # the handler sees the certificate
                   "other": ("UNAVAILABLE", False)}  # no handler ran: nothing to audit


def test_without_required_client_auth_no_certificate_is_requested_at_all() -> None:
    """The only other mode does not ask for a certificate, so it cannot be used to see (and
    audit) one the CA did not issue: even the agency's own officer arrives anonymous."""
    creds = grpc.ssl_server_credentials([(pem_key(SERVER_KEY), pem(SERVER_CERT))],
                                        root_certificates=pem(CA[1]), require_client_auth=False)
    got = asyncio.run(_serve_and_call(creds))
    assert got == {"agency": ("OK", False), "other": ("OK", False)}


def test_the_dynamic_credentials_hook_knows_neither_client_nor_outcome() -> None:
    calls: list[tuple[Any, ...]] = []

    def fetch(*args: Any) -> None:
        calls.append(args)
        return None

    initial = grpc.ssl_server_certificate_configuration(
        [(pem_key(SERVER_KEY), pem(SERVER_CERT))], root_certificates=pem(CA[1]))
    # grpc takes None from the fetcher as "no change"; the stubs want a configuration
    creds = grpc.dynamic_ssl_server_credentials(initial, fetch,  # type: ignore[arg-type]
                                                require_client_authentication=True)
    got = asyncio.run(_serve_and_call(creds))
    assert got == {"agency": ("OK", True), "other": ("UNAVAILABLE", False)}
    assert calls == [(), ()]  # once per connection, before the handshake, with no argument
