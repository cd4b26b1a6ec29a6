"""``bxnode serve --workers 2``: two serving processes of one node on one port (issue 16).

A real supervisor and its two worker processes on one SQLCipher file, asked over mTLS by
many client connections at once: every request answered, one audit log that verifies, a
replay refused whichever worker sees it, both workers answering, a killed worker
restarted, SIGTERM stopping them all, and a peer's agreed limits held for the node, not
for each worker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from node.core import envelope as env_mod
from node.core.model import DocumentQuery, QueryKind
from node.wire import convert
from node.wire.convert import pb
from node.wire.trailers import trailers
from tests.federation import CTX, ROOT, Federation, make_federation, sample_policy
from tests.waiting import until, until_file

pytestmark = pytest.mark.integration

CONNECTIONS = 24  # SO_REUSEPORT spreads connections: both workers get some (1 - 2**-23)


class Supervisor:
    def __init__(self, node_dir: Path, workers: int) -> None:
        self.dir = node_dir
        (node_dir / "serve.port").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli.main", "serve", "--node-dir", str(node_dir),
             "--workers", str(workers)], cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        until_file(node_dir / "serve.port", self.proc,
                   on_fail=lambda: "node did not start: " + "".join(self.lines[-20:]))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def workers(self) -> list[int]:
        text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(p) for p in text.split()]

    def logged(self, event: str) -> list[dict[str, object]]:
        out = []
        for ln in list(self.lines):
            try:
                rec = json.loads(ln)
            except ValueError:
                continue
            if rec.get("event") == event:
                out.append(rec)
        return out


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    f = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"))
    yield f


def _wire(client: object, number: str) -> bytes:
    env = client.build(CTX, QueryKind.DOCUMENT,  # type: ignore[attr-defined]
                       [DocumentQuery(number=number, issuing_state="KAZ")])
    return bytes(pb.LookupRequest(envelope=convert.envelope_to_pb(env)).SerializeToString())


def _call(fed: Federation, raw: bytes) -> tuple[grpc.StatusCode, str]:
    d = fed.dirs["KGZ-BS"]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{fed.ports['KAZ-BS']}", creds) as ch:
        lookup: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(
            "/bxnode.v1.NodeService/Lookup")
        try:
            lookup(raw, timeout=20)
        except grpc.RpcError as err:
            return err.code(), str(trailers(err).get("bxnode-reason", ""))
    return grpc.StatusCode.OK, ""


def _all_at_once(fed: Federation, requests: list[bytes]) -> list[tuple[grpc.StatusCode, str]]:
    """Every request at once, each on a connection of its own (SO_REUSEPORT spreads
    connections over the workers): their outcomes, in order."""
    results: list[tuple[grpc.StatusCode, str]] = [(grpc.StatusCode.UNKNOWN, "")] * len(
        requests)

    def one(i: int) -> None:
        results[i] = _call(fed, requests[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_two_workers_answer_as_one_node(fed: Federation) -> None:
    sup = Supervisor(fed.dirs["KAZ-BS"], workers=2)
    client = fed.client("KGZ-BS", store=False)
    try:
        assert len(sup.workers()) == 2
        requests = [_wire(client, f"N{i:07d}") for i in range(CONNECTIONS * 2)]
        results = _all_at_once(fed, requests)
        assert results == [(grpc.StatusCode.OK, "")] * len(requests)
        # a replay is refused whichever worker it reaches: the nonce table is shared
        assert [_call(fed, requests[0]) for _ in range(3)] == [
            (grpc.StatusCode.UNAUTHENTICATED, "replayed_nonce")] * 3
        served_by = {rec.get("worker") for rec in sup.logged("lookup")
                     if rec.get("outcome") == "answered"}
        assert served_by == {0, 1}
        # a worker that dies is started again
        victim = sup.workers()[1]
        os.kill(victim, signal.SIGKILL)
        until("the dead worker replaced",
              lambda: victim not in sup.workers() and len(sup.workers()) == 2)
        assert sup.logged("worker_died")
    finally:
        client.close()
        sup.proc.send_signal(signal.SIGTERM)
        assert sup.proc.wait(60) == 0
    assert not (fed.dirs["KAZ-BS"] / "serve.port").exists()
    # one log, in one total order, whichever worker wrote each entry
    r = subprocess.run([sys.executable, "-m", "node.cli.main", "audit", "verify", "--node-dir",
                        str(fed.dirs["KAZ-BS"]), "--json"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    lookups = [e for e in fed.audit("KAZ-BS") if e.get("event") == "lookup"]
    assert [e["outcome"] for e in lookups].count("answered") == len(requests)
    assert report["ok"] is True and report["entries"] >= len(requests) + 3
    digests = {e["request_digest"] for e in lookups if e["outcome"] == "answered"}
    assert len(digests) == len(requests)
    assert env_mod.REQUEST_TYPE  # the requests were signed lookups


def test_a_peers_agreed_burst_is_the_nodes_not_each_workers(tmp_path: Path) -> None:
    """KAZ-BS agrees a burst of 6 and next to no refill with KGZ-BS.  24 calls, each on a
    connection of its own so the kernel spreads them over both workers: exactly 6 are
    answered and 18 refused rate_limited, every refusal counted in the audit log.  (With a
    bucket per worker, each worker admitted 6: up to 12.)"""
    data = sample_policy()
    for a in data["bxnode"]["agreements"]:
        if (a["responder"], a["requester"]) == ("KAZ-BS", "KGZ-BS"):
            a.update(rate_per_s=0.0001, burst=6, max_in_flight=64)
    f = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"), policy_data=data)
    node_dir = f.dirs["KAZ-BS"]
    sup = Supervisor(node_dir, workers=2)
    client = f.client("KGZ-BS", store=False)
    try:
        assert (node_dir / "serve.limits").stat().st_mode & 0o777 == 0o600
        results = _all_at_once(f, [_wire(client, f"N{i:07d}") for i in range(CONNECTIONS)])
        assert sorted(results, key=str) == sorted(
            [(grpc.StatusCode.OK, "")] * 6
            + [(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")] * 18, key=str)
        answered_by = [rec.get("worker") for rec in sup.logged("lookup")
                       if rec.get("outcome") == "answered"]
        assert len(answered_by) == 6
    finally:
        client.close()
        sup.proc.send_signal(signal.SIGTERM)
        assert sup.proc.wait(60) == 0
    assert not (node_dir / "serve.limits").exists()  # the supervisor removes its table
    entries = f.audit("KAZ-BS")
    refused = [e for e in entries if e.get("reason") == "rate_limited"]
    assert sum(e["refused"] for e in refused) == 18
    assert {e["requester"] for e in refused} == {"KGZ-BS"}
    assert [e["outcome"] for e in entries if e.get("event") == "lookup"
            and not e.get("aggregated")] == ["answered"] * 6


def test_a_worker_started_without_its_supervisors_table_refuses_to_serve(
        fed: Federation) -> None:
    """``serve --worker I/N`` by hand, with no supervisor's limits table: one sentence and
    a non-zero exit, not a worker with limits of its own."""
    r = subprocess.run([sys.executable, "-m", "node.cli.main", "serve", "--node-dir",
                        str(fed.dirs["KAZ-BS"]), "--worker", "1/2"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "serve.limits does not exist: a worker needs the limits table its supervisor" \
        in r.stderr
    assert not (fed.dirs["KAZ-BS"] / "serve.worker-1.port").exists()
