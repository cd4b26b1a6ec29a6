"""``bxnode store migrate`` on a node configured for PostgreSQL, and on SQLCipher."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import structlog

from node.cli.main import main
from node.store.keys import write_private
from tests.pgcluster import PgCluster


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BXNODE_DB_KEY", "BXNODE_HOME", "BXNODE_PG_PASSWORD", "BXNODE_FIELD_KEY"):
        monkeypatch.delenv(name, raising=False)


def bx(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        rc = main(list(argv))
    finally:  # later log records must not go to this test's closed capture
        structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))
    out, err = capsys.readouterr()
    return rc, out, err


def errors(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("bxnode: ")]


@pytest.fixture
def node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    d = tmp_path / "node"
    rc, _, err = bx(capsys, "init", "--node-dir", str(d), "--node-id", "KAZ-BS", "--country",
                    "KAZ", "--listen", "127.0.0.1:0")
    assert rc == 0, err
    return d


def use_postgresql(node: Path, cluster: PgCluster, dsn: str, password: str) -> None:
    write_private(node / "pg.pass", password + "\n")
    write_private(node / "field.key", "22" * 32 + "\n")
    toml = node / "node.toml"
    toml.write_text(toml.read_text().replace(
        "[storage]\n", f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
                       'password_file = "pg.pass"\nfield_key_file = "field.key"\n'
                       "connect_timeout_s = 2\n", 1))


def test_migrate_on_sqlcipher_is_a_no_op_that_says_so(node: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = bx(capsys, "store", "migrate", "--node-dir", str(node))
    assert rc == 0
    assert out == ("store migrate: nothing to do on SQLCipher: the database file migrates "
                   "itself when the node opens it\n")


def test_migrate_creates_then_finds_the_schema_current(
        node: Path, pg_cluster: PgCluster, pg_dsn: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    from node.store.schema import latest_versions, steps

    use_postgresql(node, pg_cluster, pg_dsn, pg_cluster.password)
    rc, out, err = bx(capsys, "store", "migrate", "--node-dir", str(node), "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc == {"backend": "postgresql", "migrated": True,
                   "applied": [f"{s.name} v{s.version}" for s in steps()],
                   "versions": dict(sorted(latest_versions().items()))}
    rc, out, err = bx(capsys, "store", "migrate", "--node-dir", str(node))
    assert rc == 0, err
    versions = ", ".join(f"{n} v{v}" for n, v in sorted(latest_versions().items()))
    assert out == f"store migrate: the schema is current; nothing applied (now {versions})\n"


def test_migrate_with_a_wrong_password_fails_in_one_line(
        node: Path, pg_cluster: PgCluster, pg_dsn: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    use_postgresql(node, pg_cluster, pg_dsn, "wrong")
    rc, _, err = bx(capsys, "store", "migrate", "--node-dir", str(node))
    assert rc == 1
    (line,) = errors(err)
    assert line.startswith("bxnode: PostgreSQL refused our credentials: ")
    assert "password authentication failed" in line


def test_migrate_against_a_stopped_server_is_unavailable(
        node: Path, pg_cluster: PgCluster, pg_dsn: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    use_postgresql(node, pg_cluster, pg_dsn, pg_cluster.password)
    pg_cluster.stop()
    try:
        rc, _, err = bx(capsys, "store", "migrate", "--node-dir", str(node))
    finally:
        pg_cluster.start()
    assert rc == 1
    (line,) = errors(err)
    assert line.startswith("bxnode: database unreachable: ")
    assert line.endswith("(database_unavailable)")
