"""The edge with the replicas' shared tokens and slots (node/server/db_limits.py): what a
call keeps and gives back when the shared bucket or the shared ``max_in_flight`` refuses,
or cannot be asked, and that a shared slot goes back however the call ends."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog

from node.app import NodeRuntime
from node.config import load_config
from node.federation.pki import TlsMaterial
from node.server.db_limits import DbTokens, _Lease, _Slots
from node.server.grpc_server import NodeServer
from node.server.limits import PeerLimits
from tests.federation import Federation, make_federation
from tests.unit.server._clock import Clock
from tests.waiting import turns_until

LIMITS = PeerLimits(rate_per_s=1.0, burst=5, max_in_flight=10)
#: Shared tokens in leases of 10 (a call past the first asks no statement), 4 in flight.
ROOMY = PeerLimits(rate_per_s=100.0, burst=100, max_in_flight=4)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    return make_federation(tmp_path_factory.mktemp("edge"), node_ids=("KAZ-BS", "KGZ-BS"))


@pytest.fixture(scope="module")
def runtime(fed: Federation) -> Iterator[NodeRuntime]:
    rt = NodeRuntime.load(load_config(fed.dirs["KAZ-BS"]))
    yield rt
    rt.close()


def _server(runtime: NodeRuntime, connect: Any) -> NodeServer:
    server = NodeServer(responder=runtime.responder, tls=None, dev_plaintext=True)
    server.limiter._clock = Clock()  # held still
    server.shared_tokens = DbTokens(connect=connect, clock=Clock(1_800_000_000.0))
    return server


class Aborted(Exception):
    pass


class Context:
    """What the edge reads of a call: the TLS peer's certificate, and abort()."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self.pem]}

    async def abort(self, code: grpc.StatusCode, details: str,
                    trailing_metadata: Any = ()) -> None:
        self.aborted = (code, str(dict(trailing_metadata)["bxnode-reason"]))
        raise Aborted


def _tls_server(fed: Federation, runtime: NodeRuntime, limits: PeerLimits,
                tokens: DbTokens) -> tuple[NodeServer, Any]:
    """A server on TLS (never started) whose edge sees KGZ-BS's certificate, with
    ``limits`` for KGZ-BS and ``tokens`` as its replica's shared tokens and slots.  The
    :class:`Context` comes back as Any: a stand-in filling only the part of gRPC's
    ``ServicerContext`` the edge reads."""
    d: Path = fed.dirs["KAZ-BS"]
    tls = TlsMaterial.from_files(cert=d / "tls.crt", key=d / "tls.key", ca=d / "ca.crt")
    server = NodeServer(responder=runtime.responder, tls=tls)
    server.limiter._clock = Clock()  # held still
    server._limits.cached = lambda peer: limits  # type: ignore[method-assign]
    server.shared_tokens = tokens
    return server, Context((fed.dirs["KGZ-BS"] / "tls.crt").read_bytes())


def _sleeping(task: asyncio.Task[Any]) -> bool:
    """The task is waiting in ``asyncio.sleep`` (a paced call waiting for its token)."""
    coro: Any = task.get_coro()
    while coro is not None:
        if getattr(getattr(coro, "cr_code", None), "co_name", "") == "sleep":
            return True
        coro = getattr(coro, "cr_await", None)
    return False


def _unreachable() -> Any:
    raise OSError("connection refused")


def test_an_unreachable_shared_bucket_leaves_the_local_decision_and_nothing_to_give_back(
        runtime: NodeRuntime) -> None:
    server = _server(runtime, _unreachable)
    try:
        assert server.limiter.reserve("KGZ-BS", LIMITS) == 0.0
        got = asyncio.run(server._take_shared("KGZ-BS", LIMITS, 0.0, peer="KGZ-BS",
                                              event="lookup", fp="f" * 64, raw=b"x"))
        assert got == (0.0, False, False)  # admitted on this replica's bucket alone
        assert server.limiter.in_flight("KGZ-BS") == 1
    finally:
        assert server.shared_tokens is not None
        server.shared_tokens.close()


def test_a_shared_refusal_gives_the_local_slot_and_token_back(runtime: NodeRuntime) -> None:
    server = _server(runtime, _unreachable)
    tokens = server.shared_tokens
    assert tokens is not None
    tokens._denied["KGZ-BS"] = float("inf")  # refused by the shared bucket a moment ago
    tokens._slots["KGZ-BS"] = _Slots(LIMITS.max_in_flight, slots=2, until=math.inf)
    try:
        assert [server.limiter.reserve("KGZ-BS", LIMITS) for _ in range(4)] == [0.0] * 4
        # the fourth call's shared token refused: 3 in flight, 2 local tokens again
        got = asyncio.run(server._take_shared("KGZ-BS", LIMITS, 0.0, peer="KGZ-BS",
                                              event="lookup", fp="f" * 64, raw=b"x"))
        assert got == (None, False, False)
        assert server.limiter.in_flight("KGZ-BS") == 3
        assert tokens.slots_held("KGZ-BS") == (0, 2)  # its shared slot given back too
        assert [server.limiter.reserve("KGZ-BS", LIMITS) for _ in range(3)] == [
            0.0, 0.0, None]
        assert tokens.statements == 0  # told by its deny and its lease, not the database
    finally:
        tokens.close()


