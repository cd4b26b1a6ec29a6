"""Where a batch's lookups are read before the writers' lock (``NodeServer
.reads_before_lock``, node/server/assemble.py): only where another writer takes that lock
meanwhile -- a worker of ``serve --workers`` (the node's shared limits table) or a
PostgreSQL replica.  A lone SQLCipher node reads them under the lock, where a flooder's
burst costs another peer's first answers least (benchmarks/README.md, 2026-12-07
evening).  Either way the node answers the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.core.model import DocumentQuery, QueryKind
from node.server.shared_limits import SharedBuckets, create_table
from tests.federation import CTX, make_federation

pytestmark = pytest.mark.integration

STOLEN = DocumentQuery(number="N0481516", issuing_state="KAZ")


@pytest.mark.parametrize("workers", [False, True], ids=["lone", "a worker"])
def test_reads_before_the_lock_only_with_another_writer(tmp_path: Path, workers: bool) -> None:
    f = make_federation(tmp_path, ("KAZ-BS", "KGZ-BS"))
    buckets = None
    if workers:
        create_table(tmp_path / "serve.limits", workers=2)
        buckets = SharedBuckets.attach(tmp_path / "serve.limits", worker=0, workers=2)
    node = f.start("KAZ-BS", buckets=buckets)
    f.start("KGZ-BS")
    client = f.client("KGZ-BS")
    try:
        assert node.server.reads_before_lock is workers
        answer = client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT, [STOLEN])
        assert [(r.outcome.value, r.reference) for r in answer.results] == [
            ("hit", "KAZ-SLTD-2026-000117")]
    finally:
        client.close()
        f.stop_all()
        if buckets is not None:
            buckets.close()
