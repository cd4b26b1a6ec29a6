"""SQL statements and in-process CPU per signed lookup: ``python -m benchmarks.statements``.

The exchange exactly as the server runs it, minus gRPC: KGZ-BS's signed single document
lookups, each prepared (steps 1-6), decided (policy) and completed (steps 7-11) inside one
group-commit transaction of ``--batch`` requests that seals one signed checkpoint and
commits durably, on a real node directory (``bxnode init --dev``, the demo watchlist, the
shipped Rego policy) over SQLCipher and, where a PostgreSQL can be had (the tests'
throwaway cluster), over PostgreSQL.

Two figures per backend, both far less sensitive than wall-clock latency to other work on
a shared machine: **statements per lookup** (every statement sent to the database,
BEGIN/SAVEPOINT/COMMIT included: on PostgreSQL each one is a round trip), counted at the
driver, exact and repeatable; and **CPU per lookup** of this process (``time
.process_time``; PostgreSQL's own CPU is the server's, not counted here).  Each also
*inside the batch's transaction* (``locked_*``): the serial section, under the writers'
lock that every worker and replica shares; the answer's reads before it (``preread``)
are outside, as a node with ``serve --workers`` or PostgreSQL replicas runs them (a lone
SQLCipher node reads them under the lock: node/server/assemble.py).  Prints JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["measure"]


@contextmanager
def _counting(store: Any, calls: list[int] | None = None) -> Iterator[Callable[[], int]]:
    """Count every statement the store's connection(s) send, at the driver (on PostgreSQL
    also ``calls``: an ``executemany`` counted once, its rows pipelined in one go)."""
    n = [0]
    calls = calls if calls is not None else [0]
    conn = getattr(store, "_conn", None)
    if hasattr(conn, "set_trace_callback"):  # SQLite / SQLCipher
        def trace(_sql: str) -> None:
            n[0] += 1

        conn.set_trace_callback(trace)  # type: ignore[union-attr]
        try:
            yield lambda: n[0]
        finally:
            conn.set_trace_callback(None)  # type: ignore[union-attr]
        return
    import psycopg  # PostgreSQL: every statement goes through a cursor (Connection.execute
    # makes one), so counting at the cursor counts each once

    real_cur, real_many = psycopg.Cursor.execute, psycopg.Cursor.executemany

    def cur_execute(self: Any, *a: Any, **k: Any) -> Any:
        n[0] += 1
        calls[0] += 1
        return real_cur(self, *a, **k)

    def cur_many(self: Any, query: Any, params: Any, *a: Any, **k: Any) -> Any:
        params = list(params)
        n[0] += len(params)  # one statement per row (pipelined: one round trip for all)
        calls[0] += 1
        return real_many(self, query, params, *a, **k)

    psycopg.Cursor.execute = cur_execute  # type: ignore[method-assign]
    psycopg.Cursor.executemany = cur_many  # type: ignore[method-assign]
    try:
        yield lambda: n[0]
    finally:
        psycopg.Cursor.execute = real_cur  # type: ignore[method-assign]
        psycopg.Cursor.executemany = real_many  # type: ignore[method-assign]


def measure(node_dir: Path, asker_dir: Path, members: Path, *, lookups: int,
            batch: int) -> dict[str, Any]:
    """``lookups`` signed single lookups in batches of ``batch``; statements and CPU each."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from node.app import NodeRuntime
    from node.client.peer import PeerClient, QueryContext
    from node.config import load_config
    from node.core.model import DocumentQuery, QueryKind
    from node.federation.members_file import load_members
    from node.federation.pki import load_signing_key

    rt = NodeRuntime.load(load_config(node_dir))
    try:
        client = PeerClient(node_id="KGZ-BS", signing_key=load_signing_key(
            asker_dir / "signing.key"), directory=load_members(members), tls=None,
            store=None, clock_ms=lambda: time.time_ns() // 1_000_000, dev_plaintext=True)
        ctx = QueryContext(operator="bench", purpose="border_check", legal_basis="bench",
                           case_ref="BENCH")
        fp = hashlib.sha256(x509.load_pem_x509_certificate(
            (asker_dir / "tls.crt").read_bytes()).public_bytes(
            serialization.Encoding.DER)).hexdigest()
        envs = [client.build(ctx, QueryKind.DOCUMENT, [DocumentQuery(
            number="N0481516", issuing_state="KAZ")]) for _ in range(lookups + batch)]
        responder, handler, store = rt.responder, rt.lookup, rt.store

        locked = [0.0, 0]  # CPU seconds and statements inside the batch's transaction

        def one_batch(chunk: list[Any], count: Callable[[], int] = lambda: 0) -> None:
            # as the server does: prepared and decided, read before the lock (preread),
            # then steps 7-11 in one transaction under the writers' lock
            decided = [responder.predecide(responder.prepare(handler, env, tls_fingerprint=fp))
                       for env in chunk]
            with store.reading():  # as BatchWriter does: the batch's reads together
                pending = [responder.preread(p) for p in decided]
            t0, n0 = time.process_time(), count()
            with store.transaction():
                for p in pending:
                    ex = responder.complete(p)
                    assert ex.error is None, ex.error
            locked[0] += time.process_time() - t0
            locked[1] += count() - n0

        one_batch(envs[:batch])  # warm-up: caches, the policy's decision cache
        locked[:] = [0.0, 0]
        calls = [0]
        with _counting(store, calls) as count:
            t0 = time.process_time()
            for i in range(batch, batch + lookups, batch):
                one_batch(envs[i:i + batch], count)
            cpu = time.process_time() - t0
            statements = count()
        out = {"lookups": lookups, "batch": batch,
               "statements_per_lookup": round(statements / lookups, 2),
               "cpu_ms_per_lookup": round(cpu * 1000 / lookups, 3),
               "locked_statements_per_lookup": round(locked[1] / lookups, 2),
               "locked_cpu_ms_per_lookup": round(locked[0] * 1000 / lookups, 3)}
        if calls[0]:  # PostgreSQL: statements sent, an executemany's rows counted once
            out["calls_per_lookup"] = round(calls[0] / lookups, 2)
        return out
    finally:
        rt.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lookups", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--no-postgresql", action="store_true")
    args = ap.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from tests.federation import make_federation

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bxnode-statements-") as tmp:
        f = make_federation(Path(tmp), node_ids=("KAZ-BS", "KGZ-BS"))
        kaz, kgz = f.dirs["KAZ-BS"], f.dirs["KGZ-BS"]
        out["sqlcipher"] = measure(kaz, kgz, f.root / "members.json", lookups=args.lookups,
                                   batch=args.batch)
        if not args.no_postgresql:
            out["postgresql"] = _postgresql(f.root, kaz, kgz, args)
    print("RESULT " + json.dumps(out))
    return 0


def _postgresql(root: Path, kaz: Path, kgz: Path, args: argparse.Namespace) -> Any:
    import shutil

    from node.cli.main import main as bxnode
    from tests.pgcluster import PgCluster, PgClusterUnavailable, to_postgresql

    try:
        cluster = PgCluster.create()
        cluster.start()
    except PgClusterUnavailable as exc:
        return {"skipped": str(exc)}
    try:
        pg = root / "kaz-pg"
        shutil.copytree(kaz, pg, ignore=shutil.ignore_patterns("node.db*", "*.sock"))
        to_postgresql(pg, dsn=cluster.dsn(cluster.create_database()),
                      password=cluster.password, field_key="5a" * 32,
                      listen="127.0.0.1:1")
        assert bxnode(["store", "migrate", "--node-dir", str(pg)]) == 0
        from tests.federation import DEMO

        assert bxnode(["watchlist", "import", str(DEMO / "kaz-watchlist.csv"),
                       "--node-dir", str(pg)]) == 0
        return measure(pg, kgz, root / "members.json", lookups=args.lookups // 4,
                       batch=args.batch)
    finally:
        cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
