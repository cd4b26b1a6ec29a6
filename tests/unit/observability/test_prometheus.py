"""NodeMetrics: a registry per process, exact figures, and no label a person could be found by;
the listener (TCP and unix socket); the group-commit and erasure-sweep hooks."""

from __future__ import annotations

import asyncio
import http.client
import socket
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from node.audit.log import MerkleAuditLog
from node.core.metrics import NO_METRICS, Metrics
from node.observability.listener import MetricsListener, _clear_stale_socket
from node.observability.prometheus import NodeMetrics
from node.observability.settings import MetricsSettings
from node.server.group_commit import BatchWriter
from node.store.sqlcipher import Store

KEY = bytes(range(32))
SK = nacl.signing.SigningKey(bytes(range(1, 33)))


def _samples(m: NodeMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(m.exposition().decode())
            for s in fam.samples}


def test_the_no_op_default_does_nothing() -> None:
    assert type(NO_METRICS) is Metrics
    NO_METRICS.request(service="s", method="m", outcome="OK", cause="", peer="p", seconds=1)
    NO_METRICS.batch_committed(size=1, seconds=0.1, ok=True)


def test_each_node_has_its_own_registry() -> None:
    a, b = NodeMetrics(node_id="KAZ-BS", process=False), NodeMetrics(node_id="KGZ-BS",
                                                                     process=False)
    a.request(service="bxnode.v1.NodeService", method="Lookup", outcome="OK", cause="",
              peer="UZB-BS", seconds=0.004)
    key = ("bxnode_requests_total", (("method", "Lookup"), ("outcome", "OK"), ("peer", "UZB-BS"),
                                     ("reason", ""), ("service", "bxnode.v1.NodeService")))
    assert _samples(a)[key] == 1.0 and key not in _samples(b)
    assert REGISTRY.get_sample_value("bxnode_requests_total") is None  # not the global one


@pytest.mark.parametrize(("field", "given", "shown"), [
    ("peer", "jane.doe@example.org", "other"),     # never an address-shaped value
    ("peer", "Юсупов", "other"),
    ("peer", "x" * 65, "other"),
    ("cause", "N0481516", "unregistered"),          # only registered reason codes
    ("cause", "CASE-1", "unregistered"),
    ("outcome", "officer-7", "UNKNOWN"),            # only gRPC status names
    ("service", "a service/with spaces", "other"),
])
def test_a_label_value_outside_its_set_is_replaced_not_echoed(
        field: str, given: str, shown: str) -> None:
    m = NodeMetrics(node_id="KAZ-BS", process=False)
    args: dict[str, Any] = dict(service="bxnode.v1.NodeService", method="Lookup",
                                outcome="PERMISSION_DENIED", cause="no_agreement",
                                peer="UZB-BS", seconds=0.01)
    args[field] = given
    m.request(**args)
    text = m.exposition().decode()
    assert given not in text
    label = {"cause": "reason"}.get(field, field)
    assert f'{label}="{shown}"' in text


def test_every_other_event() -> None:
    m = NodeMetrics(node_id="KAZ-BS", process=False)
    m.batch_committed(size=3, seconds=0.002, ok=True)
    m.batch_committed(size=9, seconds=0.5, ok=False)
    m.witness_result(witness="KGZ-BS", result="cosigned")
    m.witness_result(witness="KGZ-BS", result="something else")
    m.witness_alert(kind="inconsistent_checkpoint")
    m.witness_alert(kind="free text")
    m.peer_answered(peer="KGZ-BS", at_s=1_700_000_000.5)
    m.peer_failed(peer="KGZ-BS", status="DEADLINE_EXCEEDED")
    m.erasure_sweep(erased={"receipts": 4, "nonces": 0}, ok=True)
    m.erasure_sweep(erased={}, ok=False)
    s = _samples(m)
    assert (s[("bxnode_group_commit_batch_size_count", ())],
            s[("bxnode_group_commit_batch_size_sum", ())]) == (1.0, 3.0)
    assert s[("bxnode_group_commit_failures_total", ())] == 1.0
    assert s[("bxnode_witness_submissions_total",
              (("result", "cosigned"), ("witness", "KGZ-BS")))] == 1.0
    assert s[("bxnode_witness_submissions_total",
              (("result", "other"), ("witness", "KGZ-BS")))] == 1.0
    assert s[("bxnode_witness_alerts_total", (("kind", "inconsistent_checkpoint"),))] == 1.0
    assert s[("bxnode_witness_alerts_total", (("kind", "other"),))] == 1.0
    assert s[("bxnode_peer_last_success_timestamp_seconds",
              (("peer", "KGZ-BS"),))] == 1_700_000_000.5
    assert s[("bxnode_peer_failures_total",
              (("peer", "KGZ-BS"), ("status", "DEADLINE_EXCEEDED")))] == 1.0
    assert s[("bxnode_erasure_sweeps_total", (("result", "ok"),))] == 1.0
    assert s[("bxnode_erasure_sweeps_total", (("result", "failed"),))] == 1.0
    assert s[("bxnode_erased_records_total", (("kind", "receipts"),))] == 4.0
    assert ("bxnode_erased_records_total", (("kind", "nonces"),)) not in s


