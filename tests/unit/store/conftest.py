"""``any_db``: the same test on the embedded SQLCipher store and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.store.db import Database
from node.store.sqlcipher import Store


@pytest.fixture(params=["sqlcipher", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh, migrated database of either backend (PostgreSQL with its field codec)."""
    if request.param == "sqlcipher":
        store = Store.open(tmp_path / "node.db", bytes(range(100, 132)), create=True)
        yield store
        store.close()
        return
    from node.store.fieldcrypt import KeyedCodec
    from node.store.postgresql import PgPool
    from node.store.postgresql.migrate import migrate

    cluster = request.getfixturevalue("pg_cluster")
    dsn = request.getfixturevalue("pg_dsn")
    pool = PgPool.open(dsn=dsn, password=cluster.password,
                       codec=KeyedCodec.from_key(bytes(range(32))), max_size=3, timeout_s=5.0,
                       check_schema=False)
    database = pool.database()
    migrate(database)
    yield database
    database.close()
    pool.close()
