"""``make soak``: a node under a fixed load for an hour, and its memory.

A real ``bxnode serve`` (SQLCipher, the small watchlist of ``make bench``) is asked
signed document lookups at ``SOAK_RATE`` per second (default 200) for ``SOAK_SECONDS``
(default 3600), in rounds of a minute; after each round the node's resident memory is
sampled.  Memory is flat when the last quarter's median is within ``SOAK_MAX_GROWTH``
(default 10 %) of the first quarter's; the run fails otherwise, or when any request
failed.  Only 127.0.0.1 is loaded; every round is bounded in count and time.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import Bench, log


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", "3600"))
    rate = float(os.environ.get("SOAK_RATE", "200"))
    growth = float(os.environ.get("SOAK_MAX_GROWTH", "0.10"))
    work = Path(tempfile.mkdtemp(prefix="bxnode-soak-"))
    bench = Bench(work, smoke=True)
    bench.seconds = min(60.0, seconds)
    try:
        bench.n_docs, bench.n_persons = 100_000, 10_000
        bench.federation()
        bench.import_(bench.watchlist(bench.n_docs, bench.n_persons, "soak"),
                      bench.n_docs + bench.n_persons, "import_soak")
        node = bench.start_node(log="node-soak.log")
        target = f"127.0.0.1:{bench.ports['KAZ-BS']}"
        samples: list[float] = []
        errors = sent = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            r = bench.load(target=target, method="/bxnode.v1.NodeService/Lookup", mode="open",
                           rate=rate, payloads=bench.signed_requests(
                               int(rate * bench.seconds) + 10, bench.doc_items))
            sent += r["sent"]
            errors += r["errors"]
            samples.append(round(rss_mb(node.pid), 1))
            log(f"soak: {time.monotonic() - t0:,.0f} s, {sent:,} sent, {errors} errors, "
                f"p99 {r['p99_ms']} ms, node RSS {samples[-1]} MB")
        bench.stop(node)
        quarter = max(1, len(samples) // 4)
        first, last = statistics.median(samples[:quarter]), statistics.median(samples[-quarter:])
        flat = last <= first * (1 + growth)
        report = {"seconds": round(time.monotonic() - t0), "rate": rate, "sent": sent,
                  "errors": errors, "rss_mb": samples, "first_quarter_mb": first,
                  "last_quarter_mb": last, "flat": flat}
        print(json.dumps(report))
        return 0 if flat and errors == 0 else 1
    finally:
        bench.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