def test_over_the_replicas_max_in_flight_a_call_is_refused_rate_limited_and_counted(
        fed: Federation, runtime: NodeRuntime, pool: Any) -> None:
    """Replica B holds all of KGZ-BS's 4 calls in flight: this replica's call is refused
    as a call over its own max_in_flight is, its local slot and token given back and no
    shared token taken."""
    clock = Clock(1_800_000_000.0)
    other = DbTokens(connect=pool.side_connection, clock=clock, replica="replica-b")
    mine = DbTokens(connect=pool.side_connection, clock=clock, replica="replica-a")
    server, ctx = _tls_server(fed, runtime, ROOMY, mine)

    async def run() -> None:
        assert [await other.take_slot("KGZ-BS", ROOMY) for _ in range(4)] == [True] * 4
        with pytest.raises(Aborted):
            async with server.edge(ctx, b"request", event="lookup"):
                raise AssertionError("admitted")

    try:
        asyncio.run(run())
        assert ctx.aborted == (grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")
        assert server.refusals.pending() == 1
        [record] = server.refusals.drain()
        assert (record.requester, record.event, record.status, record.facts["refused"]) == (
            "KGZ-BS", "lookup", "RESOURCE_EXHAUSTED", 1)
        assert server.limiter.in_flight("KGZ-BS") == 0
        row = server.limiter.table.read("KGZ-BS")
        assert row is not None and row[0] == ROOMY.burst  # its local token back
        assert mine.slots_held("KGZ-BS") == (0, 0)
        assert mine.statements == 1  # the slot's grant; no token asked
    finally:
        other.close()
        mine.close()


def test_a_shared_slot_is_given_back_however_the_call_ends(
        fed: Federation, runtime: NodeRuntime, pool: Any) -> None:
    tokens = DbTokens(connect=pool.side_connection, clock=Clock(1_800_000_000.0))
    server, ctx = _tls_server(fed, runtime, ROOMY, tokens)

    async def run() -> None:
        async with server.edge(ctx, b"request", event="lookup") as (fp, bucket):
            assert bucket == "KGZ-BS" and fp is not None
            assert tokens.slots_held("KGZ-BS") == (1, 1)
        assert tokens.slots_held("KGZ-BS") == (0, 1)  # answered

        with pytest.raises(RuntimeError):
            async with server.edge(ctx, b"request", event="lookup"):
                assert tokens.slots_held("KGZ-BS") == (1, 1)
                raise RuntimeError("the handler failed")
        assert tokens.slots_held("KGZ-BS") == (0, 1)  # an exception in the handler

        # paced: this replica's bucket promised ahead, the call waits for its token
        server.limiter.table.write("KGZ-BS", -50.0, 100.0, now=100.0)
        leased = tokens._leases["KGZ-BS"].tokens
        task = asyncio.create_task(server.admit(ctx, b"request", event="lookup"))
        await turns_until("the call paced", lambda: _sleeping(task))
        assert tokens.slots_held("KGZ-BS") == (1, 1)
        assert server.limiter.in_flight("KGZ-BS") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert tokens.slots_held("KGZ-BS") == (0, 1)  # cancelled while paced
        assert server.limiter.in_flight("KGZ-BS") == 0
        assert tokens._leases["KGZ-BS"].tokens == leased  # its shared token back too

        tokens._leases.clear()
        tokens._denied["KGZ-BS"] = math.inf  # the shared bucket refuses
        with pytest.raises(Aborted):
            async with server.edge(ctx, b"request", event="lookup"):
                raise AssertionError("admitted")
        assert tokens.slots_held("KGZ-BS") == (0, 1)  # refused after its slot was taken

    try:
        asyncio.run(run())
        assert ctx.aborted == (grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")
        assert sorted((r.status, r.facts["refused"]) for r in server.refusals.drain()) == [
            ("CANCELLED", 1), ("RESOURCE_EXHAUSTED", 1)]
        assert server.limiter.in_flight("KGZ-BS") == 0
        assert tokens.statements == 2  # one slot, one lease of tokens: the rest from them
    finally:
        tokens.close()


def test_an_unreachable_database_leaves_the_local_decision_and_logs_it_once(
        fed: Federation, runtime: NodeRuntime) -> None:
    """The shared slot cannot be asked (its tokens could, from a lease): logged, decided on
    this replica's buckets, and the token not taken either (the one database)."""
    tokens = DbTokens(connect=_unreachable, clock=Clock(1_800_000_000.0))
    tokens._leases["KGZ-BS"] = _Lease(ROOMY, 50.0, math.inf)
    server, ctx = _tls_server(fed, runtime, ROOMY, tokens)

    async def run() -> None:
        for _ in range(2):
            async with server.edge(ctx, b"request", event="lookup") as (_, bucket):
                assert bucket == "KGZ-BS" and server.limiter.in_flight("KGZ-BS") == 1
                assert tokens.slots_held("KGZ-BS") == (0, 0)  # no shared slot held
        for _ in range(ROOMY.max_in_flight):  # this replica's max_in_flight still holds
            assert server.limiter.reserve("KGZ-BS", ROOMY) == 0.0
        with pytest.raises(Aborted):
            async with server.edge(ctx, b"request", event="lookup"):
                raise AssertionError("admitted")

    try:
        with structlog.testing.capture_logs() as logs:
            asyncio.run(run())
    finally:
        tokens.close()
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("shared_limits_unavailable", "warning")]
    assert ctx.aborted == (grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")
    assert tokens._leases["KGZ-BS"].tokens == 50.0
