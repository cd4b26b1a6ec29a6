"""The node database: a real SQLCipher file in tmp_path, its key, and what it keeps."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import pytest

from node.core.errors import ConfigError
from node.store.keys import (
    DB_KEY_ENV,
    check_private_file,
    load_db_key,
    new_db_key_file,
    write_private,
)
from node.store.sqlcipher import ReceiptRow, Store

KEY = bytes(range(32))
DOCS = [("KAZ", "PLAINDOC4711", "P", "KAZ-SLTD-1", "seize_document", "desk", "2036-01-31",
         "stolen"),
        ("UZB", "FA1002003", "P", "UZB-SLTD-2", "refuse_entry", "", "2020-01-01", "")]
PERSONS = [("UZB-WNT-1", "Каримова", "Дилноза", "Шухратовна", "1995-08-21", "UZB", "F",
            "refuse_entry", "", "2031-01-01")]


def one_sentence(msg: str) -> None:
    assert msg and "\n" not in msg and ". " not in msg.rstrip("."), msg


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "node.db"
    Store.open(path, KEY, create=True).close()
    return path


def test_create_sets_mode_0600(db: Path) -> None:
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_wrong_key_is_config_error(db: Path) -> None:
    with pytest.raises(ConfigError) as err:
        Store.open(db, bytes(32))
    assert err.value.reason == "wrong_db_key"
    assert str(err.value) == (f"the database key does not open {db}: wrong key or not a bxnode "
                              "database")
    one_sentence(str(err.value))


def test_a_file_that_is_not_a_database_is_wrong_db_key(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(secrets.token_bytes(8192))
    with pytest.raises(ConfigError) as err:
        Store.open(junk, KEY)
    assert err.value.reason == "wrong_db_key"


def test_missing_database(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        Store.open(tmp_path / "absent.db", KEY)
    assert err.value.reason == "no_database"
    one_sentence(str(err.value))
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33)])
def test_key_must_be_32_bytes(tmp_path: Path, key: bytes) -> None:
    with pytest.raises(ConfigError) as err:
        Store.open(tmp_path / "x.db", key, create=True)
    assert err.value.reason == "bad_db_key"
    assert not (tmp_path / "x.db").exists()


def _open_fds(db: Path) -> list[str]:
    """The process's descriptors open on the database or its journal, WAL or lock files
    (not a count of all: another test's thread may open or close one meanwhile)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since the listing (the listing's own descriptor)
            continue
        if target.startswith(str(db)):
            out.append(target)
    return sorted(out)


def test_newer_schema_is_refused_and_the_file_closed(db: Path) -> None:
    s = Store.open(db, KEY)
    s.set_meta("schema_version", "99")
    s.close()
    assert _open_fds(db) == []
    for _ in range(3):
        with pytest.raises(ConfigError) as err:
            Store.open(db, KEY)
        assert err.value.reason == "schema_newer"
    assert _open_fds(db) == []


def test_wrong_key_leaves_no_open_file(db: Path) -> None:
    assert _open_fds(db) == []
    for _ in range(3):
        with pytest.raises(ConfigError):
            Store.open(db, bytes(32))
    assert _open_fds(db) == []


def test_nonce_remembered_across_reopen(db: Path) -> None:
    s = Store.open(db, KEY)
    assert s.remember_nonce("KGZ-BS", b"n" * 24, expires_ms=10_000, now_ms=1_000) is True
    assert s.remember_nonce("KGZ-BS", b"n" * 24, expires_ms=10_000, now_ms=1_001) is False
    s.close()
    s = Store.open(db, KEY)
    try:
        assert s.remember_nonce("KGZ-BS", b"n" * 24, expires_ms=20_000, now_ms=2_000) is False
        # the same nonce from another node is a different nonce
        assert s.remember_nonce("UZB-BS", b"n" * 24, expires_ms=20_000, now_ms=2_000) is True
    finally:
        s.close()


def test_expired_nonces_are_purged(db: Path) -> None:
    s = Store.open(db, KEY)
    try:
        assert s.remember_nonce("KGZ-BS", b"a" * 16, expires_ms=5_000, now_ms=1_000)
        assert s.remember_nonce("KGZ-BS", b"b" * 16, expires_ms=50_000, now_ms=1_000)
        assert s.query("SELECT count(*) FROM nonces") == [(2,)]
        # at 5_000 the first is not yet expired (expiry is inclusive) ...
        assert s.remember_nonce("KGZ-BS", b"a" * 16, expires_ms=9_000, now_ms=5_000) is False
        # ... after it, it is gone (expired rows are purged at most once a second),
        # and may be recorded afresh
        assert s.remember_nonce("KGZ-BS", b"c" * 16, expires_ms=60_000, now_ms=6_001)
        assert sorted(r[0] for r in s.query("SELECT nonce FROM nonces")) == [b"b" * 16,
                                                                             b"c" * 16]
        assert s.remember_nonce("KGZ-BS", b"a" * 16, expires_ms=60_000, now_ms=6_002) is True
    finally:
        s.close()


