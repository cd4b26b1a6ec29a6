"""Backup and restore of a node on a real PostgreSQL (node.store.postgresql.backup).

The export is one REPEATABLE READ transaction, the load one transaction: the restored
database holds exactly the snapshot (audit log, nonces, the watchlist under its field key),
identity sequences go on past the loaded keys, a tampered backup changes nothing, the
replaced contents are kept as a backup of their own that restores, and the restored log is
on hold until the operator resets it (this node has no witnesses).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import structlog

from node.app import now_ms, open_store
from node.audit.log import MerkleAuditLog
from node.cli.main import main
from node.config import load_config
from node.keys import load_signer
from node.store.exchange import SqlNonceLedger
from node.store.keys import write_private
from node.store.witness import EvidenceRow, WitnessTables
from tests.federation import DEMO
from tests.pgcluster import PgCluster

pytestmark = pytest.mark.integration


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


def _errors(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("bxnode: ")]


def _append(node: Path, n: int, nonce: bytes) -> None:
    cfg = load_config(node)
    store = open_store(cfg)
    try:
        log = MerkleAuditLog(store=store, node_id=cfg.node_id,
                             signing_key=load_signer(cfg.signing_key))
        with store.transaction():
            assert SqlNonceLedger(store).remember("KGZ-BS", nonce, expires_ms=now_ms() + 60_000,
                                                  now_ms=now_ms())
            for i in range(n):
                log.append({"event": "lookup", "n": i}, time_ms=now_ms())
    finally:
        store.close()


def _state(node: Path) -> tuple[int, int, int, bool]:
    """(audit entries, nonces, watchlist documents, on hold)"""
    store = open_store(load_config(node))
    try:
        log = MerkleAuditLog(store=store, node_id="KAZ-BS")
        nonces = store.query_one("SELECT count(*) FROM nonces")
        docs = store.query_one("SELECT count(*) FROM documents")
        assert nonces is not None and docs is not None
        return (log.next_seq() - 1, int(nonces[0]), int(docs[0]),
                store.get_meta("audit:restore_hold") is not None)
    finally:
        store.close()


def test_backup_and_restore_on_postgresql(tmp_path: Path, pg_cluster: PgCluster, pg_dsn: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    node = tmp_path / "node"
    rc, _, err = bx(capsys, "init", "--node-dir", str(node), "--node-id", "KAZ-BS",
                    "--country", "KAZ", "--listen", "127.0.0.1:0", "--operator", "officer-1")
    assert rc == 0, err
    write_private(node / "pg.pass", pg_cluster.password + "\n")
    write_private(node / "field.key", "22" * 32 + "\n")
    toml = node / "node.toml"
    toml.write_text(toml.read_text().replace(
        "[storage]\n", f'[storage]\nbackend = "postgresql"\ndsn = "{pg_dsn}"\n'
                       'password_file = "pg.pass"\nfield_key_file = "field.key"\n', 1))
    assert bx(capsys, "store", "migrate", "--node-dir", str(node))[0] == 0
    rc, _, err = bx(capsys, "watchlist", "import", str(DEMO / "kaz-watchlist.csv"),
                    "--node-dir", str(node))
    assert rc == 0, err
    key = tmp_path / "backup.key"
    assert bx(capsys, "backup-keygen", "--out", str(key))[0] == 0
    _append(node, 2, b"n" * 16)
    backup = tmp_path / "pg.bxb"
    rc, out, err = bx(capsys, "backup", "--node-dir", str(node), "--out", str(backup),
                      "--to", f"{key}.pub", "--json")
    assert rc == 0, err
    meta = json.loads(out)
    snapshot = _state(node)
    # the import's entry, two lookups, and the backup's own entry (before its snapshot)
    assert meta["backend"] == "postgresql" and meta["audit_size"] == snapshot[0] == 4
    _append(node, 3, b"m" * 16)
    later = _state(node)
    assert later == (snapshot[0] + 3, 2, snapshot[2], False)

    tampered = tmp_path / "tampered.bxb"
    blob = bytearray(backup.read_bytes())
    blob[len(blob) // 2] ^= 1
    tampered.write_bytes(bytes(blob))
    rc, _, err = bx(capsys, "restore", str(tampered), "--node-dir", str(node), "--key", str(key))
    assert rc == 1 and _errors(err) == [
        "bxnode: the backup's encrypted bytes do not match its signed digest (tampered)"]
    assert _state(node) == later and not list(node.glob("pg-replaced-*"))

    rc, out, err = bx(capsys, "restore", str(backup), "--node-dir", str(node), "--key",
                      str(key), "--json")
    assert rc == 4, err  # restored; on hold: no witness can say how far the log had grown
    result = json.loads(out)
    assert _state(node) == (*snapshot[:3], True)
    rc, out, _ = bx(capsys, "audit", "status", "--node-dir", str(node), "--json")
    assert rc == 1 and json.loads(out)["on_hold"] is True
    # identity columns go on past the loaded keys
    store = open_store(load_config(node))
    try:
        with store.transaction():
            WitnessTables(store).add_evidence(EvidenceRow("bxnode/X", 1, "log_reset", None, b"x"))
    finally:
        store.close()
    # the replaced contents are a backup of their own, to the same key: nothing is lost
    replaced = Path(result["replaced"])
    assert replaced.name.startswith("pg-replaced-") and replaced.parent == node
    rc, _, err = bx(capsys, "restore", str(replaced), "--node-dir", str(node), "--key",
                    str(key))
    assert rc == 4, err
    assert _state(node) == (later[0] + 1, *later[1:3], True)  # with its own backup entry
    rc, out, err = bx(capsys, "audit", "reset-log", "--reason", "test", "--node-dir",
                      str(node), "--json")
    assert rc == 0, err
    assert _state(node) == (later[0] + 2, 2, later[2], False)
    rc, out, err = bx(capsys, "audit", "verify", "--node-dir", str(node), "--json")
    assert rc == 0, err


def test_recover_tail_on_postgresql(tmp_path: Path, pg_cluster: PgCluster, pg_dsn: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A restored PostgreSQL node takes the tail it lost from a newer backup: the entries,
    checkpoints and unexpired nonces after the old backup, byte for byte, in one
    transaction; the backup's schema is gone afterwards; a backup that does not extend the
    log is refused and changes nothing.  (No witnesses here: the hold stays, saying so.)"""
    node = tmp_path / "node"
    rc, _, err = bx(capsys, "init", "--node-dir", str(node), "--node-id", "KAZ-BS",
                    "--country", "KAZ", "--listen", "127.0.0.1:0", "--operator", "officer-1")
    assert rc == 0, err
    write_private(node / "pg.pass", pg_cluster.password + "\n")
    write_private(node / "field.key", "22" * 32 + "\n")
    toml = node / "node.toml"
    toml.write_text(toml.read_text().replace(
        "[storage]\n", f'[storage]\nbackend = "postgresql"\ndsn = "{pg_dsn}"\n'
                       'password_file = "pg.pass"\nfield_key_file = "field.key"\n', 1))
    assert bx(capsys, "store", "migrate", "--node-dir", str(node))[0] == 0
    key = tmp_path / "backup.key"
    assert bx(capsys, "backup-keygen", "--out", str(key))[0] == 0
    _append(node, 2, b"n" * 16)
    old, newer = tmp_path / "old.bxb", tmp_path / "newer.bxb"
    assert bx(capsys, "backup", "--node-dir", str(node), "--out", str(old),
              "--to", f"{key}.pub")[0] == 0
    _append(node, 3, b"m" * 16)  # the tail: after the old backup
    assert bx(capsys, "backup", "--node-dir", str(node), "--out", str(newer),
              "--to", f"{key}.pub")[0] == 0
    full = _state(node)
    rc, _, err = bx(capsys, "restore", str(old), "--node-dir", str(node), "--key", str(key))
    assert rc == 4, err
    lost = _state(node)
    assert lost[0] == full[0] - 4 and lost[1] == 1 and lost[3] is True
    # a SQLCipher file or a backup without its key: one sentence, nothing changed
    rc, _, err = bx(capsys, "audit", "recover-tail", "--node-dir", str(node), "--from",
                    str(newer))
    assert rc == 1 and _errors(err) == [
        "bxnode: a PostgreSQL node recovers its tail from a newer bxnode backup: pass one "
        f"(and --key, the backup private key); {newer} is one, but --key is missing"]
    # the old backup itself has no tail to give
    rc, _, err = bx(capsys, "audit", "recover-tail", "--node-dir", str(node), "--from",
                    str(old), "--key", str(key))
    assert rc == 1 and "no tail to recover" in err and _state(node) == lost
    rc, out, err = bx(capsys, "audit", "recover-tail", "--node-dir", str(node), "--from",
                      str(newer), "--key", str(key), "--json")
    assert rc == 4, err  # recovered; no witness can say the log is whole: still held
    result = json.loads(out)
    assert (result["local_size"], result["size"]) == (lost[0], full[0])
    assert result["recovered"] == full[0] - lost[0] and result["nonces"] == 1
    assert "no witness is configured" in result["detail"]
    assert _state(node) == (full[0], 2, full[2], True)
    store = open_store(load_config(node))
    try:
        schemas = store.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE "
                              "'bxnode\\_tail\\_%'")
    finally:
        store.close()
    assert schemas == []  # the backup's schema was dropped
    rc, out, err = bx(capsys, "audit", "verify", "--node-dir", str(node), "--json")
    assert rc == 0, err
    assert json.loads(out)["entries"] == full[0]
