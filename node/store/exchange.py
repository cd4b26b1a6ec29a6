"""Nonces, daily usage and receipts: the exchange's own ledgers, in portable SQL.

One implementation for both backends (:class:`node.store.db.Database`).  On a shared
PostgreSQL database every statement here is exact across replicas: a nonce is a primary
key (the upsert only replaces an *expired* row, so of two replicas racing for one nonce
exactly one gets a row count of 1), and usage is incremented in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from node.core.ports import Receipt
from node.store.db import Database

__all__ = ["EXCHANGE_DDL", "SqlNonceLedger", "SqlReceiptStore", "SqlUsageLedger"]

EXCHANGE_DDL = """
CREATE TABLE IF NOT EXISTS nonces (
    node_id TEXT NOT NULL, nonce BLOB NOT NULL, expires_ms INTEGER NOT NULL,
    PRIMARY KEY (node_id, nonce)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_ms);
CREATE TABLE IF NOT EXISTS usage (
    node_id TEXT NOT NULL, day TEXT NOT NULL, items INTEGER NOT NULL,
    PRIMARY KEY (node_id, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipts (
    id INTEGER PRIMARY KEY, direction TEXT NOT NULL, peer TEXT NOT NULL,
    request_digest BLOB NOT NULL, request_env BLOB NOT NULL, response_env BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_digest ON receipts (request_digest);
"""

#: Receipts hold the signed request and answer: document numbers and names.  Sealed.
_REQUEST = "receipts.request_env"
_RESPONSE = "receipts.response_env"


class SqlNonceLedger:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._purged_ms = 0

    def remember(self, node_id: str, nonce: bytes, *, expires_ms: int, now_ms: int) -> bool:
        if now_ms - self._purged_ms > 1000:  # purge expired nonces about once a second
            self._db.execute("DELETE FROM nonces WHERE expires_ms < ?", (now_ms,))
            self._purged_ms = now_ms
        return self._db.execute(
            "INSERT INTO nonces (node_id, nonce, expires_ms) VALUES (?, ?, ?) "
            "ON CONFLICT (node_id, nonce) DO UPDATE SET expires_ms = excluded.expires_ms "
            "WHERE nonces.expires_ms < ?", (node_id, nonce, expires_ms, now_ms)) == 1


class SqlUsageLedger:
    def __init__(self, db: Database) -> None:
        self._db = db

    def items_today(self, node_id: str, day: str) -> int:
        row = self._db.query_one("SELECT items FROM usage WHERE node_id=? AND day=?",
                                 (node_id, day))
        return 0 if row is None else int(row[0])

    def add(self, node_id: str, day: str, items: int) -> None:
        self._db.execute(
            "INSERT INTO usage (node_id, day, items) VALUES (?, ?, ?) "
            "ON CONFLICT (node_id, day) DO UPDATE SET items = usage.items + excluded.items",
            (node_id, day, items))


class SqlReceiptStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, r: Receipt) -> None:
        seal = self._db.codec.seal
        self._db.execute(
            "INSERT INTO receipts (direction, peer, request_digest, request_env, response_env, "
            "created_ms) VALUES (?,?,?,?,?,?)",
            (r.direction, r.peer, r.request_digest, seal(_REQUEST, r.request_env),
             seal(_RESPONSE, r.response_env), r.created_ms))

    def all(self, *, direction: str | None = None) -> list[Receipt]:
        q = ("SELECT direction, peer, request_digest, request_env, response_env, created_ms "
             "FROM receipts")
        args: tuple[str, ...] = ()
        if direction:
            q += " WHERE direction=?"
            args = (direction,)
        open_ = self._db.codec.open
        return [Receipt(str(d), str(p), bytes(dg), open_(_REQUEST, bytes(rq)),
                        open_(_RESPONSE, bytes(rs)), int(t))
                for d, p, dg, rq, rs, t in self._db.query(q + " ORDER BY id", args)]

    def all_with_ids(self) -> Iterator[tuple[int, Receipt]]:
        """Every receipt with its row id, opened, in id order; streamed (``bxnode store
        copy``)."""
        open_ = self._db.codec.open
        for i, d, p, dg, rq, rs, t in self._db.stream(
                "SELECT id, direction, peer, request_digest, request_env, response_env, "
                "created_ms FROM receipts ORDER BY id"):
            yield int(i), Receipt(str(d), str(p), bytes(dg), open_(_REQUEST, bytes(rq)),
                                  open_(_RESPONSE, bytes(rs)), int(t))

    def restore(self, rows: Iterable[tuple[int, Receipt]]) -> int:
        """Insert receipts under the ids they had (a copied store); returns how many.  On
        PostgreSQL, move the identity past them afterwards (``sync_identities``)."""
        seal = self._db.codec.seal
        batch = [(i, r.direction, r.peer, r.request_digest, seal(_REQUEST, r.request_env),
                  seal(_RESPONSE, r.response_env), r.created_ms) for i, r in rows]
        self._db.executemany(
            "INSERT INTO receipts (id, direction, peer, request_digest, request_env, "
            "response_env, created_ms) VALUES (?,?,?,?,?,?,?)", batch)
        return len(batch)
