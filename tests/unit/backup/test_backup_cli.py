"""``bxnode backup``, ``restore``, ``backup-keygen``, ``audit recover-tail`` and
``audit reset-log`` on a real node directory (SQLCipher file, no network): every refusal is
one sentence, a non-zero exit, and leaves the node's database as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from pathlib import Path

import pytest

from node.app import now_ms, open_store
from node.audit.log import MerkleAuditLog
from node.config import load_config
from node.store.witness import WitnessStateRow, WitnessTables
from tests.federation import file_signing_key
from tests.unit.cli._support import Bx, assert_one_sentence


def _digest(node: Path) -> str:
    return hashlib.sha256((node / "node.db").read_bytes()).hexdigest()


def _state(node: Path) -> tuple[int, str, str | None, int]:
    """What recover-tail may change: entries, head, the hold, nonces."""
    store = open_store(load_config(node))
    try:
        log = MerkleAuditLog(store=store, node_id="KAZ-BS")
        head = log.latest_head()
        nonces = store.query_one("SELECT count(*) FROM nonces")
        return (log.next_seq() - 1, head.root.hex() if head else "",
                store.get_meta("audit:restore_hold"), int(nonces[0]) if nonces else 0)
    finally:
        store.close()


def _witnessed(node: Path, row: WitnessStateRow) -> None:
    store = open_store(load_config(node))
    try:
        tables = WitnessTables(store)
        tables.ensure_schema()
        with store.transaction():
            tables.insert_state(row, now_ms=now_ms())
    finally:
        store.close()


def _witness_states(node: Path) -> dict[str, int]:
    store = open_store(load_config(node))
    try:
        tables = WitnessTables(store)
        tables.ensure_schema()
        return tables.states()
    finally:
        store.close()


def _leftovers(node: Path) -> list[str]:
    return sorted(p.name for p in node.iterdir()
                  if p.name.startswith(".node.db.") or ".replaced-" in p.name)


def _append(node: Path, n: int) -> None:
    cfg = load_config(node)
    store = open_store(cfg)
    try:
        log = MerkleAuditLog(store=store, node_id=cfg.node_id,
                             signing_key=file_signing_key(cfg))
        for i in range(n):
            with store.transaction():
                log.append({"event": "lookup", "n": i}, time_ms=now_ms())
    finally:
        store.close()


@pytest.fixture
def keys(tmp_path: Path, bx: Bx) -> Path:
    key = tmp_path / "backup.key"
    r = bx("backup-keygen", "--out", str(key), "--json")
    assert r.rc == 0, r.err
    assert json.loads(r.out)["public"] == f"{key}.pub"
    return key


def _backup(bx: Bx, node: Path, keys: Path, out: Path) -> dict[str, object]:
    r = bx("backup", "--node-dir", str(node), "--out", str(out), "--to", f"{keys}.pub",
           "--json")
    assert r.rc == 0, r.err
    return dict(json.loads(r.out))


def test_keygen_never_overwrites(keys: Path, bx: Bx) -> None:
    before = keys.read_bytes()
    line = assert_one_sentence(bx("backup-keygen", "--out", str(keys)))
    assert "not overwriting a key" in line and keys.read_bytes() == before


def test_backup_refuses_a_private_key_as_recipient_and_an_existing_file(
        node: Path, keys: Path, bx: Bx, tmp_path: Path) -> None:
    line = assert_one_sentence(bx("backup", "--node-dir", str(node), "--out",
                                  str(tmp_path / "b.bxb"), "--to", str(keys)))
    assert "holds a backup private key, not the backup public key" in line
    assert not (tmp_path / "b.bxb").exists() and not (tmp_path / "b.bxb.partial").exists()
    _backup(bx, node, keys, tmp_path / "b.bxb")
    line = assert_one_sentence(bx("backup", "--node-dir", str(node), "--out",
                                  str(tmp_path / "b.bxb"), "--to", f"{keys}.pub"))
    assert "exists; pass --overwrite" in line


def test_bad_backups_are_refused_and_nothing_is_written(node: Path, keys: Path, bx: Bx,
                                                       tmp_path: Path) -> None:
    _append(node, 2)
    good = tmp_path / "good.bxb"
    _backup(bx, node, keys, good)
    blob = good.read_bytes()
    _append(node, 1)
    before = _digest(node)
    flipped = bytearray(blob)
    flipped[len(blob) // 3] ^= 0x40
    other_key = tmp_path / "other.key"
    assert bx("backup-keygen", "--out", str(other_key)).rc == 0
    cases = {
        "truncated": (blob[:-40], None, "truncated"),
        "tampered": (bytes(flipped), None, "do not match its signed digest"),
        "not-a-backup": (b"hello", None, "not a bxnode backup"),
        "wrong-key": (blob, other_key, "is encrypted to backup key"),
    }
    for name, (data, key, words) in cases.items():
        f = tmp_path / f"{name}.bxb"
        f.write_bytes(data)
        line = assert_one_sentence(bx("restore", str(f), "--node-dir", str(node), "--key",
                                      str(key or keys)))
        assert words in line, (name, line)
        assert _digest(node) == before and _leftovers(node) == [], name
    # signed by another node (UZB-BS's own backup, restored into KAZ-BS)
    other = tmp_path / "uzb"
    assert bx("init", "--node-dir", str(other), "--node-id", "UZB-BS", "--country", "UZB",
              "--listen", "127.0.0.1:0").rc == 0
    _backup(bx, other, keys, tmp_path / "uzb.bxb")
    line = assert_one_sentence(bx("restore", str(tmp_path / "uzb.bxb"), "--node-dir",
                                  str(node), "--key", str(keys)))
    assert "signature does not verify under this node's keys" in line
    assert _digest(node) == before and _leftovers(node) == []


def test_restore_refuses_while_the_node_serves(node: Path, keys: Path, bx: Bx,
                                              tmp_path: Path) -> None:
    _backup(bx, node, keys, tmp_path / "b.bxb")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        (node / "serve.port").write_text(f"{port}\n")
        line = assert_one_sentence(bx("restore", str(tmp_path / "b.bxb"), "--node-dir",
                                      str(node), "--key", str(keys)))
    assert line == f"bxnode: the node is serving (port {port}); stop it before restoring"
    (node / "serve.port").unlink()


def test_restore_holds_a_log_without_witnesses_until_a_reset(node: Path, keys: Path, bx: Bx,
                                                             tmp_path: Path) -> None:
    _append(node, 2)
    meta = _backup(bx, node, keys, tmp_path / "b.bxb")
    # two entries, and the backup's own (sealed before the snapshot)
    assert meta["audit_size"] == 3 and meta["audit_origin"] == "bxnode/KAZ-BS"
    _append(node, 3)
    _witnessed(node, WitnessStateRow("bxnode/KGZ-BS", 4, b"\x07" * 32, b"note"))
    r = bx("restore", str(tmp_path / "b.bxb"), "--node-dir", str(node), "--key", str(keys),
           "--json")
    assert r.rc == 4, r.err  # restored, on hold: nothing says how far the log had grown
    out = json.loads(r.out)
    assert out["on_hold"] is True and "no witness is configured" in out["detail"]
    replaced = Path(out["replaced"])
    assert replaced.name.startswith("node.db.replaced-") and replaced.is_file()
    r = bx("audit", "status", "--node-dir", str(node), "--json")
    assert r.rc == 1 and json.loads(r.out)["on_hold"] is True
    assert _witness_states(node) == {}
    # the tail is in the database the restore moved aside: a copy of the newer log
    copy = tmp_path / "newer.db"
    shutil.copy(replaced, copy)
    r = bx("audit", "recover-tail", "--from", str(copy), "--node-dir", str(node), "--json")
    assert r.rc == 4, r.err  # recovered, still no witness to say it is all
    out = json.loads(r.out)
    assert (out["local_size"], out["recovered"], out["size"]) == (3, 3, 6)
    # as a witness of KGZ-BS, it holds again what it had cosigned after the backup
    assert _witness_states(node) == {"bxnode/KGZ-BS": 4}
    line = assert_one_sentence(bx("audit", "recover-tail", "--from", str(copy), "--node-dir",
                                  str(node)))
    assert "it has no tail to recover" in line
    line = assert_one_sentence(bx("audit", "reset-log", "--reason", "", "--node-dir",
                                  str(node)))
    assert "--reason must be 1..500 printable characters" in line
    r = bx("audit", "reset-log", "--reason", "no witness to ask", "--node-dir", str(node),
           "--json")
    assert r.rc == 0, r.err
    assert json.loads(r.out)["new_origin"] == "bxnode/KAZ-BS/log-2"
    r = bx("audit", "status", "--node-dir", str(node), "--json")
    assert r.rc == 0 and json.loads(r.out)["origin"] == "bxnode/KAZ-BS/log-2"
    r = bx("audit", "verify", "--node-dir", str(node), "--json")
    assert r.rc == 0 and json.loads(r.out)["entries"] == 7


def test_a_copy_of_another_log_gives_no_tail(node: Path, keys: Path, bx: Bx,
                                            tmp_path: Path) -> None:
    _append(node, 2)
    _backup(bx, node, keys, tmp_path / "b.bxb")
    _append(node, 2)
    assert bx("restore", str(tmp_path / "b.bxb"), "--node-dir", str(node), "--key",
              str(keys)).rc == 4
    before = _state(node)
    # the moved-aside database, rewritten after the backup's size: another log
    aside = next(p for p in node.iterdir() if p.name.startswith("node.db.replaced-")
                 and p.suffix not in {".lock"} and not p.name.endswith(("-wal", "-shm")))
    forked = tmp_path / "forked.db"
    shutil.copy(aside, forked)
    cfg = load_config(node)
    from node.store.keys import load_db_key
    from node.store.sqlcipher import Store

    s = Store.open(forked, load_db_key(cfg.db_key_file))
    try:
        with s.transaction():
            s.execute("UPDATE audit_entries SET time_ms = time_ms + 1 WHERE seq = 1")
    finally:
        s.close()
    line = assert_one_sentence(bx("audit", "recover-tail", "--from", str(forked),
                                  "--node-dir", str(node)))
    assert "the copy's audit log does not verify" in line
    assert _state(node) == before
    # a log under the node's own key that does not begin as this one does: another log
    other = tmp_path / "other.db"
    s = Store.open(other, load_db_key(cfg.db_key_file), create=True)
    try:
        log = MerkleAuditLog(store=s, node_id="KAZ-BS",
                             signing_key=file_signing_key(cfg))
        for i in range(5):
            with s.transaction():
                log.append({"event": "lookup", "other": i}, time_ms=now_ms())
    finally:
        s.close()
    line = assert_one_sentence(bx("audit", "recover-tail", "--from", str(other),
                                  "--node-dir", str(node)))
    assert "is not a later state of this log" in line
    assert _state(node) == before


def test_restore_onto_a_lost_database(node: Path, keys: Path, bx: Bx, tmp_path: Path) -> None:
    """The disk died: the node directory (keys, config) is back, the database is gone."""
    _append(node, 2)
    _backup(bx, node, keys, tmp_path / "b.bxb")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{node / 'node.db'}{suffix}").unlink(missing_ok=True)
    before = now_ms()
    r = bx("restore", str(tmp_path / "b.bxb"), "--node-dir", str(node), "--key", str(keys),
           "--json")
    after = now_ms()
    assert r.rc == 4, r.err
    out = json.loads(r.out)
    assert out["replaced"] is None and _leftovers(node) == []
    # a request accepted after the backup is fresh for 2 x clock_skew_s (120 s) at most
    assert before + 240_000 <= out["replays_possible_until_ms"] <= after + 240_000
    assert oct((node / "node.db").stat().st_mode & 0o777) == "0o600"
    r = bx("audit", "verify", "--node-dir", str(node), "--json")
    assert r.rc == 0 and json.loads(r.out)["entries"] == 3
