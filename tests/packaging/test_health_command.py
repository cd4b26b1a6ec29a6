"""``bxnode health`` (the container probes' command) where no server answers, and how it
finds the server's address and TLS name."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from node.cli.health import certificate_name, local_address
from node.cli.main import main as bxnode
from tests.packaging._common import ROOT


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    d = tmp_path / "kaz"
    assert bxnode(["init", "--node-dir", str(d), "--node-id", "KAZ-BS", "--country", "KAZ",
                   "--dev", "--dev-keys", str(ROOT / "keys/dev/kaz"), "--listen",
                   "127.0.0.1:0", "--members", str(ROOT / "keys/dev/members.json"),
                   "--policy-dir", str(ROOT / "policies")]) == 0
    return d


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_server_fails_the_probe_and_the_liveness_probe(
        node_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    port = closed_port()
    for alive in ([], ["--alive"]):
        code = bxnode(["health", "--node-dir", str(node_dir), "--json", "--timeout", "2",
                       "--address", f"127.0.0.1:{port}", *alive])
        assert code == 1
        assert json.loads(capsys.readouterr().out) == {
            "address": f"127.0.0.1:{port}", "service": "", "ok": False,
            "status": "call failed: UNAVAILABLE"}


def test_timeout_is_bounded(node_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert bxnode(["health", "--node-dir", str(node_dir), "--timeout", "61"]) == 1
    assert capsys.readouterr().err == (
        "bxnode: --timeout must be more than 0 and at most 60 seconds\n")


def test_address_from_listen_and_the_port_file(tmp_path: Path) -> None:
    assert local_address("0.0.0.0:50051", tmp_path) == "127.0.0.1:50051"
    assert local_address("[::]:50051", tmp_path) == "127.0.0.1:50051"
    assert local_address("[::1]:7000", tmp_path) == "[::1]:7000"
    assert local_address("10.0.0.5:50051", tmp_path) == "10.0.0.5:50051"
    (tmp_path / "serve.port").write_text("41234\n")
    assert local_address("127.0.0.1:0", tmp_path) == "127.0.0.1:41234"


def test_listen_port_zero_without_a_port_file_is_refused(tmp_path: Path) -> None:
    from node.cli.main import CliError

    with pytest.raises(CliError, match=r"^cannot tell the server's port from listen = "
                                       r"'127.0.0.1:0'; pass --address HOST:PORT$"):
        local_address("127.0.0.1:0", tmp_path)


def test_tls_name_is_the_certificate_s_first_dns_name() -> None:
    assert certificate_name((ROOT / "keys/dev/kaz/tls.crt").read_bytes()) == "localhost"
