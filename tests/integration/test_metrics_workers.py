"""``bxnode serve --workers 2`` with ``[metrics]``: one endpoint per worker (issue 17 §1).

README "Monitoring": worker I listens on the configured port plus I (a unix socket: the
path with ``.I`` appended for I > 0), each with a registry of its own.  A real supervisor
and its two worker processes serve KAZ-BS; KGZ-BS asks over mTLS on connections of their
own (SO_REUSEPORT spreads them over both workers) and replays one request.  Each worker's
endpoint must count exactly the calls that worker logged answering or refusing, and the
two together exactly the calls made.
"""

from __future__ import annotations

import http.client
import signal
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.federation import Federation, free_port, make_federation
from tests.integration.test_metrics import requests, samples
from tests.integration.test_workers import Supervisor, _call, _wire
from tests.waiting import until

pytestmark = pytest.mark.integration

LOOKUP = ("bxnode.v1.NodeService", "Lookup")
CALLS = 32  # each on a connection of its own: both workers get some (1 - 2**-31)
REPLAYS = 2


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(self._path))


def _scrape(where: int | Path) -> str:
    conn: http.client.HTTPConnection = (
        http.client.HTTPConnection("127.0.0.1", where, timeout=10) if isinstance(where, int)
        else _UnixHTTPConnection(where))
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200
        return resp.read().decode("utf-8")
    finally:
        conn.close()


def _two_free_ports() -> int:
    """A port P with P and P + 1 both free (worker 0 and worker 1)."""
    for _ in range(50):
        p = free_port()
        if p < 65535:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p + 1))
                except OSError:
                    continue
            return p
    raise AssertionError("no two adjacent free ports")


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    yield make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"))


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_each_worker_counts_only_its_own_calls(fed: Federation, kind: str) -> None:
    kaz = fed.dirs["KAZ-BS"]
    if kind == "tcp":
        base = _two_free_ports()
        address = f"127.0.0.1:{base}"
        endpoints: list[int | Path] = [base, base + 1]
    else:
        address = "unix:metrics.sock"
        endpoints = [kaz / "metrics.sock", kaz / "metrics.sock.1"]
    with (kaz / "node.toml").open("a") as f:
        f.write(f'\n[metrics]\naddress = "{address}"\n')
    sup = Supervisor(kaz, workers=2)
    client = fed.client("KGZ-BS", store=False)
    try:
        assert len(sup.workers()) == 2
        if kind == "tcp":  # each worker wrote its own port file
            assert [int((kaz / n).read_text()) for n in
                    ("metrics.port", "metrics.worker-1.port")] == endpoints
        else:
            assert all(p.is_socket() and p.stat().st_mode & 0o777 == 0o600  # type: ignore[union-attr]
                       for p in endpoints)
        for where in endpoints:  # nothing counted before the first call
            assert requests(samples(_scrape(where)), *LOOKUP) == {}
        wire = [_wire(client, f"N{i:07d}") for i in range(CALLS)]
        results: list[tuple[grpc.StatusCode, str]] = [(grpc.StatusCode.UNKNOWN, "")] * CALLS

        def one(i: int) -> None:
            results[i] = _call(fed, wire[i])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(CALLS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == [(grpc.StatusCode.OK, "")] * CALLS
        assert [_call(fed, wire[0]) for _ in range(REPLAYS)] == [
            (grpc.StatusCode.UNAUTHENTICATED, "replayed_nonce")] * REPLAYS

        # what each worker logged: its answers and its refusals of the replays
        def all_logged() -> Counter[tuple[object, str]] | None:
            logged = Counter(
                (rec.get("worker"), "OK" if rec.get("outcome") == "answered"
                 else f"UNAUTHENTICATED/{rec.get('reason')}")
                for rec in sup.logged("lookup"))
            return logged if sum(logged.values()) >= CALLS + REPLAYS else None

        logged = until("every call logged by the worker that took it", all_logged, timeout=10)
        per_worker = []
        for index, where in enumerate(endpoints):
            want = {}
            if logged[(index, "OK")]:
                want[("OK", "", "KGZ-BS")] = float(logged[(index, "OK")])
            if logged[(index, "UNAUTHENTICATED/replayed_nonce")]:
                want[("UNAUTHENTICATED", "replayed_nonce", "KGZ-BS")] = float(
                    logged[(index, "UNAUTHENTICATED/replayed_nonce")])
            # an aborted call's status reaches the client as the abort is sent, a moment
            # before the interceptor counts it: wait (bounded) for the count to catch up
            def caught_up(where: int | Path = where, want: dict[tuple[str, str, str], float] = want
                          ) -> tuple[dict[tuple[str, str, str], float]] | None:
                counted = requests(samples(_scrape(where)), *LOOKUP)
                return (counted,) if counted == want else None

            (counted,) = until(f"worker {index}'s count to catch up with its log", caught_up,
                               timeout=10)
            assert counted == want, (index, logged)
            per_worker.append(counted)
        assert all(per_worker), "SO_REUSEPORT gave every connection to one worker"
        total: Counter[tuple[str, str, str]] = Counter()
        for counted in per_worker:
            total.update({k: int(v) for k, v in counted.items()})
        assert dict(total) == {("OK", "", "KGZ-BS"): CALLS,
                               ("UNAUTHENTICATED", "replayed_nonce", "KGZ-BS"): REPLAYS}
    finally:
        client.close()
        sup.proc.send_signal(signal.SIGTERM)
        assert sup.proc.wait(60) == 0, "".join(sup.lines[-20:])
    # every worker took its endpoint down with it
    if kind == "tcp":
        assert not (kaz / "metrics.port").exists()
        assert not (kaz / "metrics.worker-1.port").exists()
    else:
        assert not any(p.exists() for p in endpoints)  # type: ignore[union-attr]
