"""Helpers for the CLI tests: a captured run of ``bxnode`` and the one-sentence error check."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from node.app import open_store
from node.config import load_config
from node.store.sqlcipher import Store


@dataclass
class Run:
    rc: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one ``bxnode:`` line on stderr (structlog records, JSON lines, are skipped)."""
        lines = [ln for ln in self.err.splitlines() if ln and not _is_log(ln)]
        assert len(lines) == 1, f"stderr is not one line: {self.err!r}"
        return lines[0]


class Bx(Protocol):
    def __call__(self, *argv: str) -> Run: ...


def _is_log(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


_NEW_SENTENCE = re.compile(r"[.!?] +[A-Z]")


def assert_one_sentence(r: Run, rc: int = 1) -> str:
    """The run failed with ``rc`` and said so in one sentence starting ``bxnode: ``."""
    assert r.rc == rc, (r.rc, r.out, r.err)
    assert "Traceback" not in r.err, r.err
    line = r.error
    assert line.startswith("bxnode: "), line
    assert not _NEW_SENTENCE.search(line), f"more than one sentence: {line}"
    return line


def store_of(node_dir: Path) -> Store:
    """The node's SQLCipher store (``bxnode init`` here configures no other backend)."""
    store = open_store(load_config(node_dir))
    assert isinstance(store, Store), store
    return store


def audit_table(store: Store) -> str:
    """The table holding audit entry bodies: the Merkle log's, or the first-cut hash chain's."""
    names = {r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type='table'")}
    return "audit_entries" if "audit_entries" in names else "audit"


def audit_bodies(node_dir: Path) -> list[dict[str, Any]]:
    """Every audit entry body of a node, in order, read from its real database."""
    store = store_of(node_dir)
    try:
        rows = store.query(f"SELECT body FROM {audit_table(store)} ORDER BY seq")
        return [json.loads(r[0]) for r in rows if r[0] is not None]
    finally:
        store.close()


def tamper_body(node_dir: Path, seq: int, change: dict[str, Any]) -> None:
    """Change an audit entry's body with a raw SQLCipher connection, as an intruder would."""
    import sqlcipher3

    from node.store.keys import load_db_key

    cfg = load_config(node_dir)
    key = load_db_key(cfg.db_key_file)
    store = store_of(node_dir)
    table = audit_table(store)
    store.close()
    conn = sqlcipher3.connect(str(cfg.db_path), isolation_level=None)
    try:
        conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        body = json.loads(conn.execute(f"SELECT body FROM {table} WHERE seq=?",
                                       (seq,)).fetchone()[0])
        body.update(change)
        new = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        assert conn.execute(f"UPDATE {table} SET body=? WHERE seq=?", (new, seq)).rowcount == 1
    finally:
        conn.close()


def counts(node_dir: Path) -> tuple[int, int]:
    store = store_of(node_dir)
    try:
        return store.watchlist_counts()
    finally:
        store.close()
