"""Versioned schema: the registry, ``migrate`` on a real PostgreSQL, and the refusals."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from node.core.errors import ConfigError
from node.store.fieldcrypt import KeyedCodec
from node.store.postgresql import PgPool
from node.store.postgresql.migrate import migrate, recorded_versions
from node.store.schema import SCHEMAS, Schema, latest_versions, register, steps
from tests.pgcluster import PgCluster

CODEC = KeyedCodec.from_key(bytes(range(32)))


@pytest.fixture
def extra_steps() -> Iterator[list[Schema]]:
    """Steps a test registers; removed afterwards so the registry is as the code has it."""
    added: list[Schema] = []
    yield added
    for s in added:
        SCHEMAS.remove(s)


def open_pool(cluster: PgCluster, dsn: str, *, check: bool = True,
              codec: KeyedCodec = CODEC) -> PgPool:
    return PgPool.open(dsn=dsn, password=cluster.password, codec=codec, check_schema=check,
                       timeout_s=5.0)


# --- the registry ------------------------------------------------------------------------


def test_core_comes_first_and_is_the_sqlcipher_schema() -> None:
    from node.store import sqlcipher

    first = steps()[0]
    assert (first.name, first.version, first.ddl) == (
        "core", sqlcipher.SCHEMA_VERSION, sqlcipher._SCHEMA)
    assert latest_versions()["core"] == sqlcipher.SCHEMA_VERSION


def test_versions_of_a_name_are_consecutive(extra_steps: list[Schema]) -> None:
    extra_steps.append(register("pgtest_reg", 1, "CREATE TABLE IF NOT EXISTS a (x TEXT)"))
    assert register("pgtest_reg", 1, "CREATE TABLE IF NOT EXISTS a (x TEXT)") is not None
    assert [s for s in SCHEMAS if s.name == "pgtest_reg"] == extra_steps  # not twice
    with pytest.raises(ValueError, match="the next step is v2, not v3"):
        register("pgtest_reg", 3, "ALTER TABLE a ADD COLUMN y TEXT")
    with pytest.raises(ValueError, match="the next step is v1, not v2"):
        register("pgtest_other", 2, "CREATE TABLE IF NOT EXISTS b (x TEXT)")
    with pytest.raises(ValueError, match="must match"):
        register("Bad-Name", 1, "CREATE TABLE IF NOT EXISTS c (x TEXT)")
    with pytest.raises(ValueError, match="has no DDL"):
        register("pgtest_empty", 1, "  ")


# --- migrate ---------------------------------------------------------------------------------


def test_migrate_creates_everything_once_and_twice_is_a_no_op(
        pg_cluster: PgCluster, pg_dsn: str) -> None:
    pool = open_pool(pg_cluster, pg_dsn, check=False)
    try:
        first = migrate(pool.database(), now_ms=1000)
        assert [(s.name, s.version) for s in first.applied] == [
            (s.name, s.version) for s in steps()]
        assert first.versions == latest_versions()
        second = migrate(pool.database(), now_ms=2000)
        assert second.applied == () and second.versions == latest_versions()
        db = pool.database()
        assert recorded_versions(db) == {s.name: (s.version, s.digest) for s in steps()
                                         if s.version == latest_versions()[s.name]}
        assert db.query("SELECT DISTINCT applied_ms FROM bxnode_schema") == [(1000,)]
        assert db.get_meta("schema_version") == str(latest_versions()["core"])
        assert db.query_one("SELECT to_regclass('receipts')") == ("receipts",)
    finally:
        pool.close()
    open_pool(pg_cluster, pg_dsn).close()  # serves now


def test_two_migrations_at_once_apply_each_step_once(pg_cluster: PgCluster, pg_dsn: str) -> None:
    pool = open_pool(pg_cluster, pg_dsn, check=False)
    results: list[int] = []

    def run() -> None:
        results.append(len(migrate(pool.database()).applied))

    try:
        threads = [threading.Thread(target=run) for _ in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
    finally:
        pool.close()
    assert sorted(results) == [0, len(steps())]


def test_a_migration_waits_past_the_busy_timeout_for_another_one(
        pg_cluster: PgCluster, pg_dsn: str) -> None:
    """Requests wait at most busy_timeout_s for a lock (the pool's lock_timeout, 0.2 s
    here); ``bxnode store migrate`` waits for another replica's migration however long it
    holds the schema lock, then finds nothing left to do."""
    pool = PgPool.open(dsn=pg_dsn, password=pg_cluster.password, codec=CODEC,
                       check_schema=False, timeout_s=5.0, lock_timeout_s=0.2)
    holder = pool.database()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.transaction():
            holder.lock("schema")
            held.set()
            release.wait(30)

    try:
        th = threading.Thread(target=hold)
        th.start()
        assert held.wait(10)
        threading.Timer(1.0, release.set).start()  # five lock timeouts later
        assert len(migrate(pool.database()).applied) == len(steps())
        th.join(30)
        assert len(migrate(pool.database()).applied) == 0
    finally:
        release.set()
        holder.close()
        pool.close()


def test_a_database_never_migrated_is_refused_as_outdated(
        pg_cluster: PgCluster, pg_dsn: str) -> None:
    with pytest.raises(ConfigError) as exc:
        open_pool(pg_cluster, pg_dsn)
    assert exc.value.reason == "schema_outdated"
    assert str(exc.value) == ("the database has no bxnode schema yet: run 'bxnode store "
                              "migrate'")


def test_a_new_step_makes_the_database_outdated_until_migrate_applies_just_it(
        pg_cluster: PgCluster, pg_dsn: str, extra_steps: list[Schema]) -> None:
    pool = open_pool(pg_cluster, pg_dsn, check=False)
    migrate(pool.database())
    pool.close()
    extra_steps.append(register("pgtest_up", 1, "CREATE TABLE IF NOT EXISTS up (x TEXT);"))
    extra_steps.append(register("pgtest_up", 2, "ALTER TABLE up ADD COLUMN y INTEGER;\n"
                                                "CREATE INDEX IF NOT EXISTS up_y ON up (y)"))
    with pytest.raises(ConfigError) as exc:
        open_pool(pg_cluster, pg_dsn)
    assert exc.value.reason == "schema_outdated"
    assert "pgtest_up v0 < v2" in str(exc.value) and "bxnode store migrate" in str(exc.value)
    pool = open_pool(pg_cluster, pg_dsn, check=False)
    try:
        result = migrate(pool.database())
        assert [(s.name, s.version) for s in result.applied] == [("pgtest_up", 1),
                                                                 ("pgtest_up", 2)]
        assert pool.database().query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'up' ORDER BY column_name") == [("x", "text"), ("y", "bigint")]
    finally:
        pool.close()
    open_pool(pg_cluster, pg_dsn).close()


def test_a_newer_schema_is_refused_by_serving_and_by_migrate(
        pg_cluster: PgCluster, pg_dsn: str) -> None:
    pool = open_pool(pg_cluster, pg_dsn, check=False)
    try:
        migrate(pool.database())
        core = latest_versions()["core"]
        pool.database().execute("UPDATE bxnode_schema SET version = ? WHERE name = 'core'",
                                (core + 1,))
        with pytest.raises(ConfigError) as exc:
            open_pool(pg_cluster, pg_dsn)
        assert exc.value.reason == "schema_newer"
        assert f"core v{core + 1} (this bxnode knows v{core})" in str(exc.value)
        with pytest.raises(ConfigError) as exc:
            migrate(pool.database())
        assert exc.value.reason == "schema_newer"
        pool.database().execute("UPDATE bxnode_schema SET version = ? WHERE name = 'core'",
                                (core,))
        pool.database().execute("INSERT INTO bxnode_schema VALUES ('from_the_future', 1, '', 0)")
        with pytest.raises(ConfigError) as exc:
            open_pool(pg_cluster, pg_dsn)
        assert exc.value.reason == "schema_newer"
        assert "from_the_future v1 (unknown to this bxnode)" in str(exc.value)
    finally:
        pool.close()


def test_a_step_changed_without_a_new_version_is_refused(
        pg_cluster: PgCluster, pg_dsn: str) -> None:
    pool = open_pool(pg_cluster, pg_dsn, check=False)
    try:
        migrate(pool.database())
        pool.database().execute("UPDATE bxnode_schema SET ddl_sha256 = 'x' WHERE name='core'")
    finally:
        pool.close()
    with pytest.raises(ConfigError) as exc:
        open_pool(pg_cluster, pg_dsn)
    assert exc.value.reason == "schema_mismatch"


def test_another_field_key_is_refused(pg_cluster: PgCluster, pg_dsn: str) -> None:
    pool = open_pool(pg_cluster, pg_dsn, check=False)
    migrate(pool.database())
    pool.close()
    with pytest.raises(ConfigError) as exc:
        open_pool(pg_cluster, pg_dsn, codec=KeyedCodec.from_key(b"\x01" * 32))
    assert exc.value.reason == "wrong_field_key"
    open_pool(pg_cluster, pg_dsn).close()


def test_identities_follow_explicit_ids_after_sync(pg_cluster: PgCluster, pg_dsn: str) -> None:
    from node.store.postgresql import translate_ddl
    from node.store.postgresql.migrate import sync_identities

    pool = open_pool(pg_cluster, pg_dsn, check=False)
    try:
        db = pool.database()
        db.execute_raw(translate_ddl("CREATE TABLE copied (id INTEGER PRIMARY KEY, v TEXT)"))
        db.execute_raw(translate_ddl("CREATE TABLE empty (id INTEGER PRIMARY KEY, v TEXT)"))
        with db.transaction():
            db.executemany("INSERT INTO copied (id, v) VALUES (?, ?)",
                           [(1, "a"), (2, "b"), (7, "c")])
            assert sync_identities(db) == {"copied": 8, "empty": 1}
        db.execute("INSERT INTO copied (v) VALUES (?)", ("new",))
        db.execute("INSERT INTO empty (v) VALUES (?)", ("first",))
        assert db.query("SELECT id FROM copied WHERE v='new'") == [(8,)]
        assert db.query("SELECT id FROM empty") == [(1,)]
    finally:
        pool.close()
