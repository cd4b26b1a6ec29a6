"""The Prometheus endpoint of a real ``bxnode serve`` (issue 17 §1).

KAZ-BS runs as a real ``bxnode serve`` process with ``[metrics] address =
"127.0.0.1:0"``, on the signed registry, witnessed every second by KGZ-BS and UZB-BS (real
nodes in this process).  Over real mTLS UZB-BS is answered twice (a hit, a no-hit) and
refused once by the policy (a purpose it has no agreement for); KGZ-BS, whose agreement
allows a burst of 3, is answered three times and rate-limited on the fourth.  One scrape
must show exactly those calls, by service, method, status, reason and peer, their
latencies, the group-commit batches that carried them, the policy cache, the registry's
version and time to expiry and the witnesses' cosignatures; and no label value may hold
any identifier the traffic carried.  The peer client's figures (each peer's last success
and failures) are checked against real nodes too, one of them stopped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import nacl.signing
import pytest
from prometheus_client.parser import text_string_to_metric_families

from node.core.model import DocumentQuery, QueryKind
from node.federation.registry import parse_registry
from node.observability.prometheus import METRIC_NAMES, NodeMetrics
from node.wire import convert
from node.wire.convert import pb
from tests.federation import CTX, ROOT, Federation, make_federation, sample_policy
from tests.waiting import until, until_file

pytestmark = pytest.mark.integration

LOOKUP = ("bxnode.v1.NodeService", "Lookup")
#: Every identifier of a person, a document, an officer or a case the traffic carries, and
#: the text of the legal basis: none may appear in any label value.
HIT, NO_HIT = "N0481516", "X9999999"


def _identifiers(fed: Federation) -> list[str]:
    from node.federation.pki import TlsMaterial

    fps = [TlsMaterial.from_files(cert=d / "tls.crt", key=d / "tls.key",
                                  ca=d / "ca.crt").fingerprint for d in fed.dirs.values()]
    return [HIT, NO_HIT, "KAZ-SLTD-2026-000117", CTX.operator, CTX.case_ref,
            CTX.legal_basis, "art. 7", str(fed.root), *fps]


class Served:
    """``bxnode serve`` in a process of its own; its peer and metrics ports."""

    def __init__(self, node_dir: Path) -> None:
        for name in ("serve.port", "metrics.port"):
            (node_dir / name).unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli.main", "serve", "--node-dir", str(node_dir)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        for written in ("serve.port", "metrics.port"):
            until_file(node_dir / written, self.proc, timeout=60, on_fail=self._failed)
        self.metrics_port = int((node_dir / "metrics.port").read_text())

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def _failed(self) -> str:
        self.stop()
        return "node did not start: " + "".join(self.lines[-20:])

    def scrape(self, path: str = "/metrics") -> str:
        with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}{path}", timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=")
            return str(resp.read().decode("utf-8"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(30)


#: a scrape's samples: {(name, sorted labels): value}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def requests(found: Samples, service: str, method: str) -> dict[tuple[str, str, str], float]:
    """``{(outcome, reason, peer): count}`` of one method."""
    out = {}
    for (name, labels), v in found.items():
        d = dict(labels)
        if name == "bxnode_requests_total" and (d["service"], d["method"]) == (service, method):
            out[(d["outcome"], d["reason"], d["peer"])] = v
    return out


def _key(fed: Federation, node: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(bytes.fromhex((fed.dirs[node] / "signing.key")
                                                 .read_text().strip()))


def _lookup(fed: Federation, as_node: str, number: str, **over: str) -> bytes:
    client = fed.client(as_node, store=False)
    try:
        env = client.build(dataclasses.replace(CTX, **over),
                           QueryKind.DOCUMENT, [DocumentQuery(number=number,
                                                              issuing_state="KAZ")])
    finally:
        client.close()
    return bytes(pb.LookupRequest(envelope=convert.envelope_to_pb(env)).SerializeToString())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Federation, Served]]:
    data = sample_policy()
    for a in data["bxnode"]["agreements"]:
        if (a["responder"], a["requester"]) == ("KAZ-BS", "KGZ-BS"):
            a.update(rate_per_s=0.0001, burst=3, max_in_flight=8)
    fed = make_federation(tmp_path, policy_data=data, registry=True)
    kaz = fed.dirs["KAZ-BS"]
    toml = (kaz / "node.toml").read_text().replace("witness_interval_s = 60",
                                                    "witness_interval_s = 1")
    (kaz / "node.toml").write_text(toml + '\n[metrics]\naddress = "127.0.0.1:0"\n')
    fed.start("KGZ-BS")
    fed.start("UZB-BS")
    node = Served(kaz)
    try:
        yield fed, node
    finally:
        assert node.stop() == 0, "".join(node.lines[-20:])
        fed.stop_all()
        assert not (kaz / "metrics.port").exists()


def test_a_scrape_shows_exactly_the_calls_made(served: tuple[Federation, Served]) -> None:
    fed, node = served
    ok, limited = (grpc.StatusCode.OK, ""), (grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")
    before = samples(node.scrape())
    assert requests(before, *LOOKUP) == {}
    # UZB-BS: a hit, a no-hit, a purpose it has no agreement for
    assert fed.raw_call("UZB-BS", "KAZ-BS", _lookup(fed, "UZB-BS", HIT)) == ok
    assert fed.raw_call("UZB-BS", "KAZ-BS", _lookup(fed, "UZB-BS", NO_HIT)) == ok
    assert fed.raw_call("UZB-BS", "KAZ-BS", _lookup(
        fed, "UZB-BS", HIT, purpose="counter_terrorism")) == (
        grpc.StatusCode.PERMISSION_DENIED, "purpose_not_agreed")
    # KGZ-BS: a burst of 3, then over its rate
    assert [fed.raw_call("KGZ-BS", "KAZ-BS", _lookup(fed, "KGZ-BS", NO_HIT))
            for _ in range(4)] == [ok, ok, ok, limited]

    # witnessing runs every second: wait for both; and an aborted call's status reaches the
    # client as the abort is sent, a moment before the interceptor counts it
    def witnessed_and_counted() -> tuple[Samples, dict[str, float]] | None:
        found = samples(node.scrape())
        cosigned = {w: value(found, "bxnode_witness_submissions_total", witness=w,
                             result="cosigned") for w in ("KGZ-BS", "UZB-BS")}
        counted = sum(requests(found, *LOOKUP).values())
        return (found, cosigned) if all(cosigned.values()) and counted >= 7 else None

    found, cosigned = until("both witnesses' cosignatures and the 7 calls counted",
                            witnessed_and_counted, every=0.2)
    assert all(v >= 1 for v in cosigned.values()), cosigned

    assert requests(found, *LOOKUP) == {
        ("OK", "", "UZB-BS"): 2.0,
        ("PERMISSION_DENIED", "purpose_not_agreed", "UZB-BS"): 1.0,
        ("OK", "", "KGZ-BS"): 3.0,
        ("RESOURCE_EXHAUSTED", "rate_limited", "KGZ-BS"): 1.0,
    }
    assert value(found, "bxnode_request_duration_seconds_count",
                 service=LOOKUP[0], method=LOOKUP[1]) == 7.0
    assert value(found, "bxnode_request_duration_seconds_bucket", service=LOOKUP[0],
                 method=LOOKUP[1], le="+Inf") == 7.0
    # The witnesses' own calls are counted too, by the witness that made them: none of KAZ's
    assert all(peer in ("KGZ-BS", "UZB-BS") for (_, _, peer) in
               requests(found, "bxnode.v1.WitnessService", "AddCheckpoint"))
    # Every lookup was one step of a committed batch (with the witnessing rounds' own)
    steps = value(found, "bxnode_group_commit_batch_size_sum")
    batches = value(found, "bxnode_group_commit_batch_size_count")
    assert batches >= 1 and steps >= 7 and steps >= batches
    assert value(found, "bxnode_group_commit_seconds_count") == batches
    assert value(found, "bxnode_group_commit_failures_total") == 0
    # Six lookups reached the policy (the rate-limited one was refused before): the first
    # question of each (peer, purpose) was evaluated, the repeats came from the cache
    assert (value(found, "bxnode_policy_cache_hits_total"),
            value(found, "bxnode_policy_cache_misses_total")) == (3.0, 3.0)
    assert value(found, "bxnode_registry_version") == 1.0
    expires_s = parse_registry((fed.root / "registry.json").read_bytes()).expires_ms / 1000
    assert abs(value(found, "bxnode_registry_expiry_seconds") - (expires_s - time.time())) < 60
    assert value(found, "bxnode_info", node="KAZ-BS", version="0.1.0") == 1.0
    names = {fam.name for fam in text_string_to_metric_families(node.scrape())}
    assert {n.removesuffix("_total") for n in METRIC_NAMES} - names <= {
        "bxnode_witness_alerts", "bxnode_peer_last_success_timestamp_seconds",
        "bxnode_peer_failures", "bxnode_erasure_sweeps", "bxnode_erased_records"}

    # No label value holds any identifier the traffic carried
    idents = [i.lower() for i in _identifiers(fed)]
    for (_, labels) in found:
        for _, v in labels:
            assert not any(i in v.lower() for i in idents), v


def test_only_metrics_is_served(served: tuple[Federation, Served]) -> None:
    _, node = served
    with pytest.raises(urllib.error.HTTPError) as err:
        node.scrape("/")
    assert err.value.code == 404
    req = urllib.request.Request(f"http://127.0.0.1:{node.metrics_port}/metrics",
                                 data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 501
    # a client that connects and says nothing holds one thread, not the endpoint
    with socket.create_connection(("127.0.0.1", node.metrics_port), timeout=10):
        assert "# TYPE bxnode_requests_total counter" in node.scrape()


def test_the_peer_client_reports_each_peers_last_answer_and_failures(
        tmp_path: Path) -> None:
    fed = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"))
    fed.start("KAZ-BS")
    metrics = NodeMetrics(node_id="KGZ-BS", process=False)
    client = fed.client("KGZ-BS", store=False)
    client.metrics = metrics
    now = time.time()
    try:
        answer = client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
                               [DocumentQuery(number=HIT, issuing_state="KAZ")])
        assert answer.hits == 1
        fed.stop_all()
        with pytest.raises(Exception) as err:
            client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
                          [DocumentQuery(number=HIT, issuing_state="KAZ")])
        assert getattr(err.value, "reason", "") == "peer_unavailable"
    finally:
        client.close()
        fed.stop_all()
    found = samples(metrics.exposition().decode())
    last = value(found, "bxnode_peer_last_success_timestamp_seconds", peer="KAZ-BS")
    assert now - 5 < last < time.time() + 1
    assert {dict(labels)["status"]: v for (name, labels), v in found.items()
            if name == "bxnode_peer_failures_total"} == {"UNAVAILABLE": 1.0}


def test_serve_freezes_its_startup_heap_and_reports_every_gc_pause(tmp_path: Path) -> None:
    """``bxnode serve`` collects and freezes its startup heap before it serves (a full
    collection then skips those objects: node/server/heap.py), counts every collection's
    pause from then on in ``bxnode_gc_pause_seconds``, and logs the totals at stop."""
    fed = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"))
    kaz = fed.dirs["KAZ-BS"]
    (kaz / "node.toml").write_text((kaz / "node.toml").read_text()
                                   + '\n[metrics]\naddress = "127.0.0.1:0"\n')
    node = Served(kaz)
    try:
        frozen = until("the heap_frozen line", lambda: [
            json.loads(line) for line in node.lines if '"heap_frozen"' in line] or None,
            every=0.05)
        assert len(frozen) == 1 and frozen[0]["objects"] > 10_000, frozen
        found = samples(node.scrape())
        counts = {g: value(found, "bxnode_gc_pause_seconds_count", generation=g)
                  for g in ("0", "1", "2")}
        for g in counts:
            assert value(found, "bxnode_gc_pause_seconds_bucket", generation=g,
                         le="+Inf") == counts[g]
    finally:
        assert node.stop() == 0, "".join(node.lines[-20:])
    stopped = until("the gc_pauses line", lambda: [
        json.loads(line) for line in node.lines if '"gc_pauses"' in line] or None, every=0.05)
    assert len(stopped) == 1
    report = stopped[0]
    assert 10_000 < report["frozen_objects"] <= frozen[0]["objects"]  # freed ones leave it
    for g in ("0", "1", "2"):  # at stop at least what the scrape saw
        assert report[f"gen{g}_collections"] >= counts[g]
        assert 0 <= report[f"gen{g}_max_ms"] <= report[f"gen{g}_total_ms"]
