"""The edge with the replicas' shared tokens (node/server/db_limits.py): what a call keeps
and gives back when the shared bucket refuses, or cannot be asked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from node.app import NodeRuntime
from node.config import load_config
from node.server.db_limits import DbTokens
from node.server.grpc_server import NodeServer
from node.server.limits import PeerLimits
from tests.federation import make_federation
from tests.unit.server._clock import Clock

LIMITS = PeerLimits(rate_per_s=1.0, burst=5, max_in_flight=10)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeRuntime]:
    fed = make_federation(tmp_path_factory.mktemp("edge"), node_ids=("KAZ-BS", "KGZ-BS"))
    rt = NodeRuntime.load(load_config(fed.dirs["KAZ-BS"]))
    yield rt
    rt.close()


def _server(runtime: NodeRuntime, connect: Any) -> NodeServer:
    server = NodeServer(responder=runtime.responder, tls=None, dev_plaintext=True)
    server.limiter._clock = Clock()  # type: ignore[attr-defined]  # held still
    server.shared_tokens = DbTokens(connect=connect, clock=Clock(1_800_000_000.0))
    return server


def _unreachable() -> Any:
    raise OSError("connection refused")


def test_an_unreachable_shared_bucket_leaves_the_local_decision_and_nothing_to_give_back(
        runtime: NodeRuntime) -> None:
    server = _server(runtime, _unreachable)
    try:
        assert server.limiter.reserve("KGZ-BS", LIMITS) == 0.0
        got = asyncio.run(server._take_shared("KGZ-BS", LIMITS, 0.0, peer="KGZ-BS",
                                              event="lookup", fp="f" * 64, raw=b"x"))
        assert got == (0.0, False)  # admitted on this replica's bucket; no shared token
        assert server.limiter.in_flight("KGZ-BS") == 1
    finally:
        assert server.shared_tokens is not None
        server.shared_tokens.close()


def test_a_shared_refusal_gives_the_local_slot_and_token_back(runtime: NodeRuntime) -> None:
    server = _server(runtime, _unreachable)
    tokens = server.shared_tokens
    assert tokens is not None
    tokens._denied["KGZ-BS"] = float("inf")  # refused by the shared bucket a moment ago
    try:
        assert [server.limiter.reserve("KGZ-BS", LIMITS) for _ in range(4)] == [0.0] * 4
        # the fourth call's shared token refused: 3 in flight, 2 local tokens again
        got = asyncio.run(server._take_shared("KGZ-BS", LIMITS, 0.0, peer="KGZ-BS",
                                              event="lookup", fp="f" * 64, raw=b"x"))
        assert got == (None, False)
        assert server.limiter.in_flight("KGZ-BS") == 3
        assert [server.limiter.reserve("KGZ-BS", LIMITS) for _ in range(3)] == [
            0.0, 0.0, None]
        assert tokens.statements == 0  # told by its deny, not by the database
    finally:
        tokens.close()
