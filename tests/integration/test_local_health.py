"""grpc.health.v1 on the LocalService listener (issue 17 §5): a national system probes it.

A real KAZ-BS (mTLS peer port, SQLCipher file) with its LocalService on the officers' unix
socket (mTLS against the agency CA) and on a TCP address (mTLS), built as ``bxnode serve``
builds it.  Over both transports, with an officer workstation's certificate, Health/Check
answers SERVING for ``""`` and ``bxnode.v1.LocalService`` and NOT_FOUND for a service this
listener does not serve (the peer port's NodeService); a health probe is not a LocalService
call, so it leaves no ``local_call`` entry.  Another process then holds the database file
locked: a lookup's batch cannot commit and both listeners turn NOT_SERVING together with
the peer port, and SERVING again once the lock is released.  When the listener stops, its
health says NOT_SERVING before the socket goes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from node.core.errors import RemoteError
from node.core.model import DocumentQuery, QueryKind
from node.local.server import LocalApiServer
from tests.federation import CTX, Federation, free_port, make_federation
from tests.grpc_clients import health_stub
from tests.integration.local_federation import Officers, add_local_section, start_api, stop_api
from tests.interop.test_reflection_health import LOCKER, poll

pytestmark = pytest.mark.integration

NAMES = ["", "bxnode.v1.LocalService"]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[dict[str, Any]]:
    fed = make_federation(tmp_path, ("KAZ-BS", "KGZ-BS"))
    kaz = fed.dirs["KAZ-BS"]
    toml = kaz / "node.toml"
    text = toml.read_text()
    assert "\n[storage]\n" in text  # a locked file is refused after 1 s, not 5
    toml.write_text(text.replace("\n[storage]\n", "\n[storage]\nbusy_timeout_s = 1\n"))
    officers = Officers(tmp_path / "officers", "KAZ-BS")
    tcp = f"127.0.0.1:{free_port()}"
    add_local_section(kaz, officers, {"kz-0193": ["duty_officer"]}, api_tcp=tcp)
    running = fed.start("KAZ-BS")
    api = start_api(running)
    state = {"fed": fed, "officers": officers, "api": api, "tcp": tcp, "stopped": False}
    try:
        yield state
    finally:
        if not state["stopped"]:
            stop_api(running, api)
        fed.stop_all()


def _channels(s: dict[str, Any]) -> dict[str, grpc.Channel]:
    fed: Federation = s["fed"]
    kaz = fed.dirs["KAZ-BS"]
    cert, key = s["officers"].issue("iamis-post-7")  # a client system's certificate
    creds = grpc.ssl_channel_credentials(root_certificates=(kaz / "ca.crt").read_bytes(),
                                         private_key=key.read_bytes(),
                                         certificate_chain=cert.read_bytes())
    return {
        "socket": grpc.secure_channel(f"unix:{kaz / 'officers.sock'}", creds,
                                      options=(("grpc.ssl_target_name_override",
                                                "localhost"),)),
        "tcp": grpc.secure_channel(s["tcp"], creds),
    }


def _check(ch: grpc.Channel, names: list[str]) -> list[str]:
    out = []
    stub = health_stub(ch)
    for name in names:
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            out.append(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))
        except grpc.RpcError as err:
            out.append(err.code().name)
    return out


def _peer_health(fed: Federation) -> str:
    d = fed.dirs["KGZ-BS"]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{fed.ports['KAZ-BS']}", creds) as ch:
        return _check(ch, [""])[0]


def _every(chs: dict[str, grpc.Channel]) -> Callable[[], dict[str, list[str]]]:
    return lambda: {where: _check(ch, NAMES) for where, ch in chs.items()}


def test_the_local_listener_answers_health_with_the_database(node: dict[str, Any]) -> None:
    fed: Federation = node["fed"]
    kaz = fed.dirs["KAZ-BS"]
    chs = _channels(node)
    every = _every(chs)
    local_calls = len([e for e in fed.audit("KAZ-BS") if e.get("event") == "local_call"])
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(kaz / "node.db")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    client = fed.client("KGZ-BS", store=False)
    try:
        assert every() == {"socket": ["SERVING"] * 2, "tcp": ["SERVING"] * 2}
        for ch in chs.values():  # only this listener's services are known here
            assert _check(ch, ["bxnode.v1.NodeService", "bxnode.v1.NoSuchService"]) == [
                "NOT_FOUND", "NOT_FOUND"]
        # a probe is not a LocalService call: nothing audited
        assert len([e for e in fed.audit("KAZ-BS")
                    if e.get("event") == "local_call"]) == local_calls

        assert locker.stdin is not None and locker.stdout is not None
        locker.stdin.write((kaz / "db.key").read_text().strip() + "\n")
        locker.stdin.flush()
        assert locker.stdout.readline().strip() == "locked"
        request = client.build(CTX, QueryKind.DOCUMENT,
                               [DocumentQuery(number="N1122334", issuing_state="KAZ")])
        with pytest.raises(RemoteError) as err:  # its batch cannot commit
            client.send("KAZ-BS", request, expected_items=1)
        assert (err.value.status, err.value.reason) == ("UNAVAILABLE", "audit_unavailable")
        poll(lambda: every() == {"socket": ["NOT_SERVING"] * 2, "tcp": ["NOT_SERVING"] * 2},
             timeout=10, what="the local listener NOT_SERVING while the database is locked")
        assert _peer_health(fed) == "NOT_SERVING"  # together with the peer port

        locker.stdin.write("release\n")
        locker.stdin.flush()
        assert locker.wait(10) == 0
        poll(lambda: every() == {"socket": ["SERVING"] * 2, "tcp": ["SERVING"] * 2},
             timeout=10, what="the local listener SERVING once the database answers")
        assert _peer_health(fed) == "SERVING"
    finally:
        if locker.poll() is None:
            locker.kill()
            locker.wait(5)
        client.close()
        for ch in chs.values():
            ch.close()


def test_a_stopping_listener_says_not_serving(node: dict[str, Any]) -> None:
    import asyncio

    fed: Federation = node["fed"]
    api: LocalApiServer = node["api"]
    running = fed.nodes["KAZ-BS"]
    chs = _channels(node)
    try:
        assert _every(chs)() == {"socket": ["SERVING"] * 2, "tcp": ["SERVING"] * 2}
        health = api.health
        assert health is not None
        stop_api(running, api)
        node["stopped"] = True

        async def status() -> list[int]:
            class Ctx:
                async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
                    raise AssertionError(code)

            return [(await health.Check(health_pb2.HealthCheckRequest(service=n), Ctx())).status
                    for n in NAMES]

        # the servicer it served said NOT_SERVING before the server went; the peer port
        # no longer feeds it, and it is gone with the socket
        assert asyncio.run_coroutine_threadsafe(status(), running.loop).result(10) == [
            health_pb2.HealthCheckResponse.NOT_SERVING] * 2
        assert health not in [m[0] for m in running.server._health_mirrors]
        assert not (fed.dirs["KAZ-BS"] / "officers.sock").exists()
        assert _peer_health(fed) == "SERVING"
    finally:
        for ch in chs.values():
            ch.close()
