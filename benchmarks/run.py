"""``make bench``: the benchmark suite.  ``--smoke`` runs a seconds-long version (CI).

Every figure is measured in this run, on this machine:

* the baseline is a bare grpc.aio echo server over the same mTLS, driven by the
  same load generator (benchmarks/echo.py, benchmarks/loadgen.py);
* the node is started as ``bxnode serve`` would start it (a real node directory,
  SQLCipher, Rego policy, signed requests from a real peer identity);
* each load generator runs in its own process;
* the same lookups against one and two replicas on PostgreSQL, and the time a peer's
  client takes to fail over when the replica it uses is killed (benchmarks/replicas.py).

Writes benchmarks/results/latest.json and latest.md, and prints the table.
No figure here is asserted by any test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEV = ROOT / "keys" / "dev"
PY = sys.executable


_LETTERS = "абвгдежзиклмнопрстуфхшыэюя"


#: Issue 16: the large-watchlist case (and its small-watchlist reference) three times.
LARGE_RUNS = 3

#: The fairness scenario: UZB-BS's agreed rate (it floods at ten times this) and the
#: modest rate KGZ-BS asks at meanwhile.
FLOOD_LIMIT = 100
MODEST_RATE = 50
#: The flood's agreed burst in one more run from its first call (the others: FLOOD_LIMIT,
#: a second's worth): the delay another peer's first answers see grows with the burst.
SMALL_BURST = 10
#: The flood has run this long when the modest peer's measured calls begin.
FLOOD_LEAD_S = 1.0


def word(i: int, first: str) -> str:
    """A name-like word for ``i`` (names may not hold digits): Бaa, Бab, ..."""
    out = first
    for _ in range(3):
        i, r = divmod(i, len(_LETTERS))
        out += _LETTERS[r]
    return out


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def bxnode(*args: str) -> float:
    return bxnode_measured(*args)[0]


def bxnode_measured(*args: str) -> tuple[float, float]:
    """Run ``bxnode ARGS``; its wall-clock seconds and peak memory in MB: the most its
    processes held *together* (the watchlist import's checking process and fork server
    beside it), their proportional set sizes summed every 50 ms from /proc (so pages they
    share count once); the process's own peak RSS (``wait4``) where /proc says nothing."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([PY, "-m", "node.cli.main", *args], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err)
        together = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                together[0] = max(together[0], tree_pss_kb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        secs = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"bench: bxnode {args[0]} failed: "
                             f"{err.read().decode(errors='replace').strip()[-2000:]}")
    return secs, round((together[0] or usage.ru_maxrss) / 1024, 1)  # KiB on Linux


def tree_pss_kb(pid: int) -> int:
    """The proportional set sizes of ``pid`` and its live descendants, summed, in KiB."""
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except (OSError, ValueError):
            continue
    return total


def _tasks(pid: int) -> list[Path]:
    """The /proc task directories of ``pid``'s threads ([] once it has ended)."""
    try:
        return list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []


def _cpu_s(stat_file: Path, tick: int) -> float:
    """User + system CPU seconds from a /proc ``stat`` file (a process's or a thread's)."""
    stat = stat_file.read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / tick


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants, from /proc (a thread or process that ends
    meanwhile is left out, never the rest with it)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        for task in _tasks(p):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
    return out


def gc_pauses(node_log: Path) -> dict[str, Any] | None:
    """The last ``gc_pauses`` line a node wrote to ``node_log`` at stop (its collections
    and their pauses per generation, the objects it froze at start), or None."""
    found = None
    with node_log.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if '"gc_pauses"' in line:
                with contextlib.suppress(ValueError):
                    found = json.loads(line)
    if found is None:
        return None
    return {k: v for k, v in found.items() if k.startswith(("gen", "frozen"))}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (``serve --workers``
    runs worker processes under a supervisor), from /proc.  CPU time is far less sensitive
    than wall-clock latency to other work on a shared machine: the figure the changes in
    benchmarks/README.md were measured by."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in process_tree(pid):
        try:
            total += _cpu_s(Path(f"/proc/{p}/stat"), tick)
        except (OSError, ValueError):
            continue
    return total


def thread_split(pid: int) -> tuple[float, int]:
    """The CPU seconds of the main threads of ``pid`` and its live descendants (a node
    process's main thread runs its event loop: ``serve``'s, and each worker's under
    ``--workers``) and the context switches of all their threads, voluntary and
    involuntary, from /proc/<p>/task/<t>/{stat,status}.  With :func:`process_cpu_s`
    it says where a call's CPU goes: on the event loop (gRPC, verification, decoding,
    the policy's cached decision) or on the other threads (the database thread above
    all); and how often the threads hand the GIL and the cores to each other."""
    tick = os.sysconf("SC_CLK_TCK")
    loop, switches = 0.0, 0
    for p in process_tree(pid):
        for task in _tasks(p):
            try:
                if task.name == str(p):
                    loop += _cpu_s(task / "stat", tick)
                for line in (task / "status").read_text().splitlines():
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
            except (OSError, ValueError):
                continue
    return loop, switches


