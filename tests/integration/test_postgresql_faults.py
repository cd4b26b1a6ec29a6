"""PostgreSQL when things go wrong: credentials, an unreachable server, a restart; and what
a database administrator sees in a dump (no identifiers).

These stop and start the session's cluster; each restores it before it ends.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from node.core.errors import ConfigError, EnvironmentFault
from node.store.fieldcrypt import KeyedCodec
from node.store.postgresql import PgPool
from node.store.postgresql.migrate import migrate
from tests.pgcluster import PgCluster

CODEC = KeyedCodec.from_key(bytes(range(32)))


@pytest.fixture
def pool(pg_cluster: PgCluster, pg_dsn: str) -> Iterator[PgPool]:
    p = PgPool.open(dsn=pg_dsn, password=pg_cluster.password, codec=CODEC, max_size=3,
                    timeout_s=2.0, check_schema=False)
    migrate(p.database())
    yield p
    p.close()


@pytest.fixture
def restarts(pg_cluster: PgCluster) -> Iterator[PgCluster]:
    """The cluster, for a test that stops it: running again afterwards, whatever happens."""
    yield pg_cluster
    if not pg_cluster.running:
        pg_cluster.start()


def test_a_wrong_password_is_our_configuration(pg_cluster: PgCluster, pg_dsn: str) -> None:
    with pytest.raises(ConfigError) as exc:
        PgPool.open(dsn=pg_dsn, password="not-the-password", codec=CODEC)
    assert exc.value.reason == "database_auth_failed"
    assert "password authentication failed" in str(exc.value)
    assert "not-the-password" not in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        PgPool.open(dsn=pg_dsn, password=None, codec=CODEC)
    assert exc.value.reason == "database_auth_failed"


def test_a_missing_database_is_named(pg_cluster: PgCluster) -> None:
    with pytest.raises(ConfigError) as exc:
        PgPool.open(dsn=pg_cluster.dsn("no_such_db"), password=pg_cluster.password,
                    codec=CODEC)
    assert exc.value.reason == "no_database"


def test_a_dsn_with_a_password_is_refused_by_the_pool_too(pg_cluster: PgCluster,
                                                          pg_dsn: str) -> None:
    with pytest.raises(ConfigError) as exc:
        PgPool.open(dsn=pg_dsn + f" password={pg_cluster.password}", password=None,
                    codec=CODEC)
    assert exc.value.reason == "dsn_has_password"
    assert pg_cluster.password not in str(exc.value)


def test_an_unreachable_server_is_an_environment_fault(restarts: PgCluster, pg_dsn: str,
                                                       pool: PgPool) -> None:
    db = pool.database()
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    restarts.stop()
    with pytest.raises(EnvironmentFault) as exc, db.transaction():
        db.execute("INSERT INTO t VALUES (?)", ("lost",))
    assert exc.value.reason == "database_unavailable"
    assert exc.value.status == "UNAVAILABLE"
    assert not db.in_transaction
    with pytest.raises(EnvironmentFault) as exc:
        db.query("SELECT k FROM t")
    assert exc.value.reason == "database_unavailable"
    with pytest.raises(EnvironmentFault) as exc:
        PgPool.open(dsn=pg_dsn, password=restarts.password, codec=CODEC, timeout_s=2.0)
    assert exc.value.reason == "database_unavailable"
    assert "Connection refused" in str(exc.value)

    restarts.start()  # the next transaction gets a fresh connection
    db.execute("INSERT INTO t VALUES (?)", ("after",))
    assert db.query("SELECT k FROM t") == [("after",)]


def test_a_restart_while_idle_costs_no_transaction(restarts: PgCluster, pool: PgPool) -> None:
    handles = [pool.database() for _ in range(3)]
    for i, h in enumerate(handles):  # fill the pool with connections that will go stale
        with h.transaction():
            h.query("SELECT ?::bigint", (i,))
    restarts.stop()
    restarts.start()
    for i, h in enumerate(handles):
        with h.transaction():
            assert h.query_one("SELECT ?::bigint", (i,)) == (i,)


def test_a_connection_lost_mid_transaction_rolls_back_and_the_next_recovers(
        pg_cluster: PgCluster, pool: PgPool) -> None:
    db = pool.database()
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    with pytest.raises(EnvironmentFault) as exc, db.transaction():
        db.execute("INSERT INTO t VALUES (?)", ("half",))
        (pid,) = db.query_one("SELECT pg_backend_pid()") or (0,)
        with pg_cluster.admin() as admin:  # the server ends this session, as a crash would
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        db.execute("INSERT INTO t VALUES (?)", ("never",))
    assert exc.value.reason == "database_unavailable"
    assert db.query("SELECT k FROM t") == []
    db.execute("INSERT INTO t VALUES (?)", ("next",))
    assert db.query("SELECT k FROM t") == [("next",)]


# --- what a database administrator sees -----------------------------------------------------

PEOPLE = [
    # (document number, family, given, owner reference, contact)
    ("AC7654321", "Юсупов", "Тимур", "KGZ-ALERT-2026-0042", "Kordai post, desk 3"),
    ("N11223344", "Қайратұлы", "Бақыт", "KAZ-WNT-7781", "Almaty liaison +7 727 000 1122"),
    ("FA1002003", "Ғафуров", "Дилшод", "UZB-SLTD-5521", "Tashkent duty officer"),
]
TRANSLITERATED = ["IUSUPOV", "YUSUPOV", "TIMUR", "KAIRATULY", "QAIRATULY", "BAKYT", "GAFUROV",
                  "GHAFUROV", "DILSHOD"]


def test_a_dump_of_a_populated_database_shows_no_identifier(
        pg_cluster: PgCluster, pg_dsn: str, pool: PgPool) -> None:
    db = pool.database()
    c = db.codec
    db.execute("CREATE TABLE sample (number BYTEA PRIMARY KEY, owner_ref BYTEA NOT NULL, "
               "family BYTEA NOT NULL, expires TEXT NOT NULL, sealed BYTEA NOT NULL)")
    rows = []
    for number, family, given, ref, contact in PEOPLE:
        latin = TRANSLITERATED[PEOPLE.index((number, family, given, ref, contact)) * 3]
        sealed = json.dumps([number, family, given, latin, ref, contact]).encode()
        rows.append((c.index("sample.number", number), c.index("sample.owner_ref", ref),
                     c.index("sample.family", latin), "2031-01-01",
                     c.seal("sample.sealed", sealed)))
    assert db.executemany("INSERT INTO sample VALUES (?, ?, ?, ?, ?)", rows) == 3
    # what the node reads back is whole (the dump must not be blank for a wrong reason)
    number_ix = c.index("sample.number", "AC7654321")
    row = db.query_one("SELECT sealed FROM sample WHERE number = ?", (number_ix,))
    assert row is not None
    assert json.loads(c.open("sample.sealed", row[0]))[1] == "Юсупов"

    dbname = pg_dsn.split("dbname=")[1].split()[0]
    dump = subprocess.run(
        [str(pg_cluster.tool("pg_dump")), "-h", str(pg_cluster.socket_dir), "-p",
         str(pg_cluster.port), "-U", pg_cluster.superuser, "--no-owner", dbname],
        capture_output=True, check=True, timeout=120).stdout
    assert b"COPY public.sample" in dump and b"2031-01-01" in dump  # the rows are there
    text = dump.decode("utf-8")
    needles = [v for p in PEOPLE for v in p] + TRANSLITERATED
    needles += [w for p in PEOPLE for w in p[4].split() if len(w) > 4]
    for needle in needles:
        for form in {needle, needle.upper(), needle.lower()}:
            assert form not in text, f"{form!r} is readable in the dump"
            assert form.encode().hex() not in text, f"{form!r} is in the dump as hex"
