"""``bxnode doctor`` against a healthy development node, and with each failure made real:
a 0644 key file, an expired certificate, a wrong database key, a peer down, a broken policy,
a policy without agreements, a clock off (issue 17 §1)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from node.app import now_ms
from node.cli.doctor import run_checks
from node.cli.main import main as bxnode
from tests.federation import Federation, make_federation

pytestmark = pytest.mark.integration

HEALTHY = ["config", "key signing.key", "key tls.key", "key db.key", "database", "certificate",
           "registry", "policy", "peer KGZ-BS", "clock KGZ-BS"]


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    f = make_federation(tmp_path_factory.mktemp("doctor"), node_ids=("KAZ-BS", "KGZ-BS"))
    f.start("KGZ-BS")
    yield f
    f.stop_all()


def _status(node_dir: Path, **kw: object) -> dict[str, tuple[str, str]]:
    return {c.check: (c.status, c.message) for c in run_checks(node_dir, **kw)}  # type: ignore[arg-type]


def _bad(found: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    return {k: v for k, v in found.items() if v[0] != "OK"}


def test_a_healthy_node(fed: Federation, capsys: pytest.CaptureFixture[str]) -> None:
    kaz = fed.dirs["KAZ-BS"]
    found = _status(kaz)
    assert list(found) == HEALTHY and _bad(found) == {}
    assert found["peer KGZ-BS"][1] == (f"reachable at 127.0.0.1:{fed.ports['KGZ-BS']} with a "
                                       "certificate listed for KGZ-BS")
    assert found["clock KGZ-BS"][1].startswith("KGZ-BS's clock is 0.")
    assert found["policy"][1].startswith("it compiles, with ")
    assert bxnode(["doctor", "--node-dir", str(kaz)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in lines] == [f"OK   {c}" for c in HEALTHY]
    assert bxnode(["doctor", "--node-dir", str(kaz), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and [c["check"] for c in doc["checks"]] == HEALTHY
    assert {c["status"] for c in doc["checks"]} == {"OK"}


def test_a_key_file_others_can_read(fed: Federation,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    key = fed.dirs["KAZ-BS"] / "db.key"
    os.chmod(key, 0o644)
    try:
        found = _status(fed.dirs["KAZ-BS"], peers=False)
        assert bxnode(["doctor", "--node-dir", str(fed.dirs["KAZ-BS"]), "--no-peers",
                       "--json"]) == 1
    finally:
        os.chmod(key, 0o600)
    assert found["key db.key"] == ("FAIL", f"the database key file {key} is mode 0644: others "
                                   f"can read it; run 'chmod 600 {key}'")
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    # the database does not open either: the node refuses a key file others can read
    assert [c["check"] for c in doc["checks"] if c["status"] == "FAIL"] == [
        "key db.key", "database"]
    assert found["database"][0] == "FAIL" and found["database"][1].endswith(
        "(insecure_file_mode)")


def test_an_expired_certificate(fed: Federation) -> None:
    kaz = fed.dirs["KAZ-BS"]
    crt = kaz / "tls.crt"
    original = crt.read_bytes()
    old = x509.load_pem_x509_certificate(original)
    key = serialization.load_pem_private_key((kaz / "tls.key").read_bytes(), None)
    expired = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(old.subject)
               .public_key(old.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
               .not_valid_after(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
               .sign(key, hashes.SHA256()))  # type: ignore[arg-type]
    crt.write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    try:
        found = _status(kaz, peers=False)
    finally:
        crt.write_bytes(original)
    assert _bad(found) == {"certificate": (
        "FAIL", "the TLS certificate expired at 2025-01-01 00:00Z; peers refuse the connection")}


def test_a_wrong_database_key(fed: Federation) -> None:
    key = fed.dirs["KAZ-BS"] / "db.key"
    original = key.read_text()
    key.write_text("ab" * 32 + "\n")
    try:
        found = _status(fed.dirs["KAZ-BS"], peers=False)
    finally:
        key.write_text(original)
    status, message = found["database"]
    assert status == "FAIL" and message.endswith("(wrong_db_key)")
    assert list(_bad(found)) == ["database"]


def test_a_broken_policy_and_one_without_agreements(fed: Federation) -> None:
    policies = fed.root / "policies"
    rego = policies / "bxnode" / "lookup.rego"
    data = policies / "data.json"
    rego_text, data_text = rego.read_text(), data.read_text()
    try:
        rego.write_text(rego_text + "\nallow if {\n")
        broken = _status(fed.dirs["KAZ-BS"], peers=False)
        rego.write_text(rego_text)
        doc = json.loads(data_text)
        doc["bxnode"]["agreements"] = [a for a in doc["bxnode"]["agreements"]
                                       if a["responder"] != "KAZ-BS"]
        data.write_text(json.dumps(doc))
        none = _status(fed.dirs["KAZ-BS"], peers=False)
    finally:
        rego.write_text(rego_text)
        data.write_text(data_text)
    assert list(_bad(broken)) == ["policy"] and broken["policy"][0] == "FAIL"
    assert broken["policy"][1].startswith(f"the policy in {policies} does not load: ")
    assert _bad(none) == {"policy": (
        "FAIL", "it compiles, but no agreement names KAZ-BS as the responder: every question "
        "is refused")}


def test_a_clock_off(fed: Federation) -> None:
    kaz = fed.dirs["KAZ-BS"]
    ahead = _status(kaz, clock_ms=lambda: now_ms() + 75_000)  # more than half of 120 s
    assert ahead["clock KGZ-BS"][0] == "WARN"
    assert ahead["clock KGZ-BS"][1].startswith("KGZ-BS's clock is 7")  # 75 s behind ours
    assert "behind ours, more than half of clock_skew_s = 120" in ahead["clock KGZ-BS"][1]
    far = _status(kaz, clock_ms=lambda: now_ms() - 600_000)
    assert far["clock KGZ-BS"] == ("FAIL", "KGZ-BS refuses our requests as stale: the clocks "
                                   "differ by more than 120 s")


def test_a_peer_down(tmp_path: Path) -> None:
    f = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"))
    found = _status(f.dirs["KAZ-BS"])  # KGZ-BS was never started
    assert list(found) == HEALTHY[:-1]  # no clock check without a connection
    status, message = found["peer KGZ-BS"]
    assert status == "FAIL" and message.startswith(
        f"not reachable: 127.0.0.1:{f.ports['KGZ-BS']}: ")
    assert "Connection refused" in message
    assert bxnode(["doctor", "--node-dir", str(f.dirs["KAZ-BS"])]) == 1
