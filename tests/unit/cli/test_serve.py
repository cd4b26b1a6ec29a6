"""``bxnode serve``: a real node in a subprocess, probed over mTLS, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from tests.federation import ROOT
from tests.grpc_clients import health_stub, reflection_stub
from tests.unit.cli._support import Bx, assert_one_sentence
from tests.waiting import until

pytestmark = pytest.mark.integration


def test_dev_plaintext_is_refused_outside_dev_mode(node: Path, bx: Bx) -> None:
    r = bx("serve", "--node-dir", str(node), "--dev-plaintext")
    assert assert_one_sentence(r) == (
        "bxnode: --dev-plaintext is refused unless the node config sets dev_mode = true")
    assert not (node / "serve.port").exists()


def test_serve_refuses_a_node_whose_key_is_not_in_its_members_file(node: Path, bx: Bx) -> None:
    (node / "members.json").write_text('{"version": 1, "members": []}\n')
    r = bx("serve", "--node-dir", str(node))
    line = assert_one_sentence(r)
    assert line == f"bxnode: node KAZ-BS is not in the members file {node / 'members.json'}"
    assert not (node / "serve.port").exists()


def _wait_for_port(proc: subprocess.Popen[bytes], port_file: Path, timeout: float) -> int:
    def port() -> int | None:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.returncode}, "
                                 f"{proc.stderr.read().decode() if proc.stderr else ''}")
        text = port_file.read_text() if port_file.exists() else ""
        return int(text) if text.endswith("\n") else None

    return until("serve to write serve.port", port, timeout=timeout)


def test_serve_health_reflection_and_sigterm(node: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("BXNODE_DB_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "node.cli.main", "serve", "--node-dir",
                             str(node)], cwd=str(ROOT), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        port = _wait_for_port(proc, node / "serve.port", 30)
        assert port > 0
        creds = grpc.ssl_channel_credentials(
            root_certificates=(node / "ca.crt").read_bytes(),
            private_key=(node / "tls.key").read_bytes(),
            certificate_chain=(node / "tls.crt").read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{port}", creds) as ch:
            health = health_stub(ch)
            for service in ("", "bxnode.v1.NodeService"):
                reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
            refl = reflection_stub(ch)
            [answer] = list(refl.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
            names = {s.name for s in answer.list_services_response.service}
            assert {"bxnode.v1.NodeService", "grpc.health.v1.Health"} <= names
        # a client without a certificate is turned away by mTLS
        anon = grpc.ssl_channel_credentials(root_certificates=(node / "ca.crt").read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{port}", anon) as ch:
            with pytest.raises(grpc.RpcError) as err:
                health_stub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not (node / "serve.port").exists()
        err_text = proc.stderr.read().decode() if proc.stderr else ""
        assert "Traceback" not in err_text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