class _Cache:
    hits, misses = 5, 2


class _Directory:
    def status(self) -> Any:
        from node.federation.registry_directory import RegistryStatus

        return RegistryStatus(version=7, digest="", expires_ms=2_000_000_000_000,
                              state="fresh", message="")


def test_state_is_read_at_each_scrape() -> None:
    m = NodeMetrics(node_id="KAZ-BS", process=False)
    assert ("bxnode_policy_cache_hits_total", ()) not in _samples(m)
    cache = _Cache()
    m.watch(policy=cache, directory=_Directory(), clock_s=lambda: 1_999_999_000.0)
    s = _samples(m)
    assert (s[("bxnode_policy_cache_hits_total", ())],
            s[("bxnode_policy_cache_misses_total", ())]) == (5.0, 2.0)
    assert s[("bxnode_registry_version", ())] == 7.0
    assert s[("bxnode_registry_expiry_seconds", ())] == 1000.0
    cache.hits = 6
    assert _samples(m)[("bxnode_policy_cache_hits_total", ())] == 6.0


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost")
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self._path))


def test_the_listener_on_a_unix_socket(tmp_path: Path) -> None:
    m = NodeMetrics(node_id="KAZ-BS", process=False)
    settings = MetricsSettings.parse(tmp_path, {"address": "unix:m.sock"}, peer_listen=":1")
    assert settings is not None
    listener = MetricsListener(metrics=m, settings=settings)
    assert listener.start() == f"unix:{tmp_path / 'm.sock'}"
    try:
        assert (tmp_path / "m.sock").stat().st_mode & 0o777 == 0o600
        status, body = _get(_UnixConnection(tmp_path / "m.sock"), "/metrics")
        assert status == 200 and b'bxnode_info{node="KAZ-BS"' in body
        assert _get(_UnixConnection(tmp_path / "m.sock"), "/other")[0] == 404
        with pytest.raises(OSError, match="another process listens"):
            _clear_stale_socket(tmp_path / "m.sock")
    finally:
        listener.stop()
    assert not (tmp_path / "m.sock").exists()


def test_the_listener_on_loopback_tcp_and_a_stale_socket(tmp_path: Path) -> None:
    m = NodeMetrics(node_id="KAZ-BS", process=False)
    settings = MetricsSettings.parse(tmp_path, {"address": "127.0.0.1:0"}, peer_listen=":1")
    assert settings is not None
    listener = MetricsListener(metrics=m, settings=settings)
    where = listener.start()
    try:
        assert listener.port and where == f"127.0.0.1:{listener.port}"
        status, body = _get(http.client.HTTPConnection("127.0.0.1", listener.port), "/metrics")
        assert status == 200 and b"process_" not in body  # process=False
    finally:
        listener.stop()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "old.sock"))
    stale.close()  # a socket file nobody listens on: removed
    _clear_stale_socket(tmp_path / "old.sock")
    assert not (tmp_path / "old.sock").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="is not a socket"):
        _clear_stale_socket(tmp_path / "file")


