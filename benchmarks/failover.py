"""Fail-over load, run in its own process: ``python -m benchmarks.failover SPEC.json``.

Unlike ``benchmarks/loadgen.py`` (pre-signed bytes to fixed addresses), this drives the
real peer client (:class:`node.client.peer.PeerClient`): ``callers`` threads share one
client and send signed document lookups to ``peer`` back to back, so what is measured
is what a neighbouring node sees when a replica dies: the client's own fail-over
(``node/client/failover.py``: the next address on UNAVAILABLE or a deadline, a freshly
signed request when the first may have been delivered), fresh TLS to the survivor, and
the survivor taking over the database's audit lock.

Once every caller has had one answer it writes ``time.monotonic()`` to ``ready`` and
runs ``seconds`` more.  ``CLOCK_MONOTONIC`` is one clock for every process on the
machine, so the benchmark compares these times with the moment it sent SIGKILL.

Writes one JSON object to ``out`` (stdout carries the client's log lines): ``calls`` as
``[start, end, address]`` (every answered call), ``errors``
as ``[time, exception type, reason]`` (every call that raised).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from node.app import now_ms
    from node.client.peer import PeerClient, QueryContext
    from node.core.model import DocumentQuery, QueryKind
    from node.federation.members_file import load_members
    from node.federation.pki import TlsMaterial, load_signing_key

    d = Path(spec["node_dir"])
    client = PeerClient(node_id=spec["node_id"], signing_key=load_signing_key(d / "signing.key"),
                        directory=load_members(Path(spec["members"])),
                        tls=TlsMaterial.from_files(cert=d / "tls.crt", key=d / "tls.key",
                                                   ca=d / "ca.crt"),
                        store=None, clock_ms=now_ms, timeout_s=float(spec["timeout_s"]))
    ctx = QueryContext(operator="bench", purpose="border_check", legal_basis="bench",
                       case_ref="BENCH")
    n_docs = int(spec["n_docs"])
    calls: list[tuple[float, float, str]] = []
    errors: list[tuple[float, str, str]] = []
    lock = threading.Lock()
    warmed = threading.Barrier(int(spec["callers"]) + 1)
    end = [float("inf")]

    def caller(k: int) -> None:
        i = k
        first = True
        while True:
            t0 = time.monotonic()
            if t0 >= end[0]:
                return
            items = [DocumentQuery(number=f"N{(i * 7919) % n_docs:08d}", issuing_state="KAZ")]
            i += int(spec["callers"])
            try:
                out = client.lookup_outcome(spec["peer"], ctx, QueryKind.DOCUMENT, items)
            except Exception as exc:  # counted: the benchmark reports every failed call
                with lock:
                    errors.append((time.monotonic(), type(exc).__name__,
                                   str(getattr(exc, "reason", ""))))
                if first:  # the node is not up: give up rather than spin
                    warmed.abort()
                    return
                continue
            with lock:
                calls.append((t0, time.monotonic(), out.exchange.address))
            if first:
                first = False
                try:
                    warmed.wait(30)
                except threading.BrokenBarrierError:
                    return

    threads = [threading.Thread(target=caller, args=(k,), daemon=True)
               for k in range(int(spec["callers"]))]
    for t in threads:
        t.start()
    try:
        warmed.wait(30)
    except threading.BrokenBarrierError:
        end[0] = 0.0
    else:
        ready = time.monotonic()
        end[0] = ready + float(spec["seconds"])
        # written whole, then renamed: the bench polls for the file and reads it at once
        tmp = Path(spec["ready"] + ".tmp")
        tmp.write_text(repr(ready))
        tmp.replace(spec["ready"])
    for t in threads:
        t.join(float(spec["seconds"]) + float(spec["timeout_s"]) + 5)
    client.close()
    with lock:
        return {"calls": list(calls), "errors": list(errors)}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    Path(spec["out"]).write_text(json.dumps(run(spec)))


if __name__ == "__main__":
    main()
