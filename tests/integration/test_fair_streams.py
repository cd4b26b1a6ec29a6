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

from pathlib import Path

from tests.integration.test_fair import flood_fed, flood_held
from tests.integration.test_rate_limit import _payloads

STREAMS = 4
BURST = 30


def test_a_connection_has_at_most_max_concurrent_streams_calls_in_the_node(
        tmp_path: Path) -> None:
    f, node = flood_fed(tmp_path, "# max_concurrent_streams = 32",
                        f"max_concurrent_streams = {STREAMS}")
    server = node.server
    assert server.writer is not None and server.gate.slots == 16
    assert server.max_concurrent_streams == STREAMS
    flood, modest = _payloads(f, "UZB-BS", BURST + 1), _payloads(f, "KGZ-BS", 1)
    seen: list[tuple[int, int]] = []  # (in processing, queued) while the thread is held
    order = flood_held(
        f, node, flood, modest[0],
        filled=("the connection's first calls are in processing",
                lambda: server.gate.busy >= STREAMS),
        asked=("KGZ-BS's call is in processing", lambda: server.gate.busy > STREAMS),
        held_check=lambda: seen.append((server.gate.busy, server.gate.queued)))
    # the flood's other 26 calls were sent first, and none is in the node
    assert seen == [(STREAMS + 1, 0)]
    assert sorted(order) == ["KGZ-BS"] + ["UZB-BS"] * (BURST + 1)