def test_usage_accumulates_per_node_and_day(db: Path) -> None:
    s = Store.open(db, KEY)
    s.add_usage("KGZ-BS", "2026-11-23", 3)
    s.add_usage("KGZ-BS", "2026-11-23", 4)
    s.add_usage("KGZ-BS", "2026-11-24", 1)
    s.add_usage("UZB-BS", "2026-11-23", 10)
    s.close()
    s = Store.open(db, KEY)
    try:
        assert s.items_today("KGZ-BS", "2026-11-23") == 7
        assert s.items_today("KGZ-BS", "2026-11-24") == 1
        assert s.items_today("UZB-BS", "2026-11-23") == 10
        assert s.items_today("TJK-BS", "2026-11-23") == 0
    finally:
        s.close()


def test_watchlist_rows_and_expiry(db: Path) -> None:
    s = Store.open(db, KEY)
    try:
        with s.transaction():
            assert s.insert_documents(DOCS) == 2
            assert s.insert_persons(PERSONS) == 1
        assert s.watchlist_counts() == (2, 1)
        keys = [("PLAINDOC4711", "KAZ", "P"), ("FA1002003", "UZB", "P"),
                ("PLAINDOC4711", "KAZ", "I"), ("PLAINDOC4711", "KAZ", "P")]
        # one live record; FA1002003 has expired; another type is another document
        assert s.find_documents_many(keys, "2026-11-23") == {
            ("PLAINDOC4711", "KAZ", "P"): [("KAZ-SLTD-1", "seize_document", "desk")]}
        assert s.person("UZB-WNT-1") == PERSONS[0]
        assert list(s.iter_persons("2031-01-01")) == [PERSONS[0]]  # live on its last day
        assert list(s.iter_persons("2031-01-02")) == []
    finally:
        s.close()


def test_rollback_leaves_nothing(db: Path) -> None:
    s = Store.open(db, KEY)
    with pytest.raises(RuntimeError, match="boom"), s.transaction():
        s.insert_documents(DOCS)
        s.insert_persons(PERSONS)
        s.set_meta("watchlist_generation", "1")
        s.add_usage("KGZ-BS", "2026-11-23", 5)
        s.put_receipt(ReceiptRow("sent", "KAZ-BS", b"d", b"q", b"r", 1))
        raise RuntimeError("boom")
    assert s.watchlist_counts() == (0, 0)
    s.close()
    s = Store.open(db, KEY)
    try:
        assert s.watchlist_counts() == (0, 0)
        assert s.get_meta("watchlist_generation") is None
        assert s.items_today("KGZ-BS", "2026-11-23") == 0
        assert s.receipts() == []
        # and the connection is usable again
        with s.transaction():
            s.set_meta("k", "v")
        assert s.get_meta("k") == "v"
    finally:
        s.close()


def test_nested_transaction_is_a_savepoint(db: Path) -> None:
    s = Store.open(db, KEY)
    try:
        with s.transaction():
            s.set_meta("outer", "1")
            with pytest.raises(ValueError), s.transaction():
                s.set_meta("inner", "1")
                raise ValueError("inner fails")
            with s.transaction():
                s.set_meta("inner2", "1")
                with s.savepoint():
                    s.set_meta("innermost", "1")
        assert (s.get_meta("outer"), s.get_meta("inner"), s.get_meta("inner2"),
                s.get_meta("innermost")) == ("1", None, "1", "1")
    finally:
        s.close()


def test_outer_rollback_undoes_released_savepoints(db: Path) -> None:
    s = Store.open(db, KEY)
    try:
        with pytest.raises(KeyError), s.transaction():
            with s.transaction():
                s.set_meta("inner", "1")
            raise KeyError("outer fails")
        assert s.get_meta("inner") is None
    finally:
        s.close()


