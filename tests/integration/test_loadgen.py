"""The benchmark's load generator against a real node (issue 16: "one batch request at
saturation came back UNAUTHENTICATED").

The cause: the load generator warmed each of its connections up with the *last* measured
payload, so the second warm-up was a replay (ignored), and a closed-loop run that used up
every payload sent that one a third time, counted as UNAUTHENTICATED/replayed_nonce — the
node was right to refuse it.  The batch scenario was the one that came near the end of its
payloads.  Warm-up now uses payloads of its own, and refusals are counted by reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import loadgen
from node.core.model import DocumentQuery, QueryKind
from node.wire.convert import envelope_to_pb, pb
from tests.federation import CTX, Federation, make_federation

DOC = DocumentQuery(number="N0481516", issuing_state="KAZ")


@pytest.fixture(scope="module")
def kaz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    f = make_federation(tmp_path_factory.mktemp("fed"), node_ids=("KAZ-BS", "KGZ-BS"))
    f.start("KAZ-BS")
    yield f
    f.stop_all()


def _spec(f: Federation, tmp: Path, n: int, **extra: object) -> dict[str, object]:
    client = f.client("KGZ-BS", store=False)
    try:
        payloads = [pb.LookupRequest(envelope=envelope_to_pb(
            client.build(CTX, QueryKind.BATCH, [DOC] * 3))).SerializeToString().hex()
            for _ in range(n)]
    finally:
        client.close()
    (tmp / "payloads.json").write_text(json.dumps(payloads))
    d = f.dirs["KGZ-BS"]
    return {"target": f"127.0.0.1:{f.ports['KAZ-BS']}",
            "method": "/bxnode.v1.NodeService/Lookup", "payloads": str(tmp / "payloads.json"),
            "tls": {"cert": str(d / "tls.crt"), "key": str(d / "tls.key"),
                    "ca": str(d / "ca.crt")}, **extra}


def test_a_closed_loop_that_uses_up_its_payloads_sends_none_twice(
        kaz: Federation, tmp_path: Path) -> None:
    spec = _spec(kaz, tmp_path, 30, mode="closed", seconds=60, concurrency=4)
    r = asyncio.run(loadgen.run(spec))
    # two connections, each warmed up with a payload of its own (not measured)
    assert (r["warmup"], r["sent"], r["ok"], r["errors"], r["codes"]) == (2, 28, 28, 0, {})
    assert r["exhausted"] is True  # it ran out of payloads before its 60 s: said so


def test_an_open_loop_run_is_answered_in_full(kaz: Federation, tmp_path: Path) -> None:
    spec = _spec(kaz, tmp_path, 22, mode="open", seconds=1, rate=20)
    r = asyncio.run(loadgen.run(spec))
    assert (r["warmup"], r["sent"], r["ok"], r["codes"], r["exhausted"]) == (2, 20, 20, {},
                                                                            False)


def test_refusals_are_counted_by_status_and_reason(kaz: Federation, tmp_path: Path) -> None:
    spec = _spec(kaz, tmp_path, 8, mode="closed", seconds=60, concurrency=2)
    payloads = json.loads(Path(str(spec["payloads"])).read_text())
    Path(str(spec["payloads"])).write_text(json.dumps(payloads + payloads[-3:]))  # replays
    r = asyncio.run(loadgen.run(spec))
    assert (r["sent"], r["ok"], r["codes"]) == (9, 6, {"UNAUTHENTICATED/replayed_nonce": 3})


def test_calls_still_unanswered_drain_s_after_the_schedule_are_abandoned(
        tmp_path: Path) -> None:
    """``drain_s``: the fairness flood's calls still waiting a second after it ends are
    cancelled and counted, so the run ends.  Against a server that never answers (a
    stand-in: no node holds every call forever), plaintext."""
    import grpc

    async def scenario() -> dict[str, object]:
        hang = asyncio.Event()

        async def never(_raw: bytes, _ctx: object) -> bytes:
            await hang.wait()
            return b""

        server = grpc.aio.server()
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "t.T", {"M": grpc.unary_unary_rpc_method_handler(never)})])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        (tmp_path / "p.json").write_text(json.dumps(["00"] * 7))
        try:
            return await loadgen.run({
                "target": f"127.0.0.1:{port}", "method": "/t.T/M", "mode": "open",
                "rate": 50, "seconds": 0.1, "payloads": str(tmp_path / "p.json"),
                "timeout": 1, "drain_s": 0.2, "channels": 1})
        finally:
            await server.stop(0)

    r = asyncio.run(scenario())  # the warm-up call (unanswered too) ends at its timeout
    assert (r["sent"], r["ok"], r["codes"]) == (5, 0, {"CANCELLED (abandoned)": 5})
