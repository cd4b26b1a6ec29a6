"""A migrated PostgreSQL database for the limits the replicas share (``pool``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.pgcluster import PgCluster


@pytest.fixture
def pool(pg_cluster: PgCluster, pg_dsn: str) -> Iterator[Any]:
    from node.store.fieldcrypt import KeyedCodec
    from node.store.postgresql import PgPool
    from node.store.postgresql.migrate import migrate

    p = PgPool.open(dsn=pg_dsn, password=pg_cluster.password,
                    codec=KeyedCodec.from_key(bytes(range(32))), max_size=2, timeout_s=5.0,
                    check_schema=False)
    migrate(p.database())
    yield p
    p.close()