def test_group_commit_reports_each_batch(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "n.db", KEY, create=True)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)
    m = NodeMetrics(node_id="KAZ-BS", process=False)

    async def main() -> None:
        writer = BatchWriter(store=store, batch_max=10, batch_ms=50, metrics=m)
        writer.start()

        def step(i: int) -> Any:
            def run() -> int:
                with log.store.transaction():
                    return log.append({"event": "lookup", "i": i}, time_ms=1_000 + i)
            return run

        await asyncio.gather(*(writer.run_in_batch(step(i)) for i in range(25)))
        await writer.stop()

    asyncio.run(main())
    store.close()
    s = _samples(m)
    assert (s[("bxnode_group_commit_batch_size_count", ())],
            s[("bxnode_group_commit_batch_size_sum", ())]) == (3.0, 25.0)
    assert s[("bxnode_group_commit_batch_size_bucket", (("le", "8.0"),))] == 1.0  # the 5
    assert s[("bxnode_group_commit_seconds_count", ())] == 3.0


def test_the_erasure_sweep_job_reports_each_sweep(tmp_path: Path) -> None:
    from node.retention.serve import sweep_job
    from node.retention.settings import DAY_MS, RetentionSettings
    from node.retention.sweep import RetentionSweep
    from node.store.crossings import CrossingTables

    store = Store.open(tmp_path / "n.db", KEY, create=True)
    CrossingTables(store).ensure_schema()
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)
    for i in range(3):
        log.append({"event": "lookup", "i": i}, time_ms=1_000 + i)
    swept = asyncio.Event()

    class Recorder(NodeMetrics):
        def erasure_sweep(self, **kw: Any) -> None:
            super().erasure_sweep(**kw)
            swept.set()

    m = Recorder(node_id="KAZ-BS", process=False)
    sweep = RetentionSweep(db=store, audit=log, settings=RetentionSettings(),
                           clock_ms=lambda: 1_000 + 1100 * DAY_MS)

    async def main() -> None:
        writer = BatchWriter(store=store, batch_max=10, batch_ms=0)
        job = asyncio.create_task(sweep_job(sweep, writer, interval_s=0, metrics=m)())
        await asyncio.wait_for(swept.wait(), 30)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        await writer.stop()

    asyncio.run(main())
    store.close()
    s = _samples(m)
    assert s[("bxnode_erasure_sweeps_total", (("result", "ok"),))] >= 1.0
    assert s[("bxnode_erased_records_total", (("kind", "audit_bodies"),))] == 3.0


def test_gc_pauses_are_a_histogram_per_generation() -> None:
    """``bxnode_gc_pause_seconds``: what GcPauses counted, read at the scrape, cumulative
    buckets per generation; absent until a node watches its pauses."""
    from node.server.heap import GcPauses

    m = NodeMetrics(node_id="KAZ-BS", process=False)
    assert not any(k[0].startswith("bxnode_gc_") for k in _samples(m))
    pauses = GcPauses()
    m.watch_gc(pauses)
    for g, seconds in ((0, 0.00005), (0, 0.003), (2, 0.3)):
        pauses.record(g, seconds)
    s = _samples(m)
    gen = {g: {k[1]: v for k, v in s.items() if k[0] == "bxnode_gc_pause_seconds_bucket"
               and dict(k[1])["generation"] == g} for g in ("0", "1", "2")}

    def bucket(g: str, le: str) -> float:
        return gen[g][tuple(sorted({"generation": g, "le": le}.items()))]

    assert (bucket("0", "0.0001"), bucket("0", "0.0025"), bucket("0", "0.005"),
            bucket("0", "+Inf")) == (1.0, 1.0, 2.0, 2.0)
    assert (bucket("2", "0.25"), bucket("2", "0.5"), bucket("2", "+Inf")) == (0.0, 1.0, 1.0)
    assert bucket("1", "+Inf") == 0.0
    assert s[("bxnode_gc_pause_seconds_count", (("generation", "0"),))] == 2.0
    assert s[("bxnode_gc_pause_seconds_sum", (("generation", "2"),))] == pytest.approx(0.3)
    pauses.record(2, 1.5)  # read anew at the next scrape
    assert _samples(m)[("bxnode_gc_pause_seconds_count", (("generation", "2"),))] == 2.0
