"""Nonces, daily usage and receipts: the exchange's own ledgers, in portable SQL.

One implementation for both backends (:class:`node.store.db.Database`).  On a shared
PostgreSQL database every statement here is exact across replicas: a nonce is a primary
key (the upsert only replaces an *expired* row, so of two replicas racing for one nonce
exactly one gets a row count of 1), and usage is incremented in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from node.core.ports import Receipt
from node.store._fields import any_of
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


_REMEMBER = (
    "INSERT INTO nonces (node_id, nonce, expires_ms) VALUES (?, ?, ?) "
    "ON CONFLICT (node_id, nonce) DO UPDATE SET expires_ms = excluded.expires_ms "
    "WHERE nonces.expires_ms < ?")
_ADD_USAGE = (
    "INSERT INTO usage (node_id, day, items) VALUES (?, ?, ?) "
    "ON CONFLICT (node_id, day) DO UPDATE SET items = usage.items + excluded.items")
_PUT_RECEIPT = (
    "INSERT INTO receipts (direction, peer, request_digest, request_env, response_env, "
    "created_ms) VALUES (?,?,?,?,?,?)")


#: The most nonces one statement asks about (a batch's, one peer's).
_NONCE_CHUNK = 500
#: The most nonces announced and not yet asked about (a bound on memory, nothing else).
_EXPECT_MAX = 10_000


class SqlNonceLedger:
    """Inside a transaction (every request's, under the writers' lock) a nonce is looked up
    -- deferred earlier in this transaction, or stored and not expired -- and its row
    deferred (node/store/deferred.py): written with the batch's other nonces before
    ``COMMIT``, where a row that does not insert fails the whole transaction.  Outside a
    transaction the upsert's row count decides, as one statement.

    A batch's nonces are read in one statement per peer: the group-commit batch announces
    them before its transaction opens (:meth:`expect`, no statement), and the first
    :meth:`remember` under the writers' lock reads every announced one.  What it read
    stays true until the transaction writes anything directly (``write_epoch``, as the
    usage ledger's read): under the lock no other writer commits a nonce (each is
    recorded with its request's audit entry, under the same lock), and this
    transaction's own are the deferred rows it checks first."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._purged_ms = 0
        self._expected: set[tuple[str, bytes]] = set()
        #: (write epoch, the keys read, the expiry of those stored) under the lock.
        self._stored: tuple[int, set[tuple[str, bytes]], dict[tuple[str, bytes], int]] | \
            None = None

    def expect(self, node_id: str, nonce: bytes) -> None:
        """A nonce the next transaction will ask about (a request of the batch being
        made): read with the others at the first :meth:`remember` under the lock."""
        if len(self._expected) >= _EXPECT_MAX:
            self._expected.clear()
        self._expected.add((node_id, bytes(nonce)))

    def remember(self, node_id: str, nonce: bytes, *, expires_ms: int, now_ms: int) -> bool:
        if now_ms - self._purged_ms > 1000:  # purge expired nonces about once a second
            self._db.execute("DELETE FROM nonces WHERE expires_ms < ?", (now_ms,))
            self._purged_ms = now_ms
        args = (node_id, nonce, expires_ms, now_ms)
        if not self._db.in_transaction:
            return self._db.execute(_REMEMBER, args) == 1
        key = (node_id, bytes(nonce))
        seen = bool(self._db.pending("nonces", key))
        if not seen:
            stored = self._stored_expiry(key)
            seen = stored is not None and stored >= now_ms
        self._expected.discard(key)
        if seen:
            return False
        self._db.defer("nonces", _REMEMBER, args, key=key)
        return True

    def _stored_expiry(self, key: tuple[str, bytes]) -> int | None:
        """The stored row's expiry for ``key`` (None: no row): from the batch's one read
        while it holds (see the class doc), else read alone."""
        epoch = getattr(self._db, "write_epoch", None) if self._db.holds_writer_lock else None
        if isinstance(epoch, int):
            cache = self._stored
            if cache is None or cache[0] != epoch:
                keys = self._expected | {key}
                cache = self._stored = (epoch, keys, self._read_many(keys))
            elif key not in cache[1]:  # not announced: it, and whatever was announced since
                keys = (self._expected - cache[1]) | {key}
                cache[1].update(keys)
                cache[2].update(self._read_many(keys))
            return cache[2].get(key)
        row = self._db.query_past_deferred(
            "SELECT expires_ms FROM nonces WHERE node_id=? AND nonce=?", key)
        return None if row is None else int(row[0])

    def _read_many(self, keys: set[tuple[str, bytes]]) -> dict[tuple[str, bytes], int]:
        """The stored expiry of each of ``keys`` that has a row: one statement per peer
        (the primary key's first column) and chunk."""
        by_node: dict[str, list[bytes]] = {}
        for node_id, nonce in keys:
            by_node.setdefault(node_id, []).append(nonce)
        found: dict[tuple[str, bytes], int] = {}
        for node_id, nonces in by_node.items():
            for i in range(0, len(nonces), _NONCE_CHUNK):
                cond, args = any_of(self._db.dialect, "nonce", nonces[i:i + _NONCE_CHUNK],
                                    "bytea")
                for rows in self._db.rows_past_deferred(
                        "SELECT nonce, expires_ms FROM nonces WHERE node_id=? AND " + cond,  # noqa: S608 - placeholders only
                        (node_id, *args)):
                    found[(node_id, bytes(rows[0]))] = int(rows[1])
        return found


class SqlUsageLedger:
    """Usage is read once per transaction and peer-day while the writers' lock is held
    (until the transaction writes anything directly, ``write_epoch``), plus what the
    transaction deferred; increments are deferred (node/store/deferred.py)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._read: dict[tuple[str, str], int] = {}
        self._read_epoch: object = None

    def items_today(self, node_id: str, day: str) -> int:
        key = (node_id, day)
        deferred = sum(int(r[2]) for r in self._db.pending("usage", key))
        epoch = getattr(self._db, "write_epoch", None) if self._db.holds_writer_lock else None
        if epoch is not None and epoch == self._read_epoch and key in self._read:
            return self._read[key] + deferred
        row = self._db.query_past_deferred(
            "SELECT items FROM usage WHERE node_id=? AND day=?", key)
        stored = 0 if row is None else int(row[0])
        if epoch is not None:
            if epoch != self._read_epoch:
                self._read, self._read_epoch = {}, epoch
            self._read[key] = stored
        return stored + deferred

    def add(self, node_id: str, day: str, items: int) -> None:
        self._db.defer("usage", _ADD_USAGE, (node_id, day, items), key=(node_id, day))


class SqlReceiptStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, r: Receipt) -> None:
        seal = self._db.codec.seal
        self._db.defer("receipts", _PUT_RECEIPT,
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
