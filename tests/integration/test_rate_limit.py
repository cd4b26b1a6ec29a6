"""One peer cannot starve the others (issue 12 §5), with real nodes over mTLS.

A peer over its agreed rate is refused RESOURCE_EXHAUSTED/rate_limited at once, without the
database thread; the refusals are audited as one aggregated entry per peer and interval
(exact count, first and last time, a digest of the refused messages), durable within the
flush interval and at shutdown, and the log still verifies.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

from node.cli.main import main as bxnode
from node.core.model import DocumentQuery, QueryKind
from node.server.grpc_server import REASON_KEY
from node.wire.convert import envelope_to_pb, pb
from node.wire.trailers import trailers
from tests.federation import CTX, ROOT, Federation, make_federation, sample_policy
from tests.waiting import until_file

DOC = DocumentQuery(number="N0481516", issuing_state="KAZ")
LOOKUP = "/bxnode.v1.NodeService/Lookup"


def _federation(tmp_path: Path, *, registry: bool = False) -> Federation:
    """KAZ-BS agrees a burst of 3 and next to no refill with UZB-BS; KGZ-BS has the
    defaults."""
    data = sample_policy()
    for a in data["bxnode"]["agreements"]:
        if (a["responder"], a["requester"]) == ("KAZ-BS", "UZB-BS"):
            a.update(rate_per_s=0.0001, burst=3, max_in_flight=8)
    f = make_federation(tmp_path, policy_data=data, registry=registry)
    f.start("KAZ-BS")
    return f


def _payloads(f: Federation, asker: str, n: int) -> list[bytes]:
    client = f.client(asker, store=False)
    try:
        return [pb.LookupRequest(envelope=envelope_to_pb(client.build(
            CTX, QueryKind.DOCUMENT, [DOC]))).SerializeToString() for _ in range(n)]
    finally:
        client.close()


def _channel(f: Federation, asker: str) -> grpc.Channel:
    d = f.dirs[asker]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(),
        private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{f.ports['KAZ-BS']}", creds)


def _call(ch: grpc.Channel, payload: bytes, timeout: float = 10) -> tuple[str, str]:
    lookup: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(LOOKUP)
    try:
        lookup(payload, timeout=timeout)
    except grpc.RpcError as err:
        return err.code().name, str(trailers(err).get(REASON_KEY, ""))
    return "OK", ""


def _on_loop(f: Federation, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, f.nodes["KAZ-BS"].loop).result(30)


def _aggregates(f: Federation, peer: str) -> list[dict[str, Any]]:
    return [e for e in f.audit("KAZ-BS")
            if e.get("requester") == peer and e.get("reason") == "rate_limited"]


def test_a_flooding_peer_is_refused_while_another_is_answered_and_every_refusal_is_counted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _federation(tmp_path)
    flood, modest = _payloads(f, "UZB-BS", 40), _payloads(f, "KGZ-BS", 6)
    try:
        with _channel(f, "UZB-BS") as uzb, _channel(f, "KGZ-BS") as kgz, \
                concurrent.futures.ThreadPoolExecutor(8) as pool:
            flooding = [pool.submit(_call, uzb, p) for p in flood]
            answered = [_call(kgz, p) for p in modest]
            got = [x.result() for x in flooding]
    finally:
        f.stop_all()  # a graceful shutdown appends the refusals still counted
    assert answered == [("OK", "")] * 6
    assert sorted(got).count(("OK", "")) == 3  # the burst: exactly three admitted
    assert sorted(got).count(("RESOURCE_EXHAUSTED", "rate_limited")) == 37
    aggs = _aggregates(f, "UZB-BS")  # one, or one per flush interval the flood spanned
    assert sum(a["refused"] for a in aggs) == 37
    for agg in aggs:
        assert (agg["event"], agg["status"], agg["outcome"], agg["aggregated"],
                agg["verified"]) == ("lookup", "RESOURCE_EXHAUSTED", "rejected", True, False)
        assert agg["first_ms"] <= agg["last_ms"] == agg["time_ms"]
        assert agg["tls_peer"] == hashlib.sha256(  # the certificate UZB-BS presented
            _der(f.dirs["UZB-BS"] / "tls.crt")).hexdigest()
    lookups = [e for e in f.audit("KAZ-BS") if e.get("event") == "lookup"]
    assert sum(e.get("refused", 1) for e in lookups) == 46  # every call is accounted for
    assert [e["outcome"] for e in lookups if e["requester"] == "KGZ-BS"] == ["answered"] * 6
    kaz = str(f.dirs["KAZ-BS"])
    assert bxnode(["audit", "verify", "--node-dir", kaz]) == 0
    capsys.readouterr()
    assert bxnode(["audit", "search", "--node-dir", kaz, "--peer", "UZB-BS", "--outcome",
                   "rejected", "--json"]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["seq"] for e in shown] == [a["seq"] for a in aggs]
    assert sum(e["refused"] for e in shown) == 37


def test_the_aggregate_digest_is_over_exactly_the_refused_messages(
        tmp_path: Path, no_periodic_flush: None) -> None:
    f = _federation(tmp_path)
    flood = _payloads(f, "UZB-BS", 12)
    try:
        with _channel(f, "UZB-BS") as uzb, concurrent.futures.ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda p: _call(uzb, p), flood))
    finally:
        f.stop_all()
    [agg] = _aggregates(f, "UZB-BS")
    refused = sorted(hashlib.sha256(p).digest() for p, g in zip(flood, got, strict=True)
                     if g == ("RESOURCE_EXHAUSTED", "rate_limited"))
    assert len(refused) == agg["refused"] == 9
    assert agg["refused_sha256"] == hashlib.sha256(b"".join(refused)).hexdigest()


def test_refusals_are_sent_while_the_database_thread_is_held_and_durable_after_a_flush(
        tmp_path: Path, no_periodic_flush: None) -> None:
    """The database thread is held by a step that waits: the flooding peer is still
    refused at once (its refusal does not queue behind the database); an admitted call
    waits.  Released, a flush makes the aggregated entry durable while the node serves."""
    f = _federation(tmp_path)
    node = f.nodes["KAZ-BS"]
    server = node.server
    assert server.writer is not None
    writer = server.writer
    flood = _payloads(f, "UZB-BS", 5)
    release = threading.Event()
    try:
        with _channel(f, "UZB-BS") as uzb:
            assert [_call(uzb, p) for p in flood[:3]] == [("OK", "")] * 3
            held = asyncio.run_coroutine_threadsafe(
                writer.call(lambda: release.wait(30)), node.loop)
            try:
                # over the limit: refused promptly though the database thread is busy
                assert [_call(uzb, p, timeout=5) for p in flood[3:]] == [
                    ("RESOURCE_EXHAUSTED", "rate_limited")] * 2
                assert server.refusals.pending() == 2
            finally:
                release.set()
                held.result(10)
            assert _on_loop(f, server.flush_refusals()) == 2
            assert server.refusals.pending() == 0
            # durable now, while the node still runs
            [agg] = _aggregates(f, "UZB-BS")
            assert agg["refused"] == 2
            assert _on_loop(f, server.flush_refusals()) == 0  # nothing twice
    finally:
        f.stop_all()
    [agg] = _aggregates(f, "UZB-BS")  # the shutdown flush found nothing more to record
    assert agg["refused"] == 2


def test_refusals_whose_commit_failed_are_kept_and_recorded_by_the_next_flush(
        tmp_path: Path, no_periodic_flush: None) -> None:
    f = _federation(tmp_path)
    server = f.nodes["KAZ-BS"].server
    flood = _payloads(f, "UZB-BS", 5)
    real = server._responder.record_refusals

    def injected_commit_failure(records: Any) -> list[int]:
        """A FAULT INJECTED in place of the real append: the batch fails as on a full
        disk (tests/integration/test_faults.py makes a real one)."""
        raise OSError("disk full (injected)")

    try:
        with _channel(f, "UZB-BS") as uzb:
            assert [_call(uzb, p)[1] for p in flood] == ["", "", "", "rate_limited",
                                                          "rate_limited"]
        server._responder.record_refusals = injected_commit_failure  # type: ignore[method-assign]
        assert _on_loop(f, server.flush_refusals()) == 0
        assert server.refusals.pending() == 2 and _aggregates(f, "UZB-BS") == []
        server._responder.record_refusals = real  # type: ignore[method-assign]
        assert _on_loop(f, server.flush_refusals()) == 2
    finally:
        f.stop_all()
    assert [e["refused"] for e in _aggregates(f, "UZB-BS")] == [2]


def test_bxnode_serve_stopped_by_sigterm_leaves_no_refusal_unrecorded(
        tmp_path: Path) -> None:
    """The real ``bxnode serve`` process: refusals counted in the last second before a
    SIGTERM are appended by the shutdown (the periodic flush may have taken some)."""
    f = _federation(tmp_path)
    f.stop_all()  # the in-process server: this test runs the real one
    kaz = f.dirs["KAZ-BS"]
    (kaz / "serve.port").unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "node.cli.main", "serve", "--node-dir",
                             str(kaz)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        until_file(kaz / "serve.port", proc, timeout=60, on_fail=lambda: "serve did not start")
        flood = _payloads(f, "UZB-BS", 20)
        with _channel(f, "UZB-BS") as uzb:
            got = [_call(uzb, p) for p in flood]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert got.count(("RESOURCE_EXHAUSTED", "rate_limited")) == 17
    assert sum(a["refused"] for a in _aggregates(f, "UZB-BS")) == 17
    logged = [json.loads(x) for x in err.splitlines() if '"rate_limited_refusals"' in x]
    assert sum(int(x["refused"]) for x in logged) == 17
    assert "refusals_unrecorded" not in err
    assert bxnode(["audit", "verify", "--node-dir", str(kaz)]) == 0


def test_a_certificate_no_member_lists_gets_the_strangers_limits(
        tmp_path: Path, no_periodic_flush: None) -> None:
    """A certificate the federation CA signed but no member lists: refused
    unlisted_certificate (audited each) within the stranger's burst of 10, then
    rate_limited, counted into one aggregated entry under no requester.  The limiter's
    clock is held still (injected), so the burst is exact; no call waits for a token
    (``rate_wait_ms = 0``: a frozen clock never brings one)."""
    from node.server.limits import STRANGER, PeerLimiter

    f = _federation(tmp_path)
    server = f.nodes["KAZ-BS"].server
    server.limiter = PeerLimiter(limits_for=lambda _peer: STRANGER, clock=lambda: 1000.0)
    server.rate_wait_s = 0.0
    payload = _payloads(f, "KGZ-BS", 1)[0]
    creds, fingerprint = _unlisted_creds(f)
    try:
        with grpc.secure_channel(f"127.0.0.1:{f.ports['KAZ-BS']}", creds) as ch:
            got = [_call(ch, payload) for _ in range(15)]
    finally:
        f.stop_all()
    assert got == [("UNAUTHENTICATED", "unlisted_certificate")] * 10 + [
        ("RESOURCE_EXHAUSTED", "rate_limited")] * 5
    entries = [e for e in f.audit("KAZ-BS") if e.get("tls_peer") == fingerprint]
    assert [e["reason"] for e in entries] == ["unlisted_certificate"] * 10 + ["rate_limited"]
    assert (entries[-1]["requester"], entries[-1]["refused"]) == ("", 5)


def _unlisted_creds(f: Federation) -> tuple[grpc.ChannelCredentials, str]:
    """A certificate the federation CA signed (so TLS accepts it) that no member lists, and
    its fingerprint."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from node.federation.pki import issue_cert, new_tls_key

    dev = ROOT / "keys" / "dev"
    ca = (serialization.load_pem_private_key((dev / "ca.key").read_bytes(), None),
          x509.load_pem_x509_certificate((dev / "ca.crt").read_bytes()))
    key = new_tls_key()
    cert = issue_cert(cn="TJK-BS", org="bxnode DEVELOPMENT ONLY", key=key, hosts=["127.0.0.1"],
                      ca=ca)  # type: ignore[arg-type]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(f.dirs["KGZ-BS"] / "ca.crt").read_bytes(),
        private_key=key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()),
        certificate_chain=cert.public_bytes(serialization.Encoding.PEM))
    return creds, hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _der(pem_path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(pem_path.read_bytes()).public_bytes(
        serialization.Encoding.DER)


@pytest.mark.parametrize(("method", "request_bytes", "event"), [
    ("/bxnode.v1.WitnessService/GetWitnessedCheckpoint", b"\n\x0bkaz-bs/log1",
     "witness_refused"),
    ("/bxnode.v1.AuditorService/SearchEntries", b"", "auditor_access_refused"),
    ("/bxnode.v1.RegistryService/GetRegistry", b"", "registry_served")])
def test_witness_auditor_and_registry_calls_pass_the_same_limits(
        tmp_path: Path, method: str, request_bytes: bytes, event: str) -> None:
    """The limits are the peer's, whatever service it calls: with a burst of 3, the fourth
    witness, auditor or registry call is refused rate_limited at the edge (no service ran,
    so no entry of its own) and counted in the aggregated entry under the service's event."""
    f = _federation(tmp_path, registry=event == "registry_served")
    try:
        with _channel(f, "UZB-BS") as uzb:
            got = []
            call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = uzb.unary_unary(method)
            for _ in range(6):
                try:
                    call(request_bytes, timeout=10)
                    got.append(("OK", ""))
                except grpc.RpcError as err:
                    got.append((err.code().name, str(trailers(err).get(REASON_KEY, ""))))
    finally:
        f.stop_all()
    assert got[3:] == [("RESOURCE_EXHAUSTED", "rate_limited")] * 3
    assert ("RESOURCE_EXHAUSTED", "rate_limited") not in got[:3]  # the burst reached the service
    aggs = _aggregates(f, "UZB-BS")
    assert [(a["event"], a["refused"]) for a in aggs] == [(event, 3)]
    served = [e for e in f.audit("KAZ-BS") if e.get("requester") == "UZB-BS"
              and e.get("event") in ("witness_read", "witness_refused", "auditor_access_refused",
                                     "registry_served")
              and not e.get("aggregated")]
    assert len(served) == 3  # each call within the burst has its own entry
    assert bxnode(["audit", "verify", "--node-dir", str(f.dirs["KAZ-BS"])]) == 0
