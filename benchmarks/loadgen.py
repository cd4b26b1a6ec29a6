"""Load generator, run in its own process: ``python -m benchmarks.loadgen SPEC.json``.

Sends pre-serialized unary requests (raw bytes, e.g. signed LookupRequests) to one
gRPC method over mTLS (or plaintext for the echo baseline) with grpc.aio, in one of
two modes (``targets``, a list, spreads the callers evenly over several servers, e.g.
two replicas of one node; ``target`` is one):

* ``closed``: ``concurrency`` callers send back-to-back for ``seconds``: throughput
  at saturation;
* ``open``: requests are started on a fixed schedule of ``rate`` per second for
  ``seconds``, whether or not earlier ones finished (no coordinated omission):
  latency at a fixed offered load.

Each connection is warmed up (not measured) with a payload of its own, the first ones of
the file: a signed request is sent once, never again (a second sending is a replay, which
the node rightly refuses).  A closed-loop run that uses up its payloads stops and says so
(``exhausted``).

Optional: ``timeout`` (seconds, default 30), each call's deadline; ``start_at`` (a
``time.time()``), when the measured calls begin after the warm-up, so two load generators
started together can begin a known interval apart; ``drain_s`` (open loop), how long the
calls still unanswered when the schedule ends are waited for before they are cancelled
(counted as ``CANCELLED (abandoned)``; default: until each ends).

Prints one JSON object: warm-up calls, sent, ok, errors, error codes (``STATUS/reason``,
the reason from the node's ``bxnode-reason`` trailer, or ``STATUS (details)`` for an error
that is not the node's refusal), elapsed, throughput and latency
percentiles in milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import grpc


def percentiles(lat: list[float]) -> dict[str, float]:
    if not lat:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    s = sorted(lat)

    def p(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 3)

    return {"p50_ms": p(0.50), "p95_ms": p(0.95), "p99_ms": p(0.99),
            "max_ms": round(s[-1] * 1000, 3)}


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    payloads = [bytes.fromhex(x) for x in json.loads(Path(spec["payloads"]).read_text())]
    opts = [("grpc.max_receive_message_length", 8 << 20)]
    channels = []
    targets = spec.get("targets") or [spec["target"]]
    # interleaved (A, B, A, B, ...): caller k uses channel k % len, so each target gets
    # an equal share of the callers
    for _ in range(int(spec.get("channels", 2))):
        for target in targets:
            if spec.get("tls"):
                t = spec["tls"]
                creds = grpc.ssl_channel_credentials(
                    root_certificates=Path(t["ca"]).read_bytes(),
                    private_key=Path(t["key"]).read_bytes(),
                    certificate_chain=Path(t["cert"]).read_bytes())
                ch = grpc.aio.secure_channel(target, creds, options=opts)
            else:
                ch = grpc.aio.insecure_channel(target, options=opts)
            channels.append(ch)
    stubs: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
        ch.unary_unary(spec["method"]) for ch in channels]
    # Warm up each connection (not counted) with a payload of its own.  (It used to be the
    # last measured payload, on every connection: a replay the node refused, and a run that
    # used up its payloads sent it once more -- issue 16's unexplained UNAUTHENTICATED.)
    warm, payloads = payloads[:len(stubs)], payloads[len(stubs):]
    timeout = float(spec.get("timeout", 30))
    for st, p in zip(stubs, warm, strict=False):
        try:
            await st(p, timeout=min(10.0, timeout))
        except grpc.aio.AioRpcError:
            pass
    if spec.get("start_at"):
        await asyncio.sleep(max(0.0, float(spec["start_at"]) - time.time()))
    lat: list[float] = []
    codes: dict[str, int] = {}
    idx = 0
    sent = 0

    async def one(stub: Any, payload: bytes) -> None:
        t0 = time.perf_counter()
        try:
            await stub(payload, timeout=timeout)
            lat.append(time.perf_counter() - t0)
        except asyncio.CancelledError:  # abandoned at the end of the run (drain_s)
            codes["CANCELLED (abandoned)"] = codes.get("CANCELLED (abandoned)", 0) + 1
        except grpc.aio.AioRpcError as err:
            key = err.code().name
            reason = dict(err.trailing_metadata() or ()).get("bxnode-reason")
            if reason:
                key += f"/{reason}"
            else:  # not the node's refusal: the transport's (or the deadline's) words
                key += f" ({(err.details() or '')[:60]})"
            codes[key] = codes.get(key, 0) + 1

    seconds = float(spec["seconds"])
    start = time.perf_counter()
    end = start + seconds
    if spec["mode"] == "closed":
        async def worker(k: int) -> None:
            nonlocal idx, sent
            stub = stubs[k % len(stubs)]
            while time.perf_counter() < end and idx < len(payloads):
                p = payloads[idx]
                idx += 1
                sent += 1
                await one(stub, p)

        await asyncio.gather(*(worker(k) for k in range(int(spec["concurrency"]))))
    else:
        rate = float(spec["rate"])
        tasks = []
        n = int(rate * seconds)
        for i in range(min(n, len(payloads))):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(stubs[i % len(stubs)], payloads[i])))
            sent += 1
        if spec.get("drain_s") is not None and tasks:
            _, pending = await asyncio.wait(tasks, timeout=float(spec["drain_s"]))
            for task in pending:
                task.cancel()
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    for ch in channels:
        await ch.close()
    exhausted = idx >= len(payloads) if spec["mode"] == "closed" else \
        len(payloads) < int(float(spec["rate"]) * seconds)
    return {"warmup": len(warm), "sent": sent, "ok": len(lat),
            "errors": sum(codes.values()), "codes": codes, "exhausted": exhausted,
            "elapsed_s": round(elapsed, 3),
            "throughput_rps": round(len(lat) / elapsed, 1) if elapsed else 0.0,
            **percentiles(lat)}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(run(spec))))


if __name__ == "__main__":
    main()
