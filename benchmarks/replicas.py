"""The PostgreSQL scenarios of ``make bench`` (issue 10, section 5).

In the same run as the echo baseline and the SQLCipher figures, on a private throwaway
cluster (``tests/pgcluster.py``, reused as the tests use it, but with ``fsync`` back on so
that a commit is as durable as SQLCipher's ``synchronous=FULL``):

1. signed single document lookups against one PostgreSQL-backed ``bxnode serve``, then
   against two replicas on the same database with the callers split evenly over them
   (closed loop for throughput, open loop at 250/s for latency), as ratios to the echo
   baseline;
2. fail-over: the real peer client (``benchmarks/failover.py``) under closed-loop load
   against KAZ-BS listed as two addresses; the replica it is using is SIGKILLed and the
   figure is the time from the kill to the first answered request on the survivor,
   with the number of calls that failed.  Repeated (the killed replica is restarted and
   the next round kills the other one); each round and the median are reported.

The node directories are made as in ``tests/integration/test_replicas.py``: a copy of
the SQLCipher node's directory with ``[storage] backend = "postgresql"``, ``bxnode store
migrate``, the same watchlist imported once through replica A.  Where PostgreSQL cannot
be had, :func:`run_postgresql` logs one line saying why and records it; the rest of the
suite runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.run import Bench
    from tests.pgcluster import PgCluster

__all__ = ["run_postgresql"]

METHOD = "/bxnode.v1.NodeService/Lookup"


def _cluster() -> PgCluster:
    """A started cluster with durable commits; raises ``PgClusterUnavailable``."""
    from tests.pgcluster import PgCluster

    cluster = PgCluster.create()
    # PgCluster turns fsync off for throwaway test data; a benchmark beside SQLCipher's
    # synchronous=FULL must pay for durable commits too (later lines win).
    with (cluster.data / "postgresql.conf").open("a") as f:
        f.write("\n# benchmarks/replicas.py: commits as durable as SQLCipher's\n"
                "fsync = on\nfull_page_writes = on\nsynchronous_commit = on\n")
    try:
        cluster.start()
    except BaseException:
        cluster.destroy()
        raise
    return cluster


def run_postgresql(bench: Bench, base: float) -> None:
    """Every PostgreSQL scenario, or one line saying why there are none."""
    try:
        from tests.pgcluster import PgClusterUnavailable
    except ImportError as exc:  # psycopg missing
        _skip(bench, f"cannot import the PostgreSQL client: {exc}")
        return
    try:
        cluster = _cluster()
    except PgClusterUnavailable as exc:
        _skip(bench, str(exc))
        return
    try:
        _Replicas(bench, cluster).run(base)
    finally:
        cluster.destroy()


def _skip(bench: Bench, why: str) -> None:
    from benchmarks.run import log

    bench.results["postgresql"] = {"skipped": why}
    log(f"PostgreSQL scenarios skipped: {why}")


class _Replicas:
    def __init__(self, bench: Bench, cluster: PgCluster) -> None:
        self.bench = bench
        self.cluster = cluster
        self.dirs: dict[str, Path] = {}
        self.ports: dict[str, int] = {}
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}

    # --- set-up -----------------------------------------------------------------------------

    def setup(self) -> None:
        from benchmarks.run import bxnode, free_port, log
        from tests.pgcluster import to_postgresql

        b = self.bench
        with self.cluster.admin() as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        dsn = self.cluster.dsn(self.cluster.create_database())
        field_key = os.urandom(32).hex()
        self.ports = {"A": free_port(), "B": free_port()}
        a = b.work / "kaz-pg-a"
        shutil.copytree(b.dirs["KAZ-BS"], a,
                        ignore=shutil.ignore_patterns("node.db*", "*.sock", "serve.port"))
        to_postgresql(a, dsn=dsn, password=self.cluster.password, field_key=field_key,
                      listen=f"127.0.0.1:{self.ports['A']}")
        bb = b.work / "kaz-pg-b"
        shutil.copytree(a, bb, ignore=shutil.ignore_patterns("*.sock", "serve.port"))
        to_postgresql(bb, dsn=dsn, password=self.cluster.password, field_key=field_key,
                      listen=f"127.0.0.1:{self.ports['B']}")
        self.dirs = {"A": a, "B": bb}
        bxnode("store", "migrate", "--node-dir", str(a))
        rows = b.n_docs + b.n_persons
        secs = bxnode("watchlist", "import", str(b.work / "small.csv"), "--node-dir", str(a))
        b.results["postgresql"] = {"server_version": version, "fsync": "on",
                                   "synchronous_commit": "on"}
        b.results["pg_import_small"] = {"rows": rows, "seconds": round(secs, 2),
                                        "rows_per_s": round(rows / secs)}
        log(f"PostgreSQL {version}: imported {rows:,} rows in {secs:.1f}s "
            f"= {rows / secs:,.0f} rows/s")

    def start(self, which: str) -> None:
        self.nodes[which] = self.bench.start_node(self.dirs[which], log=f"node-pg-{which}.log")

    def addr(self, which: str) -> str:
        return f"127.0.0.1:{self.ports[which]}"

    # --- throughput and latency ----------------------------------------------------------------

    def lookups(self, label: str, targets: list[str], base: float) -> None:
        from benchmarks.run import log

        b = self.bench
        db0 = self.db_cpu()
        r = b.load(targets=targets, method=METHOD, mode="closed",
                   payloads=b.signed_requests(b.n_requests(2000), b.doc_items))
        calls = r.get("warmup", 0) + r["sent"]
        r["db_server_cpu_ms_per_call"] = round(
            (self.db_cpu() - db0) * 1000 / calls, 3) if calls else 0.0
        r["ratio_to_baseline"] = round(r["throughput_rps"] / base, 3) if base else 0
        b.results[f"pg_doc_lookup_saturation_{label}"] = r
        r250 = b.load(targets=targets, method=METHOD, mode="open", rate=250,
                      payloads=b.signed_requests(int(250 * b.seconds) + 10, b.doc_items))
        b.results[f"pg_doc_lookup_at_250_rps_{label}"] = r250
        log(f"PostgreSQL, {label.replace('_', ' ')}: {r['throughput_rps']:,.0f}/s "
            f"({r['ratio_to_baseline']:.0%} of baseline), p99 {r['p99_ms']} ms; at 250/s "
            f"p50 {r250['p50_ms']} ms, p99 {r250['p99_ms']} ms, errors "
            f"{r['errors'] + r250['errors']}")
        if label != "2_replicas":
            return
        # issue 16: the other figures beside SQLCipher's, on the two replicas
        r = b.load(targets=targets, method=METHOD, mode="open", rate=1000,
                   payloads=b.signed_requests(int(1000 * b.seconds) + 10, b.doc_items))
        b.results[f"pg_doc_lookup_at_1000_rps_{label}"] = r
        r = b.load(targets=targets, method=METHOD, mode="closed", concurrency=8,
                   payloads=b.signed_requests(b.n_requests(100), b.batch_items))
        r["document_checks_per_s"] = round(r["throughput_rps"] * 100)
        b.results[f"pg_batch100_saturation_{label}"] = r
        r = b.load(targets=targets, method=METHOD, mode="closed",
                   payloads=b.signed_requests(b.n_requests(1500), b.person_items))
        r["ratio_to_baseline"] = round(r["throughput_rps"] / base, 3) if base else 0
        b.results[f"pg_person_lookup_saturation_{label}"] = r
        at1000 = b.results[f"pg_doc_lookup_at_1000_rps_{label}"]["p99_ms"]
        checks = b.results[f"pg_batch100_saturation_{label}"]["document_checks_per_s"]
        log(f"PostgreSQL, two replicas: p99 {at1000} ms at 1000/s, {checks:,} document "
            f"checks/s in batches, person lookups {r['throughput_rps']:,.0f}/s")

    def db_cpu(self) -> float:
        """CPU seconds of the PostgreSQL server (the postmaster and its backends)."""
        from benchmarks.run import process_cpu_s

        try:
            pid = int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        return process_cpu_s(pid)

    # --- fail-over -----------------------------------------------------------------------------

    def failover_round(self, victim: str, survivor: str, before_s: float,
                       after_s: float) -> dict[str, Any]:
        from benchmarks.run import PY, ROOT

        b = self.bench
        members = json.loads((b.work / "members.json").read_text())
        for m in members["members"]:
            if m["node_id"] == "KAZ-BS":
                m["endpoint"] = [self.addr(victim), self.addr(survivor)]
        members_path = b.work / f"members-{victim}{survivor}.json"
        members_path.write_text(json.dumps(members))
        ready = b.work / "failover.ready"
        ready.unlink(missing_ok=True)
        spec: dict[str, Any] = {
            "node_dir": str(b.dirs["KGZ-BS"]), "node_id": "KGZ-BS", "peer": "KAZ-BS",
            "members": str(members_path), "callers": 8, "seconds": before_s + after_s,
            "timeout_s": 10.0, "n_docs": b.n_docs, "ready": str(ready),
            "out": str(b.work / "failover.out.json")}
        spec_path = b.work / "failover.json"
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.Popen([PY, "-m", "benchmarks.failover", str(spec_path)], cwd=ROOT,
                                stdout=(b.work / "failover.log").open("ab"),
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise SystemExit("bench: the fail-over client did not get its first answers")
            time.sleep(0.01)
        t_ready = float(ready.read_text())
        time.sleep(max(0.0, t_ready + before_s - time.monotonic()))
        node = self.nodes.pop(victim)
        t_kill = time.monotonic()  # CLOCK_MONOTONIC: the same clock as the client's
        node.send_signal(signal.SIGKILL)
        node.wait()
        b.procs.remove(node)
        b.server_pids.remove(node.pid)
        if proc.wait(timeout=before_s + after_s + 60) != 0:
            raise SystemExit("bench: the fail-over client failed: " + (
                b.work / "failover.log").read_text(errors="replace")[-2000:])
        got = json.loads(Path(spec["out"]).read_text())
        calls = [(float(s), float(e), str(a)) for s, e, a in got["calls"]]
        on_survivor = [e for s, e, a in calls if a == self.addr(survivor) and e >= t_kill]
        across = [e - s for s, e, _ in calls if s < t_kill < e]
        before = [c for c in calls if c[1] < t_kill and c[1] >= t_ready]
        after = [c for c in calls if c[1] >= t_kill]
        t_end = max((e for _, e, _ in calls), default=t_kill)
        self.start(victim)  # rejoins for the next round
        self.warm(victim)
        return {
            "killed": victim,
            "failover_ms": (round((min(on_survivor) - t_kill) * 1000, 1)
                            if on_survivor else None),
            "failed_requests": len(got["errors"]),
            "errors": sorted({f"{t}:{r}" for _, t, r in got["errors"]}),
            "longest_call_across_kill_ms": round(max(across) * 1000, 1) if across else 0.0,
            "calls_across_kill": len(across),
            "answered_before_kill_per_s": round(len(before) / max(1e-9, t_kill - t_ready), 1),
            "answered_after_kill_per_s": round(len(after) / max(1e-9, t_end - t_kill), 1),
            "answered_by_victim_before_kill": sum(1 for c in before
                                                  if c[2] == self.addr(victim)),
            "answered_by_survivor_after_kill": len(on_survivor),
        }

    def warm(self, which: str) -> None:
        """A restarted replica gets a hundred lookups before it is the survivor of the next
        round, as in a federation where other peers use it first.  (With one client, it
        would otherwise get none: the client keeps the address that answered last.)"""
        b = self.bench
        b.load(target=self.addr(which), method=METHOD, mode="closed", concurrency=8,
               payloads=b.signed_requests(100, b.doc_items))

    def failover(self, rounds: int) -> None:
        from benchmarks.run import bxnode, log

        b = self.bench
        before_s, after_s = (0.5, 1.0) if b.smoke else (1.0, 2.0)
        out = []
        for i in range(rounds):
            victim, survivor = ("A", "B") if i % 2 == 0 else ("B", "A")
            r = self.failover_round(victim, survivor, before_s, after_s)
            out.append(r)
            log(f"fail-over {i + 1}/{rounds}: killed {victim}, first answer from {survivor} "
                f"after {r['failover_ms']} ms, {r['failed_requests']} failed, longest call "
                f"across the kill {r['longest_call_across_kill_ms']} ms")
        times = [r["failover_ms"] for r in out if r["failover_ms"] is not None]
        t0 = time.perf_counter()
        bxnode("audit", "verify", "--node-dir", str(self.dirs["A"]))
        b.results["pg_failover"] = {
            "rounds": out,
            "median_ms": round(statistics.median(times), 1) if times else None,
            "max_ms": max(times) if times else None,
            "failed_requests": sum(r["failed_requests"] for r in out),
            "callers": 8,
            "audit_verify": f"ok ({time.perf_counter() - t0:.1f} s, both replicas' log)",
        }
        f = b.results["pg_failover"]
        log(f"fail-over: median {f['median_ms']} ms over {rounds} rounds, "
            f"{f['failed_requests']} failed requests; audit verify ok")

    def run(self, base: float) -> None:
        self.setup()
        try:
            self.start("A")
            self.lookups("1_replica", [self.addr("A")], base)
            self.start("B")
            self.lookups("2_replicas", [self.addr("A"), self.addr("B")], base)
            self.failover(2 if self.bench.smoke else 5)
        finally:
            for node in list(self.nodes.values()):
                if node.poll() is None:
                    self.bench.stop(node)