class Bench:
    #: the watchlist's size, set by :meth:`run` (and grown by :meth:`large`)
    n_docs: int
    n_persons: int

    def __init__(self, work: Path, smoke: bool, only: str | None = None) -> None:
        self.work = work
        self.smoke = smoke
        self.only = only
        self.seconds = 1.5 if smoke else 5.0
        #: Issue 16's three runs of the large-watchlist case (one in --smoke: it only checks
        #: that every figure is produced, and runs inside make test).
        self.large_runs = 1 if smoke else LARGE_RUNS
        self.results: dict[str, Any] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        #: The servers under load (their CPU per call goes into each load's result).
        self.server_pids: list[int] = []
        self.node_logs: dict[int, Path] = {}

    # --- set-up -------------------------------------------------------------------------------

    def federation(self) -> None:
        # TJK-BS has no agreement with KAZ-BS: the stranger's limits, far below what it
        # sends in the refusal-cost scenario, so nearly every call it makes is refused
        ports = {"KAZ-BS": free_port(), "KGZ-BS": free_port(), "UZB-BS": free_port(),
                 "TJK-BS": free_port()}
        self.ports = ports
        members = json.loads((DEV / "members.json").read_text())
        members["members"] = [m for m in members["members"] if m["node_id"] in ports]
        for m in members["members"]:
            m["endpoint"] = f"127.0.0.1:{ports[m['node_id']]}"
        (self.work / "members.json").write_text(json.dumps(members))
        policy = self.work / "policies"
        shutil.copytree(ROOT / "policies", policy)
        data = json.loads((policy / "data.json").read_text())
        for a in data["bxnode"]["agreements"]:
            a["daily_quota"] = 10**12  # the benchmark measures speed, not quotas
            if (a["requester"], a["responder"]) == ("UZB-BS", "KAZ-BS"):
                # the fairness scenario floods from UZB-BS at ten times this
                a.update(rate_per_s=FLOOD_LIMIT, burst=FLOOD_LIMIT, max_in_flight=64)
        (policy / "data.json").write_text(json.dumps(data))
        self.dirs = {}
        for node_id, folder in (("KAZ-BS", "kaz"), ("KGZ-BS", "kgz"), ("UZB-BS", "uzb"),
                                ("TJK-BS", "tjk")):
            d = self.work / folder
            bxnode("init", "--node-dir", str(d), "--node-id", node_id, "--country",
                   node_id[:3], "--dev", "--dev-keys", str(DEV / folder), "--listen",
                   f"127.0.0.1:{ports[node_id]}", "--members", str(self.work / "members.json"),
                   "--policy-dir", str(policy), "--operator", "bench")
            self.dirs[node_id] = d

    def watchlist(self, n_docs: int, n_persons: int, name: str, first: int = 0) -> Path:
        path = self.work / f"{name}.csv"
        t0 = time.perf_counter()
        with path.open("w") as f:
            f.write("kind,owner_ref,action,expires,number,issuing_state,doc_type,"
                    "family_name,given_names,dob,nationality,sex\n")
            for i in range(first, first + n_docs):
                f.write(f"document,D{i},seize_document,2036-01-01,N{i:08d},KAZ,P,,,,,\n")
            for i in range(n_persons):
                f.write(f"person,P{i},inform,2036-01-01,,,,{word(i % 9973, 'Ф')},{word(i, 'И')},"
                        f"19{50 + i % 50}-01-{1 + i % 28:02d},KAZ,M\n")
        log(f"generated {n_docs + n_persons:,} rows in {time.perf_counter() - t0:.1f}s")
        return path

    def import_(self, path: Path, rows: int, key: str) -> None:
        secs, mem = bxnode_measured("watchlist", "import", str(path), "--node-dir",
                                    str(self.dirs["KAZ-BS"]))
        self.results[key] = {"rows": rows, "seconds": round(secs, 2),
                             "rows_per_s": round(rows / secs), "peak_memory_mb": mem}
        log(f"{key}: {rows:,} rows in {secs:.1f}s = {rows / secs:,.0f} rows/s, "
            f"peak memory {mem} MB (its processes' PSS)")

    def start_node(self, d: Path | None = None, log: str = "node.log", workers: int = 1
                   ) -> subprocess.Popen[bytes]:
        """``bxnode serve`` on KAZ-BS's directory (or ``d``), once it listens."""
        d = d or self.dirs["KAZ-BS"]
        (d / "serve.port").unlink(missing_ok=True)
        proc = subprocess.Popen([PY, "-m", "node.cli.main", "serve", "--node-dir", str(d),
                                 "--workers", str(workers)],
                                cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=(self.work / log).open("ab"))
        self.procs.append(proc)
        deadline = time.monotonic() + 120
        while not (d / "serve.port").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench: the node did not start")
            time.sleep(0.05)
        self.server_pids.append(proc.pid)
        self.node_logs[proc.pid] = self.work / log
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        self.procs.remove(proc)
        if proc.pid in self.server_pids:
            self.server_pids.remove(proc.pid)
        node_log = self.node_logs.pop(proc.pid, None)
        if node_log is not None:  # the node's garbage-collection pauses (node/server/heap.py)
            pauses = gc_pauses(node_log)
            if pauses is not None:
                self.results.setdefault("node_gc_pauses", []).append(pauses)

    # --- requests -----------------------------------------------------------------------------

    def signed_requests(self, n: int, make_items: Callable[[int], list[Any]],
                        method: str = "lookup", asker: str = "KGZ-BS") -> Path:
        from node.client.peer import PeerClient, QueryContext
        from node.core.model import QueryKind
        from node.federation.members_file import load_members
        from node.federation.pki import load_signing_key
        from node.wire.convert import envelope_to_pb, pb

        d = self.dirs[asker]
        client = PeerClient(node_id=asker, signing_key=load_signing_key(d / "signing.key"),
                            directory=load_members(self.work / "members.json"), tls=None,
                            store=None, clock_ms=lambda: time.time_ns() // 1_000_000,
                            dev_plaintext=True)
        ctx = QueryContext(operator="bench", purpose="border_check", legal_basis="bench",
                           case_ref="BENCH")
        out = []
        for i in range(n):
            items = make_items(i)
            kind = QueryKind.BATCH if len(items) > 1 else items[0].kind
            env = client.build(ctx, kind, items)
            out.append(pb.LookupRequest(envelope=envelope_to_pb(env)).SerializeToString().hex())
        path = self.work / f"payloads-{method}-{asker}-{n}.json"
        path.write_text(json.dumps(out))
        return path

    def load(self, *, method: str, payloads: Path, mode: str, target: str = "",
             targets: list[str] | None = None, tls: bool = True, concurrency: int = 64,
             rate: float = 0, asker: str = "KGZ-BS", channels: int = 2,
             start_at: float | None = None) -> dict[str, Any]:
        cpu0, split0 = self.server_cpu(), self.server_split()
        r = self.finish_load(self.start_load(
            method=method, payloads=payloads, mode=mode, target=target, targets=targets,
            tls=tls, concurrency=concurrency, rate=rate, asker=asker, channels=channels,
            start_at=start_at))
        self.add_cpu(r, cpu0)
        self.add_split(r, split0)
        return r

    def server_cpu(self) -> float:
        return sum(process_cpu_s(pid) for pid in self.server_pids)

    def server_split(self) -> tuple[float, int]:
        loops = [thread_split(pid) for pid in self.server_pids]
        return sum(x[0] for x in loops), sum(x[1] for x in loops)

    def add_split(self, r: dict[str, Any], split0: tuple[float, int]) -> None:
        """Of ``server_cpu_ms_per_call``: the event loops' part, the other threads' (the
        rest), and the servers' context switches per call (:func:`thread_split`)."""
        n = r.get("warmup", 0) + r["sent"]
        loop, switches = self.server_split()
        loop_ms = round((loop - split0[0]) * 1000 / n, 3) if n else 0.0
        r["server_loop_cpu_ms_per_call"] = loop_ms
        r["server_other_cpu_ms_per_call"] = round(r["server_cpu_ms_per_call"] - loop_ms, 3)
        r["server_switches_per_call"] = round((switches - split0[1]) / n, 1) if n else 0.0

    def add_cpu(self, r: dict[str, Any], cpu0: float, calls: int | None = None) -> None:
        """The server's CPU milliseconds per call (warm-up, answered and refused calls)."""
        n = calls if calls is not None else r.get("warmup", 0) + r["sent"]
        r["server_cpu_ms_per_call"] = round((self.server_cpu() - cpu0) * 1000 / n, 3) if n \
            else 0.0

    def start_load(self, *, method: str, payloads: Path, mode: str, target: str = "",
                   targets: list[str] | None = None, tls: bool = True, concurrency: int = 64,
                   rate: float = 0, asker: str = "KGZ-BS", channels: int = 2,
                   seconds: float | None = None, timeout: float = 30,
                   start_at: float | None = None, drain_s: float | None = None
                   ) -> subprocess.Popen[str]:
        """A load generator in its own process, presenting ``asker``'s certificate, over
        ``channels`` connections per target (benchmarks/loadgen.py: ``timeout`` each call's
        deadline, ``start_at`` a ``time.time()`` to begin at, ``drain_s`` how long the
        calls unanswered at the end are waited for)."""
        d = self.dirs[asker]
        spec = {"targets": targets or [target], "method": method, "channels": channels,
                "payloads": str(payloads), "mode": mode, "timeout": timeout,
                "start_at": start_at, "drain_s": drain_s, "seconds": seconds or self.seconds,
                "concurrency": concurrency, "rate": rate,
                "tls": {"cert": str(d / "tls.crt"), "key": str(d / "tls.key"),
                        "ca": str(d / "ca.crt")} if tls else None}
        spec_path = self.work / f"spec-{asker}-{time.monotonic_ns()}.json"
        spec_path.write_text(json.dumps(spec))
        return subprocess.Popen([PY, "-m", "benchmarks.loadgen", str(spec_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT)

    @staticmethod
    def finish_load(proc: subprocess.Popen[str]) -> dict[str, Any]:
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"bench: load generator failed: {err[-2000:]}")
        result: dict[str, Any] = json.loads(out)
        return result

    # --- scenarios ----------------------------------------------------------------------------

    def baseline(self) -> float:
        d = self.dirs["KAZ-BS"]
        port_file = self.work / "echo.port"
        proc = subprocess.Popen([PY, "-m", "benchmarks.echo", str(port_file), "--tls",
                                 str(d / "tls.crt"), str(d / "tls.key"), str(d / "ca.crt")],
                                cwd=ROOT)
        self.procs.append(proc)
        while not port_file.exists():
            time.sleep(0.05)
        self.server_pids.append(proc.pid)
        target = f"127.0.0.1:{port_file.read_text()}"
        payloads = self.signed_requests(self.n_requests(6000), self.doc_items)
        r = self.load(target=target, method="/bench.Echo/Echo", payloads=payloads,
                      mode="closed")
        self.stop(proc)
        self.results["baseline_echo"] = r
        log(f"baseline echo: {r['throughput_rps']:,.0f} calls/s")
        return float(r["throughput_rps"])

    def n_requests(self, per_s: int) -> int:
        return int(per_s * self.seconds * 1.2) + 100

    def doc_items(self, i: int) -> list[Any]:
        from node.core.model import DocumentQuery

        return [DocumentQuery(number=f"N{(i * 7919) % self.n_docs:08d}", issuing_state="KAZ")]

    def batch_items(self, i: int) -> list[Any]:
        from node.core.model import DocumentQuery

        return [DocumentQuery(number=f"N{(i * 100 + k) % self.n_docs:08d}",
                              issuing_state="KAZ") for k in range(100)]

    def person_items(self, i: int) -> list[Any]:
        from node.core.model import PartialDate, PersonQuery, Sex

        j = (i * 31) % max(1, self.n_persons)
        return [PersonQuery(family_name=word(j % 9973, "Ф"), given_names=word(j, "И"),
                            date_of_birth=PartialDate(1950 + j % 50, 1, 1 + j % 28),
                            nationality="KAZ", sex=Sex.MALE)]

    def scenarios(self, base: float) -> None:
        target = f"127.0.0.1:{self.ports['KAZ-BS']}"
        method = "/bxnode.v1.NodeService/Lookup"
        node = self.start_node()
        self.single(base, target, method)
        self.batch(target, method)
        self.person(base, target, method)
        self.results["node_peak_rss_mb_small"] = peak_rss_mb(node.pid)
        self.stop(node)
        self.workers(base, target, method)
        self.fairness(target, method)

    def single(self, base: float, target: str, method: str) -> None:
        """Single signed document lookups: saturation, then open loops at fixed rates."""
        r = self.load(target=target, method=method, mode="closed",
                      payloads=self.signed_requests(self.n_requests(5000), self.doc_items))
        r["ratio_to_baseline"] = round(r["throughput_rps"] / base, 3) if base else 0
        self.results["doc_lookup_saturation"] = r
        log(f"document lookups: {r['throughput_rps']:,.0f}/s "
            f"({r['ratio_to_baseline']:.0%} of baseline), "
            f"node CPU {r['server_cpu_ms_per_call']} ms per call (event loop "
            f"{r['server_loop_cpu_ms_per_call']}, other threads "
            f"{r['server_other_cpu_ms_per_call']}; {r['server_switches_per_call']} context "
            "switches per call)")
        for rate in (250, 1000, 2000):
            r = self.load(target=target, method=method, mode="open", rate=rate,
                          payloads=self.signed_requests(int(rate * self.seconds) + 10,
                                                        self.doc_items))
            self.results[f"doc_lookup_at_{rate}_rps"] = r
            log(f"document lookups at {rate}/s offered: p50 {r['p50_ms']} ms, "
                f"p99 {r['p99_ms']} ms, errors {r['errors']}")
        # the small-watchlist reference for the large case: three runs, their median
        runs = [self.results["doc_lookup_at_250_rps"]["p99_ms"]] + [
            self.load(target=target, method=method, mode="open", rate=250,
                      payloads=self.signed_requests(int(250 * self.seconds) + 10,
                                                    self.doc_items))["p99_ms"]
            for _ in range(self.large_runs - 1)]
        self.results["doc_lookup_at_250_rps"]["p99_runs_ms"] = runs

    def batch(self, target: str, method: str) -> None:
        """Batches of 100 document checks, closed loop."""
        r = self.load(target=target, method=method, mode="closed", concurrency=8,
                      payloads=self.signed_requests(self.n_requests(300), self.batch_items))
        r["document_checks_per_s"] = round(r["throughput_rps"] * 100)
        self.results["batch100_saturation"] = r
        log(f"batch lookups: {r['document_checks_per_s']:,} document checks/s, "
            f"node CPU {r['server_cpu_ms_per_call']} ms per batch")

    def person(self, base: float, target: str, method: str) -> None:
        """Single person lookups: saturation and 1,000/s offered."""
        person = self.person_items
        r = self.load(target=target, method=method, mode="closed",
                      payloads=self.signed_requests(self.n_requests(4000), person))
        r["ratio_to_baseline"] = round(r["throughput_rps"] / base, 3) if base else 0
        self.results["person_lookup_saturation"] = r
        log(f"person lookups: {r['throughput_rps']:,.0f}/s "
            f"({r['ratio_to_baseline']:.0%} of baseline), "
            f"node CPU {r['server_cpu_ms_per_call']} ms per call")
        r = self.load(target=target, method=method, mode="open", rate=1000,
                      payloads=self.signed_requests(int(1000 * self.seconds) + 10, person))
        self.results["person_lookup_at_1000_rps"] = r

    def import_only(self) -> None:
        """The watchlist import alone: BXNODE_BENCH_LARGE documents (default 10,000,000)
        on top of the small watchlist, rate and peak memory."""
        n = 20_000 if self.smoke else int(os.environ.get("BXNODE_BENCH_LARGE", "10000000"))
        path = self.watchlist(n - self.n_docs, 0, "large", first=self.n_docs)
        self.import_(path, n - self.n_docs, "import_large")
        path.unlink()

    def fairness(self, target: str, method: str) -> None:
        """Issue 12: UZB-BS floods at ten times its agreed rate while KGZ-BS asks at a
        modest one; KGZ-BS's p99 against its own unloaded figure (target: within 2x).
        Then what one refusal costs the node: a peer in a closed loop far over its limit,
        the node's CPU per call (nearly all refused) against its CPU per answered call.
        The modest peer is measured from the flood's second second on (:meth:`flood`), and
        once more from the flood's first call (the agreed burst included).  Last, the same
        flood against the node without its fair gate (``[server] processing_slots`` so large
        that no request ever waits at it: every stage first in, first out, as before
        node/server/fair.py), without its stream limit, and without pacing (``rate_wait_ms
        = 0``: every call past the bucket refused at once), for the ratios within one
        run."""
        node = self.start_node(log="node-fairness.log")
        modest = int(self.seconds * MODEST_RATE) + 10
        alone = self.load(target=target, method=method, mode="open", rate=MODEST_RATE,
                          payloads=self.signed_requests(modest, self.doc_items))
        loaded, flooded = self.flood(target, method)
        from_start, _ = self.flood(target, method, lead_s=0.0)  # the agreed burst included
        # what a refusal costs: TJK-BS (no agreement: the stranger's 5/s) in a closed loop,
        # so nearly every call is refused over the limit, against answered lookups
        answer = self.load(target=target, method=method, mode="closed",
                           payloads=self.signed_requests(self.n_requests(800), self.doc_items))
        over = self.load(target=target, method=method, mode="closed", asker="TJK-BS",
                         payloads=self.signed_requests(self.n_requests(4000), self.doc_items,
                                                       asker="TJK-BS"))
        refused = over["codes"].get("RESOURCE_EXHAUSTED/rate_limited", 0)
        per_answer = answer["server_cpu_ms_per_call"]
        per_refusal = over["server_cpu_ms_per_call"]
        self.stop(node)
        toml = self.dirs["KAZ-BS"] / "node.toml"
        ungated = self.flood_with(target, method, toml, "# processing_slots = 16",
                                  "processing_slots = 4096", log="node-fairness-no-gate.log")
        unlimited = self.flood_with(target, method, toml, "# max_concurrent_streams = 32",
                                    "max_concurrent_streams = 1024",
                                    log="node-fairness-no-stream-limit.log")
        unpaced = self.flood_with(target, method, toml, "# rate_wait_ms = 1000",
                                  "rate_wait_ms = 0", log="node-fairness-unpaced.log")
        # the flood's first call again, its agreement granting a burst of SMALL_BURST
        # requests instead of a second's worth: what the burst itself costs the others
        small_burst = self.flood_with(
            target, method, self.work / "policies" / "data.json",
            f'"burst": {FLOOD_LIMIT}', f'"burst": {SMALL_BURST}',
            log="node-fairness-small-burst.log", lead_s=0.0)

        def ratio(r: dict[str, Any]) -> float:
            return round(r["p99_ms"] / alone["p99_ms"], 2) if alone["p99_ms"] else 0

        self.results["fairness"] = {
            "modest_rate": MODEST_RATE, "flood_rate": 10 * FLOOD_LIMIT,
            "flood_limit": FLOOD_LIMIT, "flood": flooded, "p99_ratio": ratio(loaded),
            "p99_ratio_without_gate": ratio(ungated),
            "p99_ratio_without_stream_limit": ratio(unlimited),
            "p99_ratio_from_the_floods_start": ratio(from_start),
            "small_burst": SMALL_BURST,
            "p99_ratio_from_the_floods_start_small_burst": ratio(small_burst),
            "p99_ratio_without_pacing": ratio(unpaced),
            "refusal_cost": {"calls": over["warmup"] + over["sent"], "refused": refused,
                             "refused_per_s": round(refused / over["elapsed_s"]),
                             "server_cpu_ms_per_refusal": per_refusal,
                             "server_cpu_ms_per_answer": per_answer,
                             "refusal_to_answer": round(per_refusal / per_answer, 3)
                             if per_answer else 0}}
        self.results["fairness_modest_alone"] = alone
        self.results["fairness_modest_under_flood"] = loaded
        self.results["fairness_modest_under_flood_without_gate"] = ungated
        self.results["fairness_modest_under_flood_without_stream_limit"] = unlimited
        self.results["fairness_modest_from_the_floods_start"] = from_start
        self.results["fairness_modest_from_the_floods_start_small_burst"] = small_burst
        self.results["fairness_modest_under_flood_without_pacing"] = unpaced
        c = self.results["fairness"]["refusal_cost"]
        log(f"fairness: KGZ-BS at {MODEST_RATE}/s p99 {alone['p99_ms']} ms alone, "
            f"{loaded['p99_ms']} ms while UZB-BS floods at {10 * FLOOD_LIMIT}/s (limit "
            f"{FLOOD_LIMIT}/s; its errors {flooded['codes']}): {ratio(loaded)}x; without the "
            f"fair gate {ungated['p99_ms']} ms: {ratio(ungated)}x; without the stream limit "
            f"{unlimited['p99_ms']} ms: {ratio(unlimited)}x; without pacing "
            f"{unpaced['p99_ms']} ms: {ratio(unpaced)}x; from the flood's first call "
            f"{from_start['p99_ms']} ms: {ratio(from_start)}x, and with an agreed burst of "
            f"{SMALL_BURST} {small_burst['p99_ms']} ms: {ratio(small_burst)}x; a refusal costs "
            f"{c['server_cpu_ms_per_refusal']} ms of node CPU, an answer "
            f"{c['server_cpu_ms_per_answer']} ms ({c['refusal_to_answer']:.0%}); "
            f"{c['refused_per_s']:,} refusals/s in a closed loop")

    def flood_with(self, target: str, method: str, path: Path, line: str, setting: str, *,
                   log: str, lead_s: float = FLOOD_LEAD_S) -> dict[str, Any]:
        """The modest peer's load under the flood (:meth:`flood`, ``lead_s``), against the
        node started with ``line`` of the file at ``path`` (its node.toml, or its policy's
        data) replaced by ``setting``, once (put back afterwards)."""
        text = path.read_text()
        assert text.count(line) == 1, line
        path.write_text(text.replace(line, setting, 1))
        node = self.start_node(log=log)
        try:
            return self.flood(target, method, lead_s=lead_s)[0]
        finally:
            self.stop(node)
            path.write_text(text)

    def flood(self, target: str, method: str, lead_s: float = FLOOD_LEAD_S
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        """KGZ-BS at the modest rate while UZB-BS floods at ten times its limit: (KGZ-BS's
        load, the flood's); the flood's CPU per call counts both peers' calls.

        The flood begins ``lead_s`` before KGZ-BS's first measured call and lasts until its
        last: KGZ-BS is measured against the flood, not against the agreed burst UZB-BS
        spends in the flood's first moments (``lead_s = 0`` measures that too).  The
        flood's calls have bxnode's client deadline (10 s, node/client/peer.py): a node
        that paces the flood keeps the rest of its calls waiting on UZB-BS's side, and
        those still waiting a second after the flood ends are abandoned (cancelled)."""
        modest = int(self.seconds * MODEST_RATE) + 10
        flood_rate = 10 * FLOOD_LIMIT
        flood_s = self.seconds + lead_s
        flood_payloads = self.signed_requests(int(flood_s * flood_rate) + 10,
                                              self.doc_items, asker="UZB-BS")
        modest_payloads = self.signed_requests(modest, self.doc_items)
        cpu0 = self.server_cpu()
        begin = time.time() + 3.0  # both load generators started and warmed up by then
        flood = self.start_load(target=target, method=method, mode="open", rate=flood_rate,
                                asker="UZB-BS", payloads=flood_payloads, seconds=flood_s,
                                timeout=10.0, start_at=begin, drain_s=1.0)
        loaded = self.load(target=target, method=method, mode="open", rate=MODEST_RATE,
                           payloads=modest_payloads, start_at=begin + lead_s)
        flooded = self.finish_load(flood)
        self.add_cpu(flooded, cpu0, calls=flooded["warmup"] + flooded["sent"]
                     + loaded["warmup"] + loaded["sent"])
        return loaded, flooded

    def workers(self, base: float, target: str, method: str) -> None:
        """The same node as ``bxnode serve --workers 2`` (one process per core).

        Over 8 connections, not the other scenarios' 2: the kernel spreads connections over
        the workers (SO_REUSEPORT), and two hashed onto the same worker about half the time,
        which then served everything.  Each worker's share of the requests and its writers'
        lock figures (``writer_lock``) are in ``workers_writer_lock``."""
        node = self.start_node(workers=2, log="node-workers.log")
        r = self.load(target=target, method=method, mode="closed", channels=8,
                      payloads=self.signed_requests(self.n_requests(5000), self.doc_items))
        r["ratio_to_baseline"] = round(r["throughput_rps"] / base, 3) if base else 0
        self.results["doc_lookup_saturation_2_workers"] = r
        log(f"document lookups, 2 workers: {r['throughput_rps']:,.0f}/s "
            f"({r['ratio_to_baseline']:.0%} of baseline)")
        r = self.load(target=target, method=method, mode="open", rate=1000, channels=8,
                      payloads=self.signed_requests(int(1000 * self.seconds) + 10,
                                                    self.doc_items))
        self.results["doc_lookup_at_1000_rps_2_workers"] = r
        log(f"document lookups at 1000/s offered, 2 workers: p50 {r['p50_ms']} ms, "
            f"p99 {r['p99_ms']} ms, errors {r['errors']}")
        self.stop(node)
        self.results["workers_writer_lock"] = [
            json.loads(line) for line in (self.work / "node-workers.log").read_text(
                errors="replace").splitlines() if '"writer_lock"' in line]
        log("workers' writers' lock: " + "; ".join(
            f"worker {x.get('worker')}: {x['requests']} requests, lock held "
            f"{x['lock_hold_ms_mean']} ms and waited {x['lock_wait_ms_mean']} ms per batch"
            for x in self.results["workers_writer_lock"]))

    def large(self, n_docs: int) -> None:
        """Lookup latency with a large watchlist, against the small-watchlist figure."""
        path = self.watchlist(n_docs - self.n_docs, 0, "large", first=self.n_docs)
        self.import_(path, n_docs - self.n_docs, "import_large")
        path.unlink()
        self.n_docs = n_docs
        node = self.start_node()
        target = f"127.0.0.1:{self.ports['KAZ-BS']}"
        small_runs = self.results["doc_lookup_at_250_rps"].get("p99_runs_ms") or [
            self.results["doc_lookup_at_250_rps"]["p99_ms"]]
        small_ref = statistics.median(small_runs)
        for rate in (250, 1000):
            runs = []
            for _ in range(self.large_runs if rate == 250 else 1):  # issue 16: three runs
                runs.append(self.load(
                    target=target, method="/bxnode.v1.NodeService/Lookup", mode="open",
                    rate=rate, payloads=self.signed_requests(int(rate * self.seconds) + 10,
                                                             self.doc_items)))
            r = runs[0]
            small = small_ref if rate == 250 else \
                self.results[f"doc_lookup_at_{rate}_rps"]["p99_ms"]
            r["p99_ratio_to_small"] = round(r["p99_ms"] / small, 3) if small else 0
            r["watchlist_documents"] = n_docs
            if rate == 250:
                r["runs"] = [{"p99_ms": x["p99_ms"], "p50_ms": x["p50_ms"],
                              "errors": x["errors"],
                              "p99_ratio_to_small": round(x["p99_ms"] / small, 3)
                              if small else 0} for x in runs]
                r["small_p99_runs_ms"] = small_runs
            self.results[f"doc_lookup_large_at_{rate}_rps"] = r
        self.results["node_peak_rss_mb_large"] = peak_rss_mb(node.pid)
        r = self.results["doc_lookup_large_at_250_rps"]
        log(f"{n_docs:,} documents: p99 at 250/s in {self.large_runs} run(s) "
            f"{[x['p99_ms'] for x in r['runs']]} ms against the small figure's median "
            f"{small_ref} ms: {[x['p99_ratio_to_small'] for x in r['runs']]}x, "
            f"RSS {self.results['node_peak_rss_mb_large']} MB")
        self.stop(node)

    def audit_start(self) -> subprocess.Popen[str]:
        """The Merkle audit log benchmark (benchmarks/audit.py), in its own process: it runs
        beside the in-process matching benchmark, one core each."""
        args = ["--smoke"] if self.smoke else ["--entries", "1000000", "--appends", "20000"]
        return subprocess.Popen([PY, "-m", "benchmarks.audit", *args], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def audit_finish(self, proc: subprocess.Popen[str]) -> None:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"bench: audit benchmark failed: {err[-2000:]}")
        r = json.loads(out)
        self.results["audit"] = r
        log(f"audit appends: {r['appends_per_s_per_entry_commit']:,}/s committing each, "
            f"{r['appends_per_s_group_commit']:,}/s with group commit; verify of "
            f"{r['verify_entries']:,} entries in {r['verify_seconds']} s")

    def matching(self) -> None:
        """Person matching: quality through ``bxnode names compare``, speed in-process."""
        from benchmarks.matching import QUALITY_SETS, speed

        for name in QUALITY_SETS:
            path = ROOT / "tests" / "data" / "names" / name
            report = self.work / f"names-{name}.report.json"
            proc = subprocess.run([PY, "-m", "node.cli.main", "names", "compare", "--strict",
                                   str(path), "--report", str(report)],
                                  capture_output=True, text=True, cwd=ROOT, timeout=300)
            if proc.returncode != 0:
                raise SystemExit(f"bench: names compare failed: {proc.stderr.strip()}")
            got = [json.loads(x)["match"] for x in proc.stdout.splitlines()]
            want = [json.loads(x)["match"] for x in path.read_text().splitlines()]
            tp = sum(1 for g, w in zip(got, want, strict=True) if g and w)
            fp = sum(1 for g, w in zip(got, want, strict=True) if g and not w)
            fn = sum(1 for g, w in zip(got, want, strict=True) if w and not g)
            p = tp / (tp + fp) if tp + fp else 0.0
            r = tp / (tp + fn) if tp + fn else 0.0
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            kinds = json.loads(report.read_text())["kinds"]
            self.results[f"names_{name.split('.')[0]}"] = {
                "pairs": len(want), "precision": round(p, 4), "recall": round(r, 4),
                "f1": round(f1, 4), "below_1": {
                    k: f"{v['correct']}/{v['pairs']}" for k, v in kinds.items()
                    if v["correct"] != v["pairs"]}}
            log(f"names compare {name}: P {p:.4f} R {r:.4f} F1 {f1:.4f}")
        n = 20_000 if self.smoke else 1_000_000
        self.results["person_index"] = speed(n, 500 if self.smoke else 2000)
        s = self.results["person_index"]
        log(f"person index of {n:,}: build {s['index_build_s']} s, lookup p99 {s['p99_ms']} ms")
        from benchmarks.index_delta import run as index_delta  # one alert change, at n persons

        d = self.results["index_delta"] = index_delta(n)
        log(f"one alert change at {n:,} persons blocks the database thread "
            f"{d['after_delta_ms_p50']} ms (a full rebuild before: {d['before_full_rebuild_s']} s)")

    def postgresql(self, base: float) -> None:
        from benchmarks.replicas import run_postgresql

        if self.smoke and self.only != "postgresql":
            # make bench-smoke runs inside make test and is already about a minute on
            # this machine; a cluster, two replicas and fail-over rounds add ~30 s more.
            why = ("not in --smoke (keeps make test fast); "
                   "`python -m benchmarks.run --smoke --only postgresql` runs them")
            self.results["postgresql"] = {"skipped": why}
            log(f"PostgreSQL scenarios skipped: {why}")
            return
        run_postgresql(self, base)

    def run(self) -> dict[str, Any]:
        self.n_docs = 2_000 if self.smoke else 100_000
        self.n_persons = 500 if self.smoke else 10_000
        self.federation()
        wl = self.watchlist(self.n_docs, self.n_persons, "small")
        self.import_(wl, self.n_docs + self.n_persons, "import_small")
        base = self.baseline()
        if self.only == "postgresql":
            self.postgresql(base)
            return self.results
        target, method = f"127.0.0.1:{self.ports['KAZ-BS']}", "/bxnode.v1.NodeService/Lookup"
        if self.only == "fairness":
            self.fairness(target, method)
            return self.results
        if self.only == "workers":
            self.workers(base, target, method)
            return self.results
        if self.only in ("lookup", "batch", "person"):
            node = self.start_node()
            {"lookup": lambda: self.single(base, target, method),
             "batch": lambda: self.batch(target, method),
             "person": lambda: self.person(base, target, method)}[self.only]()
            self.stop(node)
            return self.results
        if self.only == "import":
            self.import_only()
            return self.results
        if self.only == "large":  # the small-watchlist reference, then the large case
            node = self.start_node()
            self.single(base, target, method)
            self.stop(node)
            self.large(int(os.environ.get("BXNODE_BENCH_LARGE", "10000000")))
            return self.results
        self.scenarios(base)
        self.postgresql(base)
        audit = self.audit_start()
        self.matching()
        self.audit_finish(audit)
        self.large(20_000 if self.smoke else int(os.environ.get("BXNODE_BENCH_LARGE",
                                                                 "10000000")))
        return self.results

    def cleanup(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def targets(results: dict[str, Any]) -> list[str]:
    """Issue 16's targets (and issue 12's fairness figure), each with its figure and ratio
    from this run, SQLCipher beside PostgreSQL with two replicas: met or not met."""
    base = results["baseline_echo"]["throughput_rps"] or 1.0

    def get(key: str, *path: str) -> Any:
        v: Any = results.get(key)
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        return v

    def ratio(key: str) -> tuple[str, bool | None]:
        tput = get(key, "throughput_rps")
        if tput is None:
            return "not measured", None
        return f"{tput:,.0f}/s = {tput / base:.2f}x echo", None

    def at_least(key: str, want: float) -> tuple[str, bool | None]:
        text, _ = ratio(key)
        tput = get(key, "throughput_rps")
        return text, None if tput is None else tput / base >= want

    def p99_at(key: str, want_ms: float) -> tuple[str, bool | None]:
        r = results.get(key)
        if not r:
            return "not measured", None
        ok = r["p99_ms"] <= want_ms and r["errors"] == 0
        return (f"p99 {r['p99_ms']} ms, {r['throughput_rps']:,.0f}/s answered, "
                f"{r['errors']} errors"), ok

    def checks(key: str) -> tuple[str, bool | None]:
        n = get(key, "document_checks_per_s")
        return ("not measured", None) if n is None else (f"{n:,} checks/s", n >= 100_000)

    def imported() -> tuple[str, bool | None]:
        big, small = results.get("import_large"), results.get("import_small")
        if not big or not small:
            return "not measured", None
        flat = big.get("peak_memory_mb", 0) <= 1.5 * max(small.get("peak_memory_mb", 0), 1)
        return (f"{big['rows_per_s']:,} rows/s of {big['rows']:,}; peak memory (PSS) "
                f"{big.get('peak_memory_mb')} MB (small import {small.get('peak_memory_mb')} "
                "MB)",
                big["rows_per_s"] >= 250_000 and flat)

    def large() -> tuple[str, bool | None]:
        r = results.get("doc_lookup_large_at_250_rps")
        if not r or "runs" not in r:
            return "not measured", None
        each = ", ".join(f"{x['p99_ratio_to_small']}x" for x in r["runs"])
        return (f"{r['watchlist_documents']:,} docs, {len(r['runs'])} run(s): {each} (p99 "
                f"{[x['p99_ms'] for x in r['runs']]} ms against "
                f"{r['small_p99_runs_ms']} ms)",
                all(x["p99_ratio_to_small"] <= 1.2 for x in r["runs"]))

    def pg_import() -> tuple[str, bool | None]:
        r = results.get("pg_import_small")
        return (("not measured", None) if not r else
                (f"{r['rows_per_s']:,} rows/s of {r['rows']:,} (the 10M import is not run "
                 "on PostgreSQL: it would take the suite past an hour)", None))

    def fairness() -> tuple[str, bool | None]:
        f = results.get("fairness")
        if not f:
            return "not measured", None
        first = (f"; from the flood's first call {f['p99_ratio_from_the_floods_start']}x "
                 f"with its agreed burst of {f['flood_limit']}, "
                 f"{f['p99_ratio_from_the_floods_start_small_burst']}x with a burst of "
                 f"{f['small_burst']}" if "small_burst" in f else "")
        return (f"{f['p99_ratio']}x ({results['fairness_modest_alone']['p99_ms']} ms alone, "
                f"{results['fairness_modest_under_flood']['p99_ms']} ms flooded{first})",
                f["p99_ratio"] <= 2)

    pg = "_2_replicas"
    rows = [
        ("single signed lookups >= 0.5x echo", at_least("doc_lookup_saturation", 0.5),
         at_least(f"pg_doc_lookup_saturation{pg}", 0.5)),
        ("p99 <= 10 ms at 1,000/s offered", p99_at("doc_lookup_at_1000_rps", 10),
         p99_at(f"pg_doc_lookup_at_1000_rps{pg}", 10)),
        ("batches >= 100,000 document checks/s", checks("batch100_saturation"),
         checks(f"pg_batch100_saturation{pg}")),
        ("import >= 250,000 rows/s at 10,000,000, memory flat", imported(), pg_import()),
        ("lookup p99 at 10,000,000 docs <= 1.2x small, three runs", large(),
         ("not measured (no 10M import on PostgreSQL)", None)),
        ("person lookups >= 0.4x echo", at_least("person_lookup_saturation", 0.4),
         at_least(f"pg_person_lookup_saturation{pg}", 0.4)),
        ("fairness (issue 12): modest peer's p99 under a 10x flood <= 2x alone", fairness(),
         ("not measured", None)),
    ]

    def cell(v: tuple[str, bool | None]) -> str:
        text, ok = v
        return text + ("" if ok is None else (" — **met**" if ok else " — **not met**"))

    out = ["| target (issue 16) | SQLCipher | PostgreSQL, two replicas |", "|---|---|---|"]
    out += [f"| {name} | {cell(a)} | {cell(b)} |" for name, a, b in rows]
    return out


def table(results: dict[str, Any]) -> str:
    base = results["baseline_echo"]["throughput_rps"]
    rows = [("scenario", "throughput", "ratio to echo", "p50 ms", "p95 ms", "p99 ms", "errors")]

    def add(name: str, key: str, unit: str = "/s", scale: float = 1) -> None:
        r = results.get(key)
        if not r:
            return
        tput = r["throughput_rps"] * scale
        rows.append((name, f"{tput:,.0f}{unit}", f"{r['throughput_rps'] / base:.2f}",
                     str(r["p50_ms"]), str(r["p95_ms"]), str(r["p99_ms"]), str(r["errors"])))

    add("bare gRPC echo (baseline, mTLS)", "baseline_echo")
    add("document lookup, saturation", "doc_lookup_saturation")
    for rate in (250, 1000, 2000):
        add(f"document lookup, {rate}/s offered", f"doc_lookup_at_{rate}_rps")
    add("batch of 100, saturation (document checks)", "batch100_saturation", " checks/s", 100)
    add("person lookup, saturation", "person_lookup_saturation")
    add("person lookup, 1000/s offered", "person_lookup_at_1000_rps")
    add("document lookup, saturation, --workers 2", "doc_lookup_saturation_2_workers")
    add("document lookup, 1000/s offered, --workers 2", "doc_lookup_at_1000_rps_2_workers")
    fair = results.get("fairness")
    if fair:
        add(f"fairness: one peer at {fair['modest_rate']}/s, alone",
            "fairness_modest_alone")
        add(f"fairness: the same while another floods at {fair['flood_rate']}/s "
            f"(limit {fair['flood_limit']}/s)", "fairness_modest_under_flood")
        if "fairness_modest_from_the_floods_start" in results:
            add("fairness: the same, measured from the flood's first call (its burst)",
                "fairness_modest_from_the_floods_start")
        if "fairness_modest_from_the_floods_start_small_burst" in results:
            add(f"fairness: the same from the flood's first call, its agreed burst "
                f"{fair['small_burst']} instead of {fair['flood_limit']}",
                "fairness_modest_from_the_floods_start_small_burst")
        if "fairness_modest_under_flood_without_gate" in results:
            add("fairness: the same flood, the node without its fair gate",
                "fairness_modest_under_flood_without_gate")
        if "fairness_modest_under_flood_without_stream_limit" in results:
            add("fairness: the same flood, the node without its stream limit",
                "fairness_modest_under_flood_without_stream_limit")
        if "fairness_modest_under_flood_without_pacing" in results:
            add("fairness: the same flood, the node refusing at once (rate_wait_ms = 0)",
                "fairness_modest_under_flood_without_pacing")
    for label, name in (("1_replica", "one replica"), ("2_replicas", "two replicas")):
        add(f"PostgreSQL, {name}: document lookup, saturation",
            f"pg_doc_lookup_saturation_{label}")
        add(f"PostgreSQL, {name}: document lookup, 250/s offered",
            f"pg_doc_lookup_at_250_rps_{label}")
        add(f"PostgreSQL, {name}: document lookup, 1000/s offered",
            f"pg_doc_lookup_at_1000_rps_{label}")
        add(f"PostgreSQL, {name}: batch of 100, saturation (document checks)",
            f"pg_batch100_saturation_{label}", " checks/s", 100)
        add(f"PostgreSQL, {name}: person lookup, saturation",
            f"pg_person_lookup_saturation_{label}")
    large = results.get("doc_lookup_large_at_250_rps", {})
    for rate in (250, 1000):
        if f"doc_lookup_large_at_{rate}_rps" in results:
            add(f"document lookup, {large['watchlist_documents']:,} docs, {rate}/s offered",
                f"doc_lookup_large_at_{rate}_rps")
    out = ["| " + " | ".join(r) + " |" for r in rows]
    out.insert(1, "|" + "---|" * len(rows[0]))
    out += ["", *targets(results)]
    extra = [
        "",
        f"- watchlist import: {results['import_small']['rows_per_s']:,} rows/s (small)"
        + (f", {results['import_large']['rows_per_s']:,} rows/s (large)"
           if "import_large" in results else "")
        + (f"; into PostgreSQL {results['pg_import_small']['rows_per_s']:,} rows/s (small)"
           if "pg_import_small" in results else ""),
    ]
    if "audit" in results:
        a = results["audit"]
        extra.append(
            f"- audit: {a['appends_per_s_per_entry_commit']:,} durable appends/s "
            f"committing each, {a['appends_per_s_group_commit']:,}/s with group "
            f"commit; full verification of {a['verify_entries']:,} entries "
            f"{a['verify_seconds']} s; proofs at 10M entries: "
            f"{a['max_inclusion_proof_hashes_10M']} / "
            f"{a['max_consistency_proof_hashes_10M']} hashes")
    if results.get("node_gc_pauses"):
        runs = results["node_gc_pauses"]
        full = [r for r in runs if r["gen2_collections"]]
        extra.append(
            f"- garbage collection in the {len(runs)} node runs (each one's startup heap "
            f"frozen: {runs[0]['frozen_objects']:,} objects): full collections "
            + (", ".join(f"{r['gen2_collections']} (longest {r['gen2_max_ms']} ms)"
                         for r in full) or "none")
            + f" in {len(full)} of them; longest young collection "
            f"{max(max(r['gen0_max_ms'], r['gen1_max_ms']) for r in runs)} ms")
    if "node_peak_rss_mb_small" in results:
        extra.append(f"- node peak RSS: {results.get('node_peak_rss_mb_small')} MB (small "
                     f"watchlist), {results.get('node_peak_rss_mb_large')} MB (large)")
    pg = results.get("postgresql", {})
    if pg.get("skipped"):
        extra.append(f"- PostgreSQL scenarios skipped: {pg['skipped']}")
    elif pg:
        extra.append(f"- PostgreSQL {pg['server_version']} on this machine, fsync on, "
                     "synchronous_commit on; both replicas on one database")
    if fair:
        extra.append(f"- fairness: the modest peer's p99 under a flood from another peer at "
                     f"ten times its limit is {fair['p99_ratio']}x its unloaded p99 "
                     f"(target: within 2x; {fair.get('p99_ratio_without_gate', '-')}x without "
                     f"the fair gate, {fair.get('p99_ratio_without_stream_limit', '-')}x "
                     f"without the stream limit, "
                     f"{fair.get('p99_ratio_without_pacing', '-')}x refusing at once instead "
                     f"of pacing, {fair.get('p99_ratio_from_the_floods_start', '-')}x measured "
                     f"from the flood's first call with its agreed burst of "
                     f"{fair['flood_limit']}, "
                     f"{fair.get('p99_ratio_from_the_floods_start_small_burst', '-')}x with a "
                     f"burst of {fair.get('small_burst', '-')}); the flood's errors: "
                     f"{fair['flood']['codes']}")
        c = fair.get("refusal_cost")
        if c:
            extra.append(f"- an over-limit refusal costs the node {c['server_cpu_ms_per_refusal']}"
                         f" ms of CPU, an answered lookup {c['server_cpu_ms_per_answer']} ms "
                         f"({c['refusal_to_answer']:.0%}); {c['refused_per_s']:,} refusals/s "
                         "from one peer in a closed loop")
    fo = results.get("pg_failover")
    if fo:
        each = ", ".join(f"{r['failover_ms']}" for r in fo["rounds"])
        extra.append(
            f"- fail-over (SIGKILL of the replica in use, {fo['callers']} closed-loop "
            f"callers through the peer client): first answer on the survivor after "
            f"{each} ms (median {fo['median_ms']} ms); {fo['failed_requests']} requests "
            f"failed; longest call across a kill "
            f"{max(r['longest_call_across_kill_ms'] for r in fo['rounds'])} ms; "
            f"audit verify {fo['audit_verify']}")
    if large:
        extra.append(f"- large-watchlist p99 / small-watchlist p99 at 250/s offered: "
                     f"{large['p99_ratio_to_small']}")
    for key in ("names_dev", "names_heldout", "names_independent"):
        if key in results:
            q = results[key]
            extra.append(f"- person matching, {key[6:]} set ({q['pairs']} pairs, through "
                         f"`bxnode names compare`): P {q['precision']}, R {q['recall']}, "
                         f"F1 {q['f1']}; kinds below 1.0: {q.get('below_1') or 'none'}")
    if "person_index" in results:
        s = results["person_index"]
        extra.append(f"- person index of {s['persons']:,}: build {s['index_build_s']} s, "
                     f"in-process lookup p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms; "
                     f"present found {s['present_found']}, with a slip in the first "
                     f"letters {s.get('slipped_found', '-')}")
    return "\n".join(out + extra)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run for CI")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--only", choices=["postgresql", "fairness", "workers", "lookup", "batch",
                                       "person", "import", "large"],
                    help="the echo baseline and these scenarios only (results go to "
                         "<name>-<only>.json)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bxnode-bench-"))
    bench = Bench(work, args.smoke, args.only)
    t0 = time.perf_counter()
    try:
        results = bench.run()
    finally:
        bench.cleanup()
        if os.environ.get("BXNODE_BENCH_KEEP"):  # the node directories and logs, to read
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["meta"] = {"when": dt.datetime.now(dt.UTC).isoformat(), "smoke": args.smoke,
                       "machine": platform.machine(), "cpus": os.cpu_count(),
                       "python": platform.python_version(),
                       "wall_s": round(time.perf_counter() - t0, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    name = ("smoke" if args.smoke else "latest") + (f"-{args.only}" if args.only else "")
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    md = table(results)
    (args.out / f"{name}.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
