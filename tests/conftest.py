"""Fixtures every test folder may use: a private PostgreSQL cluster.

``pg_cluster`` (session) starts one throwaway cluster (see ``tests/pgcluster.py``);
``pg_dsn`` gives each test a fresh database on it.  Where PostgreSQL cannot be had, every
test using them is skipped with one line saying why; set ``BXNODE_REQUIRE_POSTGRESQL=1``
to make that a failure instead (a CI that must run them).  Tests using these fixtures
carry the ``postgresql`` marker, so ``-m "not postgresql"`` leaves them out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pgcluster import PgCluster, PgClusterUnavailable

_PG_FIXTURES = frozenset({"pg_cluster", "pg_dsn"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _PG_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgresql)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster for the session; always stopped at the end."""
    try:
        cluster = PgCluster.create()
    except PgClusterUnavailable as exc:
        _unavailable(str(exc))
    try:
        try:
            cluster.start()
        except PgClusterUnavailable as exc:
            _unavailable(str(exc))
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh database of its own for one test: its DSN (TCP, superuser, no password;
    the password is ``pg_cluster.password``)."""
    if not pg_cluster.running:  # a test that stopped the cluster and failed before restart
        pg_cluster.start()
    name = pg_cluster.create_database()
    yield pg_cluster.dsn(name)
    pg_cluster.drop_database(name)


def _unavailable(why: str) -> None:
    message = f"PostgreSQL tests need a PostgreSQL: {why}"
    if os.environ.get("BXNODE_REQUIRE_POSTGRESQL") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
