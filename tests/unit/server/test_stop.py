"""Stopping the server ends its background jobs, whenever the stop comes.

A CI run hung in ``NodeServer.stop()``: the database watch was cancelled in the loop
iteration its probe answered, ``asyncio.wait_for`` (Python 3.11) returned the probe's
result and swallowed the cancellation, and the watch went round for ever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from node.app import NodeRuntime
from node.config import load_config
from node.server.grpc_server import NodeServer, settled_within
from tests.federation import make_federation


async def _turn() -> None:
    """Let the event loop go round: a callback it runs, then this task woken."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    loop.call_soon(fut.set_result, None)
    await fut


@pytest.mark.parametrize("turns", range(6))
def test_a_cancellation_that_meets_the_result_is_not_swallowed(turns: int) -> None:
    """The waiting task is cancelled ``turns`` times round the loop after the future it waits
    for is settled: it ends cancelled, whether or not it had gone on to its next step."""

    async def main() -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = asyncio.Event()

        async def waiter() -> None:
            waiting.set()
            await settled_within(fut, 60)
            await asyncio.Event().wait()  # its next step: never done, until cancelled

        task = asyncio.create_task(waiter())
        await waiting.wait()  # the task waits on the future
        fut.set_result(None)
        for _ in range(turns):
            await _turn()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        if not done:  # the failure this test is about: clean up, then say so
            task.cancel()
            await asyncio.wait([task], timeout=5)
        assert task in done and task.cancelled()

    asyncio.run(main())


def test_settled_within_times_out_and_leaves_the_future_running() -> None:
    async def main() -> None:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        with pytest.raises(TimeoutError):
            await settled_within(fut, 0.01)
        assert not fut.done()
        fut.set_result(7)
        await settled_within(fut, 0.01)

    asyncio.run(main())


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeRuntime]:
    fed = make_federation(tmp_path_factory.mktemp("stop"), node_ids=("KAZ-BS", "KGZ-BS"))
    rt = NodeRuntime.load(load_config(fed.dirs["KAZ-BS"]))
    yield rt
    rt.close()


def test_stop_does_not_wait_for_ever_on_a_job_that_ignores_its_cancellation(
        runtime: NodeRuntime, tmp_path: Path) -> None:
    """A background job that will not stop gets an error log line naming it; the stop
    goes on (the last refusals' flush and the database thread's stop come after it)."""
    release, started = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()  # ignores the cancellation until the test lets it go

    async def main() -> None:
        server = NodeServer(responder=runtime.responder, tls=None, dev_plaintext=True,
                            background=[stubborn])
        server.task_stop_s = 0.2
        await server.start("127.0.0.1:0")
        await started.wait()
        with capture_logs() as logs:
            async with asyncio.timeout(10):
                await server.stop(0.1)
        release.set()
        stuck = [e for e in logs if e["event"] == "background_task_not_stopped"]
        assert [(e["log_level"], e["task"]) for e in stuck] == [
            ("error", "test_stop_does_not_wait_for_ever_on_a_job_that_ignores_its_"
                      "cancellation.<locals>.stubborn")]
        assert server._tasks == []

    asyncio.run(main())


def test_stop_ends_jobs_that_stop_without_a_word(runtime: NodeRuntime) -> None:
    """Jobs that end when cancelled, or that had already failed, log nothing at stop."""

    ran = {"quiet": asyncio.Event(), "failed": asyncio.Event()}

    async def quiet() -> None:
        ran["quiet"].set()
        await asyncio.Event().wait()

    async def failed() -> None:
        ran["failed"].set()
        raise RuntimeError("the job's own failure, logged by the job")

    async def main() -> None:
        server = NodeServer(responder=runtime.responder, tls=None, dev_plaintext=True,
                            background=[quiet, failed])
        await server.start("127.0.0.1:0")
        for event in ran.values():
            await event.wait()
        with capture_logs() as logs:
            async with asyncio.timeout(10):
                await server.stop(0.1)
        assert [e["event"] for e in logs if e["log_level"] == "error"] == []

    asyncio.run(main())
