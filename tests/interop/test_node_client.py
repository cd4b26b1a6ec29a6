"""A Node.js client, written only from proto/ and the README, against a real `bxnode serve`.

tests/interop/node/client.mjs (@grpc/grpc-js, @grpc/proto-loader and protobufjs, pinned by
its package-lock.json; installed by scripts/ensure-node.sh, which `make test` runs) checks
health, reflection v1, one signed lookup with its answer verified and one refusal (a
replay) read from ``bxnode-reason`` and from ``grpc-status-details-bin``; this test runs it
over mTLS against KAZ-BS served by ``bxnode serve`` and asserts its exact output, then that
KAZ-BS audited both calls.  Where node or the packages cannot be had the test is skipped
with one line (``BXNODE_REQUIRE_NODE=1`` makes that a failure, for a CI that must run it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.federation import CTX, ROOT, Federation, make_federation
from tests.waiting import until_file

pytestmark = pytest.mark.integration

CLIENT_DIR = ROOT / "tests" / "interop" / "node"


def _unavailable(why: str) -> None:
    message = f"Node.js client test: {why}"
    if os.environ.get("BXNODE_REQUIRE_NODE") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def node_bin() -> str:
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed (bash scripts/ensure-node.sh installs it as root)")
    assert node is not None
    if not (CLIENT_DIR / "node_modules" / "@grpc" / "grpc-js" / "package.json").exists():
        _unavailable("its npm packages are not installed (bash scripts/ensure-node.sh)")
    return node


def _bxnode() -> list[str]:
    script = Path(sys.executable).parent / "bxnode"
    return [str(script)] if script.exists() else [sys.executable, "-m", "node.cli.main"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Federation, int]]:
    """KAZ-BS under ``bxnode serve`` (a process of its own); KGZ-BS's files for the client."""
    fed = make_federation(tmp_path, ("KAZ-BS", "KGZ-BS"))
    kaz = fed.dirs["KAZ-BS"]
    proc = subprocess.Popen([*_bxnode(), "serve", "--node-dir", str(kaz)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def failed() -> str:
            proc.kill()
            return f"bxnode serve did not start: {proc.communicate()[1]}"

        until_file(kaz / "serve.port", proc, timeout=30, on_fail=failed)
        yield fed, int((kaz / "serve.port").read_text())
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


def test_node_js_client_checks_health_reflection_a_lookup_and_a_refusal(
        node_bin: str, served: tuple[Federation, int]) -> None:
    fed, port = served
    done = run_client(node_bin, fed, port, fed.root / "members.json")
    assert (done.returncode, done.stderr) == (0, "")
    kaz_key = _key_id(fed, "KAZ-BS")
    assert done.stdout.splitlines() == [
        'health "": SERVING',
        'health "bxnode.v1.NodeService": SERVING',
        "reflection v1 services: bxnode.v1.AuditService bxnode.v1.AuditorService "
        "bxnode.v1.CrossingService bxnode.v1.FollowUpService bxnode.v1.NodeService "
        "bxnode.v1.WitnessService grpc.health.v1.Health grpc.reflection.v1.ServerReflection "
        "grpc.reflection.v1alpha.ServerReflection",
        "reflection v1 NodeService.Lookup: LookupRequest -> LookupResponse (1 file(s))",
        f"lookup KAZ-BS: signature verified (key {kaz_key}), bound to the request digest",
        "lookup item 0: OUTCOME_HIT reference=KAZ-SLTD-2025-004410 "
        "action=ACTION_CODE_SEIZE_DOCUMENT contact=KAZ-BS desk",
        "refusal: UNAUTHENTICATED bxnode-reason=replayed_nonce ErrorInfo.reason=replayed_nonce "
        "domain=bxnode metadata=signedRefusal=bxnode-refusal-bin",
        "signed refusal: signature verified, bound to the request digest, "
        "UNAUTHENTICATED/replayed_nonce",
    ]
    lookups = [(e["requester"], e["outcome"], e.get("reason"))
               for e in fed.audit("KAZ-BS") if e.get("case_ref") == CTX.case_ref]
    assert lookups == [("KGZ-BS", "answered", None), ("KGZ-BS", "rejected", "replayed_nonce")]


def test_the_client_refuses_an_answer_it_cannot_verify(
        node_bin: str, served: tuple[Federation, int], tmp_path: Path) -> None:
    """The client's checks can fail: with KAZ-BS's key replaced by UZB-BS's in its members
    file, the answer's key id is no key of KAZ-BS's and the client stops there."""
    fed, port = served
    members = json.loads((fed.root / "members.json").read_text())
    uzb = json.loads((ROOT / "keys" / "dev" / "members.json").read_text())
    [uzb_entry] = [m for m in uzb["members"] if m["node_id"] == "UZB-BS"]
    for m in members["members"]:
        if m["node_id"] == "KAZ-BS":
            m["signing_keys"] = uzb_entry["signing_keys"]
    (tmp_path / "forged-members.json").write_text(json.dumps(members))
    done = run_client(node_bin, fed, port, tmp_path / "forged-members.json")
    assert (done.returncode, done.stdout.count("\n"), done.stderr) == (
        1, 4, f"FAILED: key id {_key_id(fed, 'KAZ-BS')} is not one of KAZ-BS's keys\n")


def run_client(node_bin: str, fed: Federation, port: int,
               members: Path) -> subprocess.CompletedProcess[str]:
    """client.mjs as KGZ-BS asking KAZ-BS for a document on its watchlist."""
    kgz = fed.dirs["KGZ-BS"]
    return subprocess.run(
        [node_bin, "client.mjs", "--address", f"127.0.0.1:{port}",
         "--ca", str(kgz / "ca.crt"), "--cert", str(kgz / "tls.crt"),
         "--key", str(kgz / "tls.key"), "--signing-key", str(kgz / "signing.key"),
         "--node-id", "KGZ-BS", "--members", str(members),
         "--responder", "KAZ-BS", "--proto-dir", str(ROOT / "proto"),
         "--document", "N1122334:KAZ:P", "--operator", CTX.operator,
         "--purpose", CTX.purpose, "--legal-basis", CTX.legal_basis or "",
         "--case-ref", CTX.case_ref, "--tls-name", "localhost"],
        cwd=CLIENT_DIR, capture_output=True, text=True, timeout=60)


def _key_id(fed: Federation, node_id: str) -> str:
    from node.federation.members_file import load_members

    [key] = load_members(fed.root / "members.json").member(node_id).keys
    return str(key.key_id)