def test_receipts_roundtrip_and_filter(db: Path) -> None:
    s = Store.open(db, KEY)
    try:
        a = ReceiptRow("sent", "KAZ-BS", b"\x01" * 32, b"req", b"resp", 10)
        b = ReceiptRow("received", "KGZ-BS", b"\x02" * 32, b"req2", b"resp2", 11)
        s.put_receipt(a)
        s.put_receipt(b)
        assert s.receipts() == [a, b]
        assert s.receipts(direction="received") == [b]
    finally:
        s.close()


# --- the database key -----------------------------------------------------------------------


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(DB_KEY_ENV, raising=False)
    return monkeypatch


def test_new_key_file_is_0600_and_loads(tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    key = new_db_key_file(tmp_path / "db.key")
    assert stat.S_IMODE((tmp_path / "db.key").stat().st_mode) == 0o600
    assert (tmp_path / "db.key").read_text() == key.hex() + "\n"
    assert load_db_key(tmp_path / "db.key") == key


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700 | 0o070])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, no_env: pytest.MonkeyPatch,
                                                mode: int) -> None:
    path = tmp_path / "db.key"
    new_db_key_file(path)
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as err:
        load_db_key(path)
    assert err.value.reason == "insecure_file_mode"
    assert str(err.value) == (f"database key file {path} is readable by others; "
                              f"run 'chmod 600 {path}'")


def test_missing_key_file(tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as err:
        load_db_key(tmp_path / "absent.key")
    assert err.value.reason == "missing_file"
    with pytest.raises(ConfigError) as err:
        load_db_key(None)
    assert err.value.reason == "no_db_key"


@pytest.mark.parametrize(("text", "reason"), [("zz" * 32, "bad_db_key"), ("00" * 31, "bad_db_key"),
                                              ("00" * 33, "bad_db_key"), ("", "bad_db_key")])
def test_key_file_content_is_checked(tmp_path: Path, no_env: pytest.MonkeyPatch, text: str,
                                     reason: str) -> None:
    path = tmp_path / "db.key"
    write_private(path, text)
    with pytest.raises(ConfigError) as err:
        load_db_key(path)
    assert err.value.reason == reason


def test_env_var_takes_precedence(tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    path = tmp_path / "db.key"
    new_db_key_file(path)
    os.chmod(path, 0o644)  # would be refused if it were read
    env_key = secrets.token_bytes(32)
    no_env.setenv(DB_KEY_ENV, env_key.hex().upper() + "\n")
    assert load_db_key(path) == env_key
    assert load_db_key(None) == env_key


@pytest.mark.parametrize("value", ["not-hex", "00" * 31, "0" * 63, "00" * 32 + "ff"])
def test_env_var_bad_value_is_refused(tmp_path: Path, no_env: pytest.MonkeyPatch,
                                      value: str) -> None:
    path = tmp_path / "db.key"
    new_db_key_file(path)
    no_env.setenv(DB_KEY_ENV, value)
    with pytest.raises(ConfigError) as err:
        load_db_key(path)
    assert err.value.reason == "bad_db_key"
    assert f"${DB_KEY_ENV}" in str(err.value)
    one_sentence(str(err.value))


def test_write_private_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write_private(path, "one")
    with pytest.raises(FileExistsError):
        write_private(path, "two")
    assert path.read_text() == "one"


def test_check_private_file_accepts_0400_and_0600(tmp_path: Path) -> None:
    path = tmp_path / "s"
    write_private(path, "x")
    check_private_file(path, "s")
    os.chmod(path, 0o400)
    check_private_file(path, "s")


# --- encryption at rest ---------------------------------------------------------------------


def _raw(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal"))
                    if p.exists())


SECRETS = [b"PLAINDOC4711", b"KAZ-SLTD-1", b"seize_document", b"UZB-WNT-1",
           "Каримова".encode(), "Дилноза".encode(), "Шухратовна".encode(),
           "Каримова".encode("utf-16-le"), b"CREATE TABLE", b"SQLite format 3"]


def test_no_plaintext_in_the_raw_files(db: Path) -> None:
    s = Store.open(db, KEY)
    with s.transaction():
        s.insert_documents(DOCS)
        s.insert_persons(PERSONS)
    wal = db.with_name(db.name + "-wal")
    assert wal.exists() and wal.stat().st_size > 0  # the writes are in the WAL right now
    raw = _raw(db)
    for secret in SECRETS:
        assert secret not in raw, secret
    s.close()
    raw = _raw(db)
    assert len(raw) > 4096
    for secret in SECRETS:
        assert secret not in raw, secret
    # the data is really there
    s = Store.open(db, KEY)
    try:
        assert s.person("UZB-WNT-1") == PERSONS[0]
    finally:
        s.close()
