"""``[storage]``: the backend setting, PostgreSQL's DSN and secrets, and open_database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.config import StorageSettings, load_config
from node.core.errors import ConfigError
from node.store.fieldcrypt import FIELD_KEY_ENV
from node.store.keys import DB_KEY_ENV, new_db_key_file, write_private
from node.store.open import PG_PASSWORD_ENV, load_pg_password, open_database, open_pg_pool
from node.store.sqlcipher import Store
from tests.pgcluster import PgCluster

SECRET = "s3cr3t-Pa55"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (PG_PASSWORD_ENV, FIELD_KEY_ENV, DB_KEY_ENV):
        monkeypatch.delenv(name, raising=False)


def config(tmp_path: Path, storage: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f'[node]\nid = "KAZ-BS"\ncountry = "KAZ"\n\n[storage]\n{storage}\n')
    return path


def refused(tmp_path: Path, storage: str) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load_config(config(tmp_path, storage))
    assert "\n" not in str(exc.value)
    return exc.value


PG = 'backend = "postgresql"\ndsn = "host=127.0.0.1 dbname=bx user=bxnode"\n'


def test_the_default_is_sqlcipher(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, 'path = "node.db"'))
    assert cfg.storage == StorageSettings()
    assert cfg.storage.backend == "sqlcipher"


def test_postgresql_settings_are_read_and_paths_resolved(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, PG + 'password_file = "pg.pass"\n'
                             'field_key_file = "keys/field.key"\npool_min = 2\npool_max = 8\n'
                             'connect_timeout_s = 3'))
    assert cfg.storage == StorageSettings(
        backend="postgresql", dsn="host=127.0.0.1 dbname=bx user=bxnode",
        password_file=tmp_path.resolve() / "pg.pass",
        field_key_file=tmp_path.resolve() / "keys" / "field.key", pool_min=2, pool_max=8,
        connect_timeout_s=3)


@pytest.mark.parametrize("value", ['"mysql"', '"SQLCipher"', '1', 'true', '""'])
def test_an_unknown_backend_is_refused_naming_the_key(tmp_path: Path, value: str) -> None:
    err = refused(tmp_path, f"backend = {value}")
    assert err.reason == "bad_config"
    assert str(err) == 'config: [storage] backend must be "sqlcipher" or "postgresql"'


@pytest.mark.parametrize("dsn", [
    "host=db.example dbname=bx user=bxnode password=" + SECRET,
    "postgresql://bxnode:" + SECRET + "@db.example:5432/bx",
    "postgres://bxnode@db.example/bx?password=" + SECRET,
])
def test_a_dsn_holding_a_password_is_refused_without_repeating_it(tmp_path: Path,
                                                                  dsn: str) -> None:
    err = refused(tmp_path, f'backend = "postgresql"\ndsn = "{dsn}"')
    assert err.reason == "dsn_has_password"
    assert SECRET not in str(err)
    assert str(err) == ("config: [storage] dsn must not contain a password; set "
                        "$BXNODE_PG_PASSWORD or [storage] password_file (mode 0600)")


def test_a_uri_dsn_without_password_is_accepted(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, 'backend = "postgresql"\n'
                                       'dsn = "postgresql://bxnode@db.example:5432/bx"'))
    assert cfg.storage.dsn == "postgresql://bxnode@db.example:5432/bx"


@pytest.mark.parametrize(("storage", "reason", "message"), [
    ('backend = "postgresql"', "bad_config",
     'config: [storage] dsn is required for backend = "postgresql"'),
    ('backend = "postgresql"\ndsn = "host=a nonsense"', "bad_dsn",
     "the PostgreSQL DSN is neither libpq key=value pairs nor a postgresql:// URI"),
    (PG + "pool_min = 0", "bad_config", "config: [storage] pool_min must be 1..100"),
    (PG + "pool_max = 1001", "bad_config", "config: [storage] pool_max must be 1..1000"),
    (PG + 'pool_max = "5"', "bad_config", "config: [storage] pool_max must be 1..1000"),
    (PG + "pool_min = 5\npool_max = 4", "bad_config",
     "config: [storage] pool_min must not exceed pool_max"),
    (PG + "connect_timeout_s = 0", "bad_config",
     "config: [storage] connect_timeout_s must be 1..120"),
    (PG + "password_file = 7", "bad_config", "config: [storage] password_file must be a file name"),
    (PG + 'passwd = "x"', "bad_config", "config: [storage] has no key 'passwd'"),
    ('dsn = "host=a"', "bad_config",
     'config: [storage] dsn applies only to backend = "postgresql"'),
])
def test_bad_storage_settings_are_refused(tmp_path: Path, storage: str, reason: str,
                                          message: str) -> None:
    err = refused(tmp_path, storage)
    assert (err.reason, str(err)) == (reason, message)


# --- the password ----------------------------------------------------------------------------


def test_the_password_comes_from_the_environment_first(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setenv(PG_PASSWORD_ENV, SECRET)
    assert load_pg_password(tmp_path / "absent") == SECRET


def test_the_password_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "pg.pass"
    write_private(path, SECRET + "\n")
    assert load_pg_password(path) == SECRET
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError) as exc:
        load_pg_password(path)
    assert exc.value.reason == "insecure_file_mode"
    assert str(exc.value) == (f"PostgreSQL password file {path} is readable by others; "
                              f"run 'chmod 600 {path}'")
    with pytest.raises(ConfigError) as exc:
        load_pg_password(tmp_path / "absent")
    assert exc.value.reason == "missing_file"
    empty = tmp_path / "empty.pass"
    write_private(empty, "\n")
    with pytest.raises(ConfigError) as exc:
        load_pg_password(empty)
    assert exc.value.reason == "bad_password_file"
    assert load_pg_password(None) is None


# --- open_database ---------------------------------------------------------------------------


def test_open_database_gives_the_sqlcipher_store_by_default(tmp_path: Path) -> None:
    key = new_db_key_file(tmp_path / "db.key")
    Store.open(tmp_path / "node.db", key, create=True).close()
    db = open_database(load_config(config(tmp_path, 'path = "node.db"\nkey_file = "db.key"')))
    try:
        assert isinstance(db, Store) and db.dialect == "sqlite"
    finally:
        db.close()


def pg_config(tmp_path: Path, cluster: PgCluster, dsn: str) -> Path:
    write_private(tmp_path / "pg.pass", cluster.password + "\n")
    write_private(tmp_path / "field.key", "11" * 32 + "\n")
    return config(tmp_path, f'backend = "postgresql"\ndsn = "{dsn}"\n'
                            'password_file = "pg.pass"\nfield_key_file = "field.key"\n'
                            "pool_max = 3\nconnect_timeout_s = 5")


def test_open_database_gives_a_pg_database_once_migrated(tmp_path: Path, pg_cluster: PgCluster,
                                                         pg_dsn: str) -> None:
    from node.store.postgresql import PgDatabase
    from node.store.postgresql.migrate import migrate

    cfg = load_config(pg_config(tmp_path, pg_cluster, pg_dsn))
    with pytest.raises(ConfigError) as exc:
        open_database(cfg)
    assert exc.value.reason == "schema_outdated"
    pool = open_pg_pool(cfg, check_schema=False)
    migrate(pool.database())
    pool.close()
    db = open_database(cfg)
    try:
        assert isinstance(db, PgDatabase) and db.dialect == "postgresql"
        assert db.codec.protects
        assert db.pool.database().get_meta("schema_version") is not None
    finally:
        db.close()


def test_an_insecure_password_file_is_refused_before_connecting(
        tmp_path: Path, pg_cluster: PgCluster, pg_dsn: str) -> None:
    cfg = load_config(pg_config(tmp_path, pg_cluster, pg_dsn))
    os.chmod(tmp_path / "pg.pass", 0o604)
    with pytest.raises(ConfigError) as exc:
        open_database(cfg)
    assert exc.value.reason == "insecure_file_mode"
