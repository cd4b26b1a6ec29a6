"""Group commit: one durable commit and one checkpoint per batch; failures release nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nacl.signing
import pytest

from node.audit.log import MerkleAuditLog
from node.server.group_commit import BatchWriter
from node.store.sqlcipher import Store

KEY = bytes(range(32))
SK = nacl.signing.SigningKey(bytes(range(1, 33)))


def _request(writer: BatchWriter, log: MerkleAuditLog, i: int) -> asyncio.Future[None]:
    done = writer.begin()
    with log.store.transaction():  # a savepoint inside the open batch
        log.append({"event": "lookup", "i": i}, time_ms=1_000 + i)
    writer.added()
    return done


def test_batch_commits_once_with_one_checkpoint(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "n.db", KEY, create=True)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)

    async def main() -> None:
        writer = BatchWriter(store=store, batch_max=10, batch_ms=50)
        writer.start()
        batches = [_request(writer, log, i) for i in range(25)]
        await asyncio.gather(*(writer.durable(b) for b in batches))
        assert writer.batches == 3 and writer.committed == 25
        await writer.stop()

    asyncio.run(main())
    assert [h.size for h in log.heads()] == [10, 20, 25]
    assert log.verify().ok
    store.close()


def test_nothing_is_released_when_the_commit_fails(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "n.db", KEY, create=True)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)

    def broken() -> None:
        raise OSError("disk full")

    async def main() -> None:
        writer = BatchWriter(store=store, batch_max=100, batch_ms=10)
        writer.start()
        done = _request(writer, log, 1)
        store.before_commit("zz_broken", broken)
        with pytest.raises(OSError):
            await writer.durable(done)
        # the next batch works again
        await writer.durable(_request(writer, log, 2))
        await writer.stop()

    asyncio.run(main())
    assert log.next_seq() == 2 and log.verify().ok
    store.close()
