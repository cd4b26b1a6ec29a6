"""Audit log benchmark (``python -m benchmarks.audit``): durable appends/s and full verification.

Measured in one run, on this machine, on real SQLCipher files (WAL, synchronous=FULL):

* durable appends/s with group commit (the server's :class:`BatchWriter`, many concurrent
  requests, one commit and one signed checkpoint per batch) versus one commit (and one
  checkpoint) per entry;
* time to verify a log of 1,000,000 entries from scratch (``bxnode audit verify``'s code);
* inclusion and consistency proof sizes for a 10,000,000-entry log (arithmetic: RFC 9162).

No figure is asserted by any test.  ``--entries`` shrinks the verification log (``--smoke``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import nacl.signing

from node.audit.log import MerkleAuditLog
from node.audit.merkle import consistency_proof_length, inclusion_proof_length
from node.server.group_commit import BatchWriter
from node.store.sqlcipher import Store

KEY = bytes(range(32))
SK = nacl.signing.SigningKey(bytes(range(1, 33)))
#: A realistic responder entry (what the responder logs for one answered lookup).
EVENT: dict[str, Any] = {
    "event": "lookup", "request_id": "3f2a9c1b7d4e5f60", "verified": True,
    "tls_peer": "57e4889a3d8079b25670c5a56b0736c60890493ac01f9b9d4190d28e999c8833",
    "policy_digest": "a" * 64, "requester": "KGZ-BS", "request_digest": "b" * 64,
    "operator": "officer-7", "purpose": "border_check",
    "legal_basis": "Agreement on border cooperation, art. 7", "case_ref": "BCP-2026-0042",
    "issued_at_ms": 1_763_900_000_000, "query_kind": "document", "datasets": ["documents"],
    "data_types": ["document_number"], "items": 1, "decision": "allow", "reasons": [],
    "hits": 0, "no_hits": 1, "disclosed": ["action", "contact", "reference"],
    "outcome": "answered", "status": "OK", "response_digest": "c" * 64,
}


def _open(d: Path, name: str) -> tuple[Store, MerkleAuditLog]:
    store = Store.open(d / name, KEY, create=True)
    return store, MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)


def per_entry(d: Path, n: int) -> float:
    store, log = _open(d, "per-entry.db")
    t0 = time.perf_counter()
    for i in range(n):
        with store.transaction():
            log.append(EVENT, time_ms=1_763_900_000_000 + i)
    rate = n / (time.perf_counter() - t0)
    store.close()
    return rate


def group_commit(d: Path, n: int, *, concurrency: int, batch_max: int,
                 batch_ms: int) -> tuple[float, int]:
    store, log = _open(d, "group.db")

    async def main() -> tuple[float, int]:
        writer = BatchWriter(store=store, batch_max=batch_max, batch_ms=batch_ms)
        writer.start()
        counter = iter(range(n))

        async def client() -> None:
            for i in counter:
                def step(i: int = i) -> None:
                    with store.transaction():
                        log.append(EVENT, time_ms=1_763_900_000_000 + i)

                await writer.run_in_batch(step)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        batches = writer.batches
        await writer.stop()
        return n / elapsed, batches

    out = asyncio.run(main())
    store.close()
    return out


def verify_time(d: Path, n: int, batch: int = 10_000) -> tuple[float, float, int]:
    store, log = _open(d, "verify.db")
    t0 = time.perf_counter()
    done = 0
    while done < n:
        with store.transaction():
            for i in range(done, min(n, done + batch)):
                log.append(EVENT, time_ms=1_763_900_000_000 + i)
        done = min(n, done + batch)
    build = time.perf_counter() - t0
    store.close()
    store = Store.open(d / "verify.db", KEY)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)
    t0 = time.perf_counter()
    report = log.verify()
    elapsed = time.perf_counter() - t0
    store.close()
    if not report.ok or report.entries != n:
        raise SystemExit(f"bench: verification failed: {report.problem}")
    return elapsed, build, report.checkpoints


def run(*, entries: int, appends: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bxnode-bench-audit-") as tmp:
        d = Path(tmp)
        single = per_entry(d, min(appends, 3000))
        grouped, batches = group_commit(d, appends, concurrency=256, batch_max=256, batch_ms=5)
        verify_s, build_s, checkpoints = verify_time(d, entries)
    n = 10_000_000
    return {
        "appends_per_s_per_entry_commit": round(single),
        "appends_per_s_group_commit": round(grouped),
        "group_commit_batches": batches,
        "group_commit_speedup": round(grouped / single, 1),
        "verify_entries": entries,
        "verify_checkpoints": checkpoints,
        "verify_seconds": round(verify_s, 2),
        "build_seconds": round(build_s, 2),
        "max_inclusion_proof_hashes_10M": max(inclusion_proof_length(i, n)
                                              for i in (0, n // 2, n - 1, 8_388_607)),
        "max_consistency_proof_hashes_10M": max(consistency_proof_length(m, n)
                                                for m in (1, 3, 8_388_607, 8_388_609, n - 1)),
    }


def main() -> None:
    from node.logging import configure

    configure()  # the node's log lines (writer_lock at stop) on stderr: stdout is the JSON
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--entries", type=int, default=1_000_000, help="entries to verify")
    p.add_argument("--appends", type=int, default=20_000, help="durable appends to time")
    p.add_argument("--smoke", action="store_true", help="seconds-long version")
    args = p.parse_args()
    if args.smoke:
        args.entries, args.appends = 20_000, 2_000
    print(json.dumps(run(entries=args.entries, appends=args.appends), indent=2))


if __name__ == "__main__":
    main()
