"""One connection's flood waits on its own side, not in the node (issue 12 §5), with real
nodes over mTLS: counted by the node's fair gate, not timed.

KAZ-BS runs with ``[server] max_concurrent_streams = 4`` and its 16 processing slots.  Its
database thread is held, so every call it lets in stays in processing.  UZB-BS sends 30
calls over one connection (once it is up): four reach the node (the HTTP/2 stream limit),
the other 26 wait in UZB-BS's own channel; then KGZ-BS asks over its own connection and
gets a slot at once.  Without the stream limit the flood's calls went on reaching the node
(up to 16 in processing, the rest queued at the gate) ahead of KGZ-BS's.  Released, every
call is answered and the log verifies.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path

from node.cli.main import main as bxnode
from tests.federation import make_federation, sample_policy
from tests.integration.test_rate_limit import _call, _channel, _payloads
from tests.waiting import until

STREAMS = 4
BURST = 30


def test_a_connection_has_at_most_max_concurrent_streams_calls_in_the_node(
        tmp_path: Path) -> None:
    data = sample_policy()
    for a in data["bxnode"]["agreements"]:
        if (a["responder"], a["requester"]) == ("KAZ-BS", "UZB-BS"):
            a.update(rate_per_s=100, burst=100, max_in_flight=64)
    f = make_federation(tmp_path, policy_data=data)
    toml = f.dirs["KAZ-BS"] / "node.toml"
    text = toml.read_text()
    assert "# max_concurrent_streams = 32" in text
    toml.write_text(text.replace("# max_concurrent_streams = 32",
                                 f"max_concurrent_streams = {STREAMS}", 1))
    node = f.start("KAZ-BS")
    server = node.server
    assert server.writer is not None and server.gate.slots == 16
    assert server.max_concurrent_streams == STREAMS
    flood, modest = _payloads(f, "UZB-BS", BURST + 1), _payloads(f, "KGZ-BS", 1)
    release = threading.Event()
    try:
        with _channel(f, "UZB-BS") as uzb, _channel(f, "KGZ-BS") as kgz, \
                concurrent.futures.ThreadPoolExecutor(BURST + 1) as pool:
            # the connection is up and UZB-BS's side has the node's SETTINGS (the stream
            # limit): a burst sent within a new connection's first round trip is refused
            # (RST_STREAM REFUSED_STREAM, UNAVAILABLE), before the client knows the limit
            assert _call(uzb, flood.pop()) == ("OK", "")
            held = asyncio.run_coroutine_threadsafe(
                server.writer.call(lambda: release.wait(60)), node.loop)
            try:
                flooding = [pool.submit(_call, uzb, p, 60) for p in flood]
                until("the connection's first calls are in processing",
                      lambda: server.gate.busy >= STREAMS)
                asking = pool.submit(_call, kgz, modest[0], 60)
                until("KGZ-BS's call is in processing", lambda: server.gate.busy > STREAMS)
                # the flood's 26 other calls were sent first, and none is in the node
                assert (server.gate.busy, server.gate.queued) == (STREAMS + 1, 0)
            finally:
                release.set()
                held.result(10)
            assert asking.result() == ("OK", "")
            assert [x.result() for x in flooding] == [("OK", "")] * BURST
    finally:
        f.stop_all()
    order = [e["requester"] for e in f.audit("KAZ-BS") if e.get("event") == "lookup"]
    assert sorted(order) == ["KGZ-BS"] + ["UZB-BS"] * (BURST + 1)
    assert bxnode(["audit", "verify", "--node-dir", str(f.dirs["KAZ-BS"])]) == 0
