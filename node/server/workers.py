"""``bxnode serve --workers N``: several serving processes of one node on one port.

A single Python process answers on one core.  With ``--workers N`` the ``serve`` process
becomes a supervisor: it reserves the listen port, starts N worker processes
(``bxnode serve --worker I/N``) that each open their own database connection and their
own gRPC server on that port with SO_REUSEPORT (as in gRPC's multiprocessing example:
the kernel spreads connections over the workers, each verifying, deciding and signing on
its own core), waits until every worker is serving, and then writes ``serve.port``.

What keeps N workers one node: every worker commits through the database, which
sequences them — on SQLCipher the file's write lock (taken, fairly, through a lock file
beside the database: ``node.store.sqlcipher``), on PostgreSQL the ``audit`` advisory lock —
so there is one audit log in one total order, nonces refused across workers (a primary
key), quotas exact and the person index following the watchlist generation, exactly as
for replicas on several machines.  Worker 0 is the *primary*: it alone runs the local
listeners (the LocalService, RecordCrossings) and the background jobs (witnessing,
registry refresh, retention sweep); the others follow the registry versions the primary
applies.  The per-peer limits are the whole node's too: the supervisor makes the table of
buckets every worker maps (``serve.limits``, node/server/shared_limits.py) before it
starts them, clears a dead worker's requests in flight from it, and removes it at the end.
The supervisor forwards SIGTERM/SIGINT to every worker, restarts a worker that dies
(after a pause that grows, so a crash loop does not spin), and exits when all are
stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from node.server.shared_limits import LIMITS_FILE, create_table, forget_worker

__all__ = ["WorkerSpec", "parse_worker", "reserve_port", "supervise"]

log = structlog.get_logger("bxnode.server.workers")

MAX_WORKERS = 64
_READY_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    index: int
    count: int

    @property
    def primary(self) -> bool:
        return self.index == 0


def parse_worker(text: str) -> WorkerSpec:
    """``I/N`` as given to a worker process; ValueError with a one-line message otherwise."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise ValueError(f"--worker must be I/N, not {text!r}") from None
    if not (1 <= n <= MAX_WORKERS and 0 <= i < n):
        raise ValueError(f"--worker {text}: need 0 <= I < N <= {MAX_WORKERS}")
    return WorkerSpec(i, n)


def reserve_port(listen: str) -> tuple[str, socket.socket]:
    """Bind ``host:port`` (port 0: a free one) with SO_REUSEPORT and keep the socket, not
    listening, for as long as the node serves: nobody else can take the port meanwhile,
    and every worker binds it too.  Returns ``host:port`` with the real port."""
    host, _, port = listen.rpartition(":")
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((bare or "0.0.0.0", int(port)))  # noqa: S104 (the operator's listen address)
    real = sock.getsockname()[1]
    return f"{host}:{real}", sock


@dataclass
class _Worker:
    spec: WorkerSpec
    argv: list[str]
    port_file: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started: float = field(default=0.0)

    def start(self) -> None:
        self.port_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL)
        self.started = time.monotonic()


def supervise(*, node_dir: Path, listen: str, workers: int, extra: list[str],
              on_ready: object = None) -> int:
    """Run ``workers`` worker processes until SIGTERM/SIGINT; returns the exit status."""
    address, reserved = reserve_port(listen)
    limits = node_dir / LIMITS_FILE
    create_table(limits, workers=workers)
    stopping = threading.Event()
    pool = [
        _Worker(spec=WorkerSpec(i, workers),
                argv=[sys.executable, "-m", "node.cli.main", "serve", "--node-dir",
                      str(node_dir), "--listen", address, "--worker", f"{i}/{workers}",
                      *extra],
                port_file=node_dir / f"serve.worker-{i}.port")
        for i in range(workers)]

    def stop(_signum: int, _frame: object) -> None:
        stopping.set()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for w in pool:
            w.start()
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while not all(w.port_file.exists() for w in pool):
            if stopping.is_set() or time.monotonic() > deadline or any(
                    w.proc is not None and w.proc.poll() is not None for w in pool):
                log.error("workers_did_not_start",
                          ready=sum(w.port_file.exists() for w in pool), workers=workers)
                stopping.set()
                break
            stopping.wait(0.05)
        else:
            log.info("serving_with_workers", workers=workers, listen=address)
            if callable(on_ready):
                on_ready(int(address.rpartition(":")[2]))
        while not stopping.is_set():
            for w in pool:
                assert w.proc is not None
                code = w.proc.poll()
                if code is None:
                    continue
                w.restarts += 1
                pause = min(30.0, 0.5 * 2 ** min(w.restarts, 6))
                log.error("worker_died", worker=w.spec.index, exit_code=code,
                          restart_in_s=pause)
                # its calls died with it: they hold none of their peers' slots any more
                forget_worker(limits, worker=w.spec.index, workers=workers)
                if stopping.wait(pause):
                    break
                w.start()
            stopping.wait(0.2)
    finally:
        for w in pool:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        for w in pool:
            if w.proc is not None:
                try:
                    w.proc.wait(30)
                except subprocess.TimeoutExpired:
                    w.proc.kill()
                    w.proc.wait(5)
            w.port_file.unlink(missing_ok=True)
        for s, handler in previous.items():
            signal.signal(s, handler)
        with contextlib.suppress(OSError):
            reserved.close()
        limits.unlink(missing_ok=True)
    codes = [w.proc.returncode for w in pool if w.proc is not None]
    return 0 if all(c in (0, -signal.SIGTERM) for c in codes) else 1


def write_port_file(path: Path, port: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)
