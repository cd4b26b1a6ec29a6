"""The watchlist's tables: documents and persons, in portable SQL.

Personal identifiers go through the backend's :class:`~node.store.db.FieldCodec`:

* SQLCipher (the whole file is encrypted): every column holds its value, as always;
* PostgreSQL: ``number`` and ``owner_ref`` hold keyed HMACs (blind indexes, so a lookup
  is still one indexed equality), names, dates of birth and contacts are blank, and the
  column ``sealed`` holds the record's identifying fields as AES-GCM ciphertext bound to
  the table.  A database administrator with full read access sees no document number,
  name, owner reference or contact.  The record also holds a copy of the row's plain
  columns (issuing state, type, action, expiry, loss type; a person's action and expiry),
  and a row whose columns differ from it is refused (``sealed_field_altered``): whoever
  can write the database but not read it cannot turn an alert's action into another, move
  a document to another issuing state, or bring an expired alert back.  (Document records
  sealed before 2026-12-07 held their three identifiers alone: ``bxnode store migrate``
  seals them anew, and one found afterwards is refused as altered: written back from an
  old copy of the database.)
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from node.core.ports import DocumentHit, PersonRow
from node.store._fields import altered, any_of, check_placed, index_text, misplaced
from node.store.db import Database, FieldCodec, SchemaNotApplied

__all__ = ["WATCHLIST_DDL", "DocumentLoader", "SqlWatchlistStore", "reseal_documents",
           "sibling_store"]

WATCHLIST_DDL = """
CREATE TABLE IF NOT EXISTS documents (
    issuing_state TEXT NOT NULL, number TEXT NOT NULL, doc_type TEXT NOT NULL,
    owner_ref TEXT NOT NULL, action TEXT NOT NULL, contact TEXT NOT NULL,
    expires TEXT NOT NULL, loss_type TEXT NOT NULL DEFAULT '', sealed BLOB,
    PRIMARY KEY (number, issuing_state, doc_type, owner_ref)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS documents_owner ON documents (owner_ref);
CREATE TABLE IF NOT EXISTS persons (
    owner_ref TEXT PRIMARY KEY, family_name TEXT NOT NULL, given_names TEXT NOT NULL,
    patronymic TEXT NOT NULL, dob TEXT NOT NULL, nationality TEXT NOT NULL, sex TEXT NOT NULL,
    action TEXT NOT NULL, contact TEXT NOT NULL, expires TEXT NOT NULL, sealed BLOB
);
"""

_DOC_NUMBER = "documents.number"
_OWNER = "watchlist.owner_ref"
_DOC_SEALED = "documents.sealed"
_PERSON_SEALED = "persons.sealed"
_GENERATION = "watchlist_generation"
#: A document record's identifiers (number, owner reference, contact) come first; a record
#: sealed since 2026-12-07 then holds these plain columns of its row, in this order.
_DOC_IDS = 3
_DOC_PLAIN = ("issuing_state", "doc_type", "action", "expires", "loss_type")
#: Where each of them is in the record.
_DOC_PLAIN_AT = {name: _DOC_IDS + i for i, name in enumerate(_DOC_PLAIN)}
#: A person record is the whole row; the positions of the plain columns its row keeps
#: (action, expires).
_PERSON_EXPIRES = 9
_PERSON_PLAIN = (7, _PERSON_EXPIRES)
_CHUNK = 5000  # numbers per statement, well under SQLite's 32,766 parameters


def _text(index: str | bytes) -> str:
    """A blind index for a TEXT column: the HMAC in hex (the value itself on SQLCipher)."""
    return index.hex() if isinstance(index, bytes) else index


def _opened(codec: FieldCodec, kind: str, sealed: Any) -> Any:
    """A sealed column's JSON contents, opened.  (``json.loads`` of bytes first guesses
    their encoding in Python, a third of the decoding of a batch's hits: ours are UTF-8.)"""
    return json.loads(codec.open(kind, bytes(sealed)).decode())


def _doc_ids(values: Sequence[Any]) -> tuple[str, str, str]:
    """A document record's identifiers (number, owner reference, contact).  A record of
    the identifiers alone (sealed before 2026-12-07) is refused: ``bxnode store migrate``
    sealed every such record anew (:func:`reseal_documents`, node/store/watchlist_seal.py),
    so one found now was written back from an old copy."""
    if len(values) != _DOC_IDS + len(_DOC_PLAIN):
        raise altered(_DOC_SEALED)
    return values[0], values[1], values[2]


def _doc_bound(values: Sequence[Any], plain: dict[str, Any]) -> None:
    """Refuse the record's row if its ``plain`` columns (those the caller read) are not
    the ones sealed in it.  Checked after the row's blind indexes, so a record copied into
    another row is told as misplaced, whatever that row's columns."""
    for name, value in plain.items():
        if str(values[_DOC_PLAIN_AT[name]]) != str(value):
            raise altered(_DOC_SEALED)


def reseal_documents(db: Database) -> int:
    """Seal anew, with their rows' plain columns, the document records that hold their
    identifiers alone; in the open transaction.  Each is checked against its row's blind
    indexes first (a misplaced one is refused, never sealed into its wrong row).  Returns
    how many were sealed anew; 0 where nothing is sealed (SQLCipher)."""
    c = db.codec
    if not c.protects:
        return 0
    sql = ("UPDATE documents SET sealed=? WHERE number=? AND issuing_state=? AND "
           "doc_type=? AND owner_ref=?")
    done, pending = 0, []
    for r in db.stream("SELECT issuing_state, number, doc_type, owner_ref, action, expires, "
                       "loss_type, sealed FROM documents"):
        values = _opened(c, _DOC_SEALED, r[7])
        if len(values) != _DOC_IDS:
            continue  # sealed with its columns already
        number, ref, contact = values
        check_placed(c, _DOC_SEALED, _DOC_NUMBER, number, r[1])
        check_placed(c, _DOC_SEALED, _OWNER, ref, r[3])
        row = (r[0], number, r[2], ref, r[4], contact, r[5], r[6])
        pending.append((c.seal(_DOC_SEALED, _doc_record(row)), r[1], r[0], r[2], r[3]))
        if len(pending) >= 1000:
            done += db.executemany(sql, pending)
            pending.clear()
    if pending:
        done += db.executemany(sql, pending)
    return done


def _doc_record(row: Sequence[Any]) -> bytes:
    """What a document row (issuing_state, number, doc_type, owner_ref, action, contact,
    expires, loss_type) seals: its identifiers, then its plain columns."""
    return json.dumps([row[1], row[3], row[5], row[0], row[2], row[4], row[6],
                       row[7]]).encode()


def _opened_document(codec: FieldCodec, number_ix: Any, ref_ix: Any, sealed: Any,
                     **plain: Any) -> tuple[str, str, str]:
    """A sealed document record's (number, owner reference, contact), checked against its
    row's blind indexes (:func:`~node.store._fields.check_placed`) and against the row's
    ``plain`` columns the caller read (:func:`_doc_bound`)."""
    values = _opened(codec, _DOC_SEALED, sealed)
    number, ref, contact = _doc_ids(values)
    check_placed(codec, _DOC_SEALED, _DOC_NUMBER, number, number_ix)
    check_placed(codec, _DOC_SEALED, _OWNER, ref, ref_ix)
    _doc_bound(values, plain)
    return number, ref, contact





_DOC_COLUMNS = ("INSERT INTO documents (issuing_state, number, doc_type, owner_ref, action, "
                "contact, expires, loss_type, sealed) ")
#: ``sealed`` is a literal NULL: a None bound per row costs more than the row's insert
#: (sqlite3 looks for an adapter for it, and raises and clears an AttributeError).
_DOC_NEW = _DOC_COLUMNS + "VALUES (?,?,?,?,?,?,?,?,NULL) ON CONFLICT DO NOTHING"
#: Rows per statement of :meth:`DocumentLoader.add` (8 parameters each, far under
#: SQLite's 32,766): one step inserts them all, with the GIL released throughout.
_DOC_ROWS = 200
_DOC_WIDTH = 8  # the columns a row gives (``sealed`` is the statement's NULL)
_DOC_NEW_MANY = _DOC_COLUMNS + "VALUES " + ",".join(
    ["(?,?,?,?,?,?,?,?,NULL)"] * _DOC_ROWS) + " ON CONFLICT DO NOTHING"
_DOC_REPLACE = _DOC_COLUMNS + (
    "VALUES (?,?,?,?,?,?,?,?,NULL) ON CONFLICT (number, issuing_state, doc_type, owner_ref) "
    "DO UPDATE SET action=excluded.action, contact=excluded.contact, "
    "expires=excluded.expires, loss_type=excluded.loss_type, sealed=excluded.sealed")
_DOC_EXISTS = ("SELECT 1 FROM documents WHERE number=? AND issuing_state=? AND doc_type=? "
               "AND owner_ref=?")


class _Repeated(Exception):
    """A chunk holds a document already in the table: its savepoint is rolled back."""


class ImportKeys:
    """The documents one import has written so far, kept by the database (PostgreSQL): a
    temporary table of the import's own transaction (dropped at its end, committed or
    not) holding a blind index of each document's key, so the import holds no dict of
    every key read and the database server no document number in the clear."""

    _KIND = "import.document_key"

    def __init__(self, db: Database) -> None:
        self._db = db
        db.execute("CREATE TEMP TABLE IF NOT EXISTS bxnode_import_keys (k TEXT PRIMARY KEY) "
                   "ON COMMIT DROP")
        db.execute("DELETE FROM bxnode_import_keys")  # a second import in one transaction

    def first_time(self, keys: Sequence[tuple[str, ...]]) -> list[bool]:
        """For each key (number, state, type, owner reference, in order): whether this is
        the first time this import gives it (in this call and every one before)."""
        ix = [index_text(self._db.codec, self._KIND, "\x1f".join(k)) for k in keys]
        if not ix:
            return []
        new = {str(r[0]) for r in self._db.query(
            "INSERT INTO bxnode_import_keys (k) SELECT unnest(?::text[]) "
            "ON CONFLICT (k) DO NOTHING RETURNING k", (ix,))}
        out: list[bool] = []
        for k in ix:
            out.append(k in new)
            new.discard(k)  # a second of the same key in this call is a repeat too
        return out


class DocumentLoader:
    """Writes one import's document rows inside its transaction, and says which rows
    repeat a document that the same import already wrote, without remembering the keys
    it read (so a file of ten million rows needs no ten-million-entry dict).

    A chunk goes in with one ``executemany`` under a savepoint; when the table already
    held one of its documents (fewer rows inserted than given), the savepoint is rolled
    back and the chunk goes row by row: a row whose document is in the table was either
    there before the import — then it replaces it, as :meth:`SqlWatchlistStore.
    insert_documents` does, once — or written by this import, a repeat.  "There before"
    is asked of ``committed``, a second connection that sees only committed data, so not
    this import's uncommitted rows.  Only documents replaced are remembered.

    For databases whose columns hold their values (SQLCipher): see
    :meth:`SqlWatchlistStore.document_loader`.
    """

    def __init__(self, db: Database, committed: Callable[[], Database]) -> None:
        self._db = db
        self._open_committed = committed
        self._committed: Database | None = None
        self._replaced: set[tuple[str, ...]] = set()

    @staticmethod
    def pack(rows: Sequence[tuple[str, ...]]
             ) -> tuple[str | list[list[str]], list[tuple[str, ...]]]:
        """``rows`` as :meth:`add` takes them, packed to send to another process (no
        database: the importer's checking process makes them while this process writes
        the chunk before): the parameters of the multi-row statements (``_DOC_ROWS`` rows
        each) in one string, NUL between two (:meth:`unpack` makes them statements again:
        ten times cheaper to pickle than a string object per field), and the rows left
        over.  A field that holds a NUL itself is sent as the statements' lists instead."""
        whole = len(rows) - len(rows) % _DOC_ROWS
        tail = list(rows[whole:])
        if not whole:
            return "", tail
        flat = list(itertools.chain.from_iterable(rows[:whole]))
        packed = "\0".join(flat)
        if packed.count("\0") == len(flat) - 1:
            return packed, tail
        step = _DOC_WIDTH * _DOC_ROWS
        return [flat[i:i + step] for i in range(0, len(flat), step)], tail

    @staticmethod
    def unpack(packed: str | list[list[str]]) -> list[list[str]]:
        """The statements' parameters that :meth:`pack` packed."""
        if not isinstance(packed, str):
            return packed
        if not packed:
            return []
        flat = packed.split("\0")
        step = _DOC_WIDTH * _DOC_ROWS
        return [flat[i:i + step] for i in range(0, len(flat), step)]

    @staticmethod
    def row_at(groups: Sequence[Sequence[str]], tail: Sequence[tuple[str, ...]],
               i: int) -> tuple[str, ...]:
        """Row ``i`` of the rows that :meth:`pack` packed, unpacked."""
        g, k = divmod(i, _DOC_ROWS)
        if g >= len(groups):
            return tail[i - len(groups) * _DOC_ROWS]
        return tuple(groups[g][k * _DOC_WIDTH:(k + 1) * _DOC_WIDTH])

    @staticmethod
    def count(groups: Sequence[Sequence[str]], tail: Sequence[tuple[str, ...]]) -> int:
        """How many rows :meth:`pack` packed into ``groups`` (unpacked) and ``tail``."""
        return len(groups) * _DOC_ROWS + len(tail)

    def add(self, groups: Sequence[list[str]], tail: Sequence[tuple[str, ...]]) -> list[int]:
        """Write the rows :meth:`pack` packed, ``groups`` unpacked, and ``tail`` (rows as
        :meth:`SqlWatchlistStore.insert_documents` takes them); returns the indexes of the
        rows that repeat a document of this import, which are not written."""
        n = self.count(groups, tail)
        if not n:
            return []
        try:
            with self._db.savepoint():
                done = self._db.executemany(_DOC_NEW_MANY, groups)
                done += self._db.executemany(_DOC_NEW, tail)
                if done != n:
                    raise _Repeated
            return []
        except _Repeated:
            pass
        repeated: list[int] = []
        for i in range(n):
            row = self.row_at(groups, tail, i)
            if self._db.execute(_DOC_NEW, row) == 1:
                continue
            key = row[:4]
            if key in self._replaced or not self._was_there(key):
                repeated.append(i)
                continue
            self._db.execute(_DOC_REPLACE, row)
            self._replaced.add(key)
        return repeated

    def _was_there(self, key: tuple[str, ...]) -> bool:
        if self._committed is None:
            self._committed = self._open_committed()
        state, number, doc_type, owner_ref = key
        return self._committed.query_one(_DOC_EXISTS, (number, state, doc_type,
                                                       owner_ref)) is not None

    def close(self) -> None:
        if self._committed is not None:
            self._committed.close()
            self._committed = None


class SqlWatchlistStore:
    """Implements :class:`node.core.ports.WatchlistStore` over a :class:`Database`."""

    def __init__(self, db: Database, *, record_changes: bool = True) -> None:
        """``record_changes=False`` writes no change feed (a copy into a fresh database,
        whose readers find no feed for its generation and rebuild fully)."""
        self._db = db
        self._record = record_changes
        self._protects = db.codec.protects
        self._alerts: Any = None  # node.store.alerts.AlertTables, on first use
        self._feed: Any = None  # node.store.watchlist_feed.WatchlistFeed, on first use
        #: The sources find_documents_many read with its hits (PostgreSQL, inside a
        #: transaction): (its write epoch, {reference: source or ""}), for the next
        #: sources_of of the same transaction and epoch only.
        self._sources_read: tuple[int, dict[str, str]] | None = None
        self._generation_read: tuple[tuple[str, int], str | None] | None = None

    @property
    def feed(self) -> Any:
        """The change feed (:mod:`node.store.watchlist_feed`), written with every person
        change in the change's transaction."""
        if self._feed is None:
            from node.store.watchlist_feed import WatchlistFeed  # (an import cycle otherwise)

            self._feed = WatchlistFeed(self._db)
        return self._feed

    # --- writing ----------------------------------------------------------------------------

    def insert_documents(self, rows: Iterable[tuple[str, ...]]) -> int:
        """Rows: (issuing_state, number, doc_type, owner_ref, action, contact, expires, loss).
        A row for the same (number, state, type, owner) replaces the earlier one."""
        sql = ("INSERT INTO documents (issuing_state, number, doc_type, owner_ref, action, "
               "contact, expires, loss_type, sealed) VALUES (?,?,?,?,?,?,?,?,?) "
               "ON CONFLICT (number, issuing_state, doc_type, owner_ref) DO UPDATE SET "
               "action=excluded.action, contact=excluded.contact, expires=excluded.expires, "
               "loss_type=excluded.loss_type, sealed=excluded.sealed")
        if not self._protects:
            return self._db.executemany(sql, ((*r[:8], None) for r in rows))
        c = self._db.codec

        def protect(r: tuple[str, ...]) -> tuple[Any, ...]:
            sealed = c.seal(_DOC_SEALED, _doc_record(r))
            return (r[0], _text(c.index(_DOC_NUMBER, r[1])), r[2], _text(c.index(_OWNER, r[3])),
                    r[4], "",
                    r[6], r[7], sealed)

        return self._db.executemany(sql, (protect(r) for r in rows))

    def import_keys(self) -> ImportKeys | None:
        """Where there is no :meth:`document_loader` but the database can keep one
        import's keys itself (PostgreSQL): an :class:`ImportKeys` in the open transaction."""
        return ImportKeys(self._db) if self._db.dialect == "postgresql" else None

    def document_loader(self) -> DocumentLoader | None:
        """A :class:`DocumentLoader` for one import in the open transaction, or None where
        the backend cannot have one (sealed columns, or no second connection that sees
        only committed data): the caller then inserts with :meth:`insert_documents`."""
        committed = getattr(self._db, "committed_view", None)
        if self._protects or committed is None:
            return None
        return DocumentLoader(self._db, committed)

    def insert_persons(self, rows: Iterable[tuple[str, ...]]) -> int:
        """Rows: (owner_ref, family, given, patronymic, dob, nationality, sex, action, contact,
        expires).  A row for the same owner reference replaces the earlier one."""
        sql = ("INSERT INTO persons (owner_ref, family_name, given_names, patronymic, dob, "
               "nationality, sex, action, contact, expires, sealed) "
               "VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (owner_ref) DO UPDATE SET "
               "family_name=excluded.family_name, given_names=excluded.given_names, "
               "patronymic=excluded.patronymic, dob=excluded.dob, "
               "nationality=excluded.nationality, sex=excluded.sex, action=excluded.action, "
               "contact=excluded.contact, expires=excluded.expires, sealed=excluded.sealed")
        from node.store.watchlist_feed import FEED_MAX_REFS

        refs: list[str] = []

        def noted(rows: Iterable[tuple[str, ...]]) -> Iterator[tuple[str, ...]]:
            for r in rows:  # the change feed lists them (or says "too many to list")
                if len(refs) <= FEED_MAX_REFS:
                    refs.append(r[0])
                yield r

        if not self._protects:
            n = self._db.executemany(sql, ((*r[:10], None) for r in noted(rows)))
        else:
            c = self._db.codec

            def protect(r: tuple[str, ...]) -> tuple[Any, ...]:
                sealed = c.seal(_PERSON_SEALED, json.dumps(list(r)).encode())
                return (_text(c.index(_OWNER, r[0])), "", "", "", "", "", "", r[7], "", r[9],
                        sealed)

            n = self._db.executemany(sql, (protect(r) for r in noted(rows)))
        if self._record:
            self.feed.record(refs, "put", more=len(refs) > FEED_MAX_REFS)
        return n

    def generation(self) -> str | None:
        """The watchlist's generation.  Read once per transaction while the writers' lock
        is held, until the transaction writes anything directly (``write_epoch``, as the
        usage ledger reads usage): every change of the watchlist bumps the generation in a
        transaction that appends its audit entry, so under the writers' lock (SQLCipher's
        write lock; the ``audit`` lock on PostgreSQL, held until commit) only this
        transaction's own writes can change it -- and a direct write (``bump_generation``
        is one) reads it again.  A group-commit batch of lookups read before the lock
        (node/watchlist/lookup.py) then checks them all against one read.  And once per
        ``Database.reading()``: those lookups' rows, read after it, are at least as new
        as that one read, which is what they are checked against."""
        key: tuple[str, int] | None = None
        if self._db.holds_writer_lock:
            epoch = getattr(self._db, "write_epoch", None)
            key = ("locked", epoch) if isinstance(epoch, int) else None
        elif (reading := self._db.reading_epoch) is not None:
            # one read for a whole reading(): lookups read before the lock check their rows
            # against it, and rows read after it are at least as new (node/watchlist/
            # lookup.py, "Read before the lock")
            key = ("reading", reading)
        read = self._generation_read
        if key is not None and read is not None and read[0] == key:
            return read[1]
        value = self._db.get_meta(_GENERATION)
        self._generation_read = None if key is None else (key, value)
        return value

    def sources_of(self, owner_refs: Sequence[str]) -> dict[str, str]:
        """The source agency of each listed alert recorded with one (``alert_meta``, kept by
        :mod:`node.store.alerts`; one statement per 500 references).  On PostgreSQL the
        sources of the hits that :meth:`find_documents_many` just read in this transaction
        come with them (nothing written since): only the other references are read."""
        if self._alerts is None:
            from node.store.alerts import AlertTables

            tables = AlertTables(self._db)
            try:
                tables.ensure_schema()  # SQLCipher: created once; PostgreSQL: checked migrated
            except SchemaNotApplied:  # read before the lock, before any alert has metadata
                return {}
            self._alerts = tables
        read, self._sources_read = self._sources_read, None
        epoch = self._epoch()
        known = read[1] if read is not None and epoch is not None and read[0] == epoch else {}
        sources = {r: known[r] for r in owner_refs if known.get(r)}
        missing = [r for r in owner_refs if r not in known]
        if missing:
            sources.update(self._alerts.sources_many(missing))
        return sources

    def _epoch(self) -> int | None:
        """What the open transaction read still holds while this is unchanged: it changes
        when a transaction begins, writes directly or rolls back to a savepoint (None:
        outside a transaction, where nothing is kept)."""
        if not self._db.in_transaction:
            return None
        epoch = getattr(self._db, "write_epoch", None)
        return epoch if isinstance(epoch, int) else None

    def bump_generation(self, value: str) -> None:
        """A new generation (call under ``lock("watchlist")``, in the change's transaction):
        the change feed records this transaction's person changes under it."""
        self._db.set_meta(_GENERATION, value)
        if value.isdigit() and int(value) > 0:
            self.feed.stamp(int(value))

    def refresh_statistics(self) -> None:
        """After a bulk load, in its transaction: PostgreSQL's planner statistics for the
        watchlist tables (``ANALYZE``, committed with the rows).  Without them the planner
        guesses that each document number matches 1/200 of the table and answers a batch's
        list of numbers with a scan of the whole table (50 ms for a batch of 100 among
        110,000 documents, against under a millisecond through the primary key), until
        autovacuum's next analysis.  SQLite's planner takes an equality on an indexed
        column as selective without statistics: nothing to do there."""
        if self._db.dialect == "postgresql":
            self._db.execute("ANALYZE documents, persons")

    def person_changes(self, since: str | None, until: str | None,
                       today: str) -> dict[str, PersonRow | None] | None:
        """Every person changed after generation ``since`` up to ``until``, with its live row
        now (None: withdrawn, expired or gone), from the change feed; None when the feed
        cannot say (see :mod:`node.store.watchlist_feed`): the caller rebuilds."""
        if since is None or until is None or not (since.isdigit() and until.isdigit()):
            return None
        refs = self.feed.changes(int(since), int(until))
        if refs is None:
            return None
        live = self._persons_many(refs, today)
        return {ref: live.get(ref) for ref in refs}

    def _persons_many(self, refs: Sequence[str], today: str) -> dict[str, PersonRow]:
        """The live person rows of ``refs`` (one statement per 500)."""
        out: dict[str, PersonRow] = {}
        c = self._db.codec
        unique = list(dict.fromkeys(refs))
        for i in range(0, len(unique), 500):
            cond, args = any_of(self._db.dialect, "owner_ref",
                                [_text(c.index(_OWNER, r)) for r in unique[i:i + 500]])
            rows = self._db.query(
                "SELECT owner_ref, family_name, given_names, patronymic, dob, nationality, "  # noqa: S608 - placeholders only, never data
                "sex, action, contact, expires, sealed FROM persons WHERE expires >= ? AND "
                + cond, (today, *args))
            for r in rows:
                row = self._person(r)
                out[row[0]] = row
        return out

    # --- reading ----------------------------------------------------------------------------

    def find_documents_many(self, keys: Sequence[tuple[str, str, str]],
                            today: str) -> dict[tuple[str, str, str], list[DocumentHit]]:
        """Live records for many (number, issuing_state, doc_type) keys in one statement
        (a chunk of 5,000 numbers each).  The statement asks for the numbers (the primary
        key's first column: one index search each, about half the cost of matching the
        three columns as row values); the rows of another issuing state or type are left
        out here.  The numbers are one array parameter on PostgreSQL (one statement text
        for every batch size, prepared once per connection), a list of placeholders on
        SQLite (:func:`node.store._fields.any_of`).  On PostgreSQL the statement also
        reads each hit's source agency (``alert_meta`` by the row's blind index, which is
        the index of the reference), kept for :meth:`sources_of` in the same transaction:
        a batch's hits then need no second read, nor a second HMAC per reference."""
        found: dict[tuple[str, str, str], list[DocumentHit]] = {}
        c = self._db.codec
        wanted = dict.fromkeys(keys)
        if self._protects:  # the number column holds its blind index
            by_index = {(_text(c.index(_DOC_NUMBER, k[0])), k[1], k[2]): k for k in wanted}
        else:
            by_index = dict(zip(wanted, wanted, strict=True))
        numbers = list(dict.fromkeys(k[0] for k in by_index))
        if not self._protects:
            for i in range(0, len(numbers), _CHUNK):
                cond, args = any_of(self._db.dialect, "number", numbers[i:i + _CHUNK])
                for number, state, doc_type, ref, action, contact in self._rows_at_once(
                        "number, issuing_state, doc_type, owner_ref, action, contact",
                        "FROM documents WHERE expires >= ? AND " + cond, (today, *args)):
                    key = by_index.get((number, state, doc_type))
                    if key is not None:  # else the number under another state or type
                        found.setdefault(key, []).append((ref, action, contact))
        else:
            # with each hit its alert's source agency (alert_meta, by the same blind
            # index), kept for sources_of in this transaction: no second read of them
            sources: dict[str, str] = {}
            for i in range(0, len(numbers), _CHUNK):
                cond, args = any_of(self._db.dialect, "d.number", numbers[i:i + _CHUNK])
                for r in self._db.query(
                        "SELECT d.number, d.issuing_state, d.doc_type, d.action, d.sealed, "  # noqa: S608 - placeholders only, never data
                        "m.source, d.owner_ref, d.expires, d.loss_type FROM documents d "
                        "LEFT JOIN alert_meta m ON "
                        "m.owner_ref = d.owner_ref WHERE d.expires >= ? AND " + cond,
                        (today, *args)):
                    key = by_index.get((r[0], r[1], r[2]))
                    if key is not None:
                        values = _opened(c, _DOC_SEALED, r[4])
                        number, ref, contact = _doc_ids(values)
                        # the row's number index is key[0]'s, so the record must be
                        # key[0]'s (no HMAC needed), and its reference the row's
                        if number != key[0]:
                            raise misplaced(_DOC_SEALED)
                        check_placed(c, _DOC_SEALED, _OWNER, ref, r[6])
                        _doc_bound(values, {"issuing_state": r[1], "doc_type": r[2],
                                            "action": r[3], "expires": r[7],
                                            "loss_type": r[8]})
                        found.setdefault(key, []).append((ref, r[3], contact))
                        sources[ref] = r[5] or ""
            epoch = self._epoch()
            self._sources_read = None if epoch is None else (epoch, sources)
        for hits in found.values():
            if len(hits) > 1:
                hits.sort()
        return found

    def _rows_at_once(self, columns: str, rest: str, args: Sequence[Any]
                      ) -> list[Sequence[Any]]:
        """``SELECT columns rest`` on SQLite (the only backend whose codec does not
        protect the columns: PostgreSQL refuses one that does not) as one row, a JSON
        array of the rows (the columns all text or numbers), so the statement runs in one
        ``sqlite3_step`` -- the driver releases the GIL around every step, and a thread
        that needs it back while the event loop runs Python waits up to the switch
        interval (5 ms) for it, once per row."""
        row = self._db.query_one(
            f"SELECT json_group_array(json_array({columns})) {rest}", args)
        return [] if row is None else json.loads(row[0])

    def iter_persons(self, today: str) -> Iterator[PersonRow]:
        rows = self._db.stream(
            "SELECT owner_ref, family_name, given_names, patronymic, dob, nationality, sex, "
            "action, contact, expires, sealed FROM persons WHERE expires >= ?", (today,))
        for r in rows:
            yield self._person(r)

    def live_persons(self, owner_refs: Sequence[str], today: str) -> dict[str, PersonRow]:
        out: dict[str, PersonRow] = {}
        c = self._db.codec
        for ref in dict.fromkeys(owner_refs):
            row = self._db.query_one(
                "SELECT owner_ref, family_name, given_names, patronymic, dob, nationality, sex, "
                "action, contact, expires, sealed FROM persons WHERE owner_ref=? AND "
                "expires >= ?", (_text(c.index(_OWNER, ref)), today))
            if row is not None:
                out[ref] = self._person(row)
        return out

    def person(self, owner_ref: str) -> PersonRow | None:
        row = self._db.query_one(
            "SELECT owner_ref, family_name, given_names, patronymic, dob, nationality, sex, "
            "action, contact, expires, sealed FROM persons WHERE owner_ref=?",
            (_text(self._db.codec.index(_OWNER, owner_ref)),))
        return None if row is None else self._person(row)

    def document_of(self, owner_ref: str) -> tuple[str, str, str, str] | None:
        """(number, issuing_state, doc_type, loss_type) of a document record, the first by
        number when one owner reference names several."""
        rows = self._db.query(
            "SELECT number, issuing_state, doc_type, loss_type, sealed, owner_ref FROM "
            "documents WHERE owner_ref=?", (_text(self._db.codec.index(_OWNER, owner_ref)),))
        if not rows:
            return None
        if self._protects:
            c = self._db.codec
            rows = [(_opened_document(c, r[0], r[5], r[4], issuing_state=r[1], doc_type=r[2],
                                      loss_type=r[3])[0], *r[1:4]) for r in rows]
        best = min(rows, key=lambda r: str(r[0]))
        return str(best[0]), str(best[1]), str(best[2]), str(best[3])

    # --- the alert lifecycle (node.watchlist.lifecycle; not on the lookup path) -----------

    def documents_of(self, owner_ref: str) -> list[tuple[str, ...]]:
        """Every document row of ``owner_ref``, live or expired, as inserted: (issuing_state,
        number, doc_type, owner_ref, action, contact, expires, loss_type), by number."""
        rows = self._db.query(
            "SELECT issuing_state, number, doc_type, owner_ref, action, contact, expires, "
            "loss_type, sealed FROM documents WHERE owner_ref=?",
            (_text(self._db.codec.index(_OWNER, owner_ref)),))
        return sorted((self._document(r) for r in rows), key=lambda r: (r[1], r[0], r[2]))

    def iter_documents(self) -> Iterator[tuple[str, ...]]:
        """Every document row, live or expired (as :meth:`documents_of`)."""
        for r in self._db.stream(
                "SELECT issuing_state, number, doc_type, owner_ref, action, contact, expires, "
                "loss_type, sealed FROM documents"):
            yield self._document(r)

    def iter_all_persons(self) -> Iterator[PersonRow]:
        """Every person row, live or expired."""
        for r in self._db.stream(
                "SELECT owner_ref, family_name, given_names, patronymic, dob, nationality, sex, "
                "action, contact, expires, sealed FROM persons"):
            yield self._person(r)

    def delete_ref(self, owner_ref: str) -> int:
        """Delete every row (documents and person) of ``owner_ref``; returns how many."""
        ix = _text(self._db.codec.index(_OWNER, owner_ref))
        docs = self._db.execute("DELETE FROM documents WHERE owner_ref=?", (ix,))
        persons = self._db.execute("DELETE FROM persons WHERE owner_ref=?", (ix,))
        if persons and self._record:
            self.feed.record([owner_ref], "delete")
        return docs + persons

    def delete_expired(self, owner_ref: str, before: str) -> int:
        """Delete the rows of ``owner_ref`` that expired before the day ``before``."""
        ix = _text(self._db.codec.index(_OWNER, owner_ref))
        docs = self._db.execute("DELETE FROM documents WHERE owner_ref=? AND expires < ?",
                                (ix, before))
        persons = self._db.execute("DELETE FROM persons WHERE owner_ref=? AND expires < ?",
                                   (ix, before))
        if persons:
            # Erased: no person index holds it any more as a live person (it expired), so
            # the feed needs no row, and loses the ones it had.
            self.feed.forget(owner_ref)
        return docs + persons

    def expired_refs(self, before: str) -> list[str]:
        """Owner references with a row that expired before the day ``before``."""
        refs: set[str] = set()
        c = self._db.codec
        for r in self._db.query("SELECT owner_ref, sealed, number, expires FROM documents "
                                "WHERE expires < ?", (before,)):
            refs.add(_opened_document(c, r[2], r[0], r[1], expires=r[3])[1] if self._protects
                     else str(r[0]))
        for r in self._db.query("SELECT owner_ref, sealed, expires FROM persons "
                                "WHERE expires < ?", (before,)):
            if not self._protects:
                refs.add(str(r[0]))
                continue
            values = self._opened_person(r[0], r[1])
            if str(values[_PERSON_EXPIRES]) != str(r[2]):  # moved back, to have it erased
                raise altered(_PERSON_SEALED)
            refs.add(str(values[0]))
        return sorted(refs)

    def _document(self, r: tuple[Any, ...]) -> tuple[str, ...]:
        if not self._protects:
            return tuple(str(v) for v in r[:8])
        number, ref, contact = _opened_document(
            self._db.codec, r[1], r[3], r[8], issuing_state=r[0], doc_type=r[2], action=r[4],
            expires=r[6], loss_type=r[7])
        return (str(r[0]), str(number), str(r[2]), str(ref), str(r[4]), str(contact),
                str(r[6]), str(r[7]))

    def counts(self) -> tuple[int, int]:
        d = self._db.query_one("SELECT count(*) FROM documents")
        p = self._db.query_one("SELECT count(*) FROM persons")
        return int(d[0]) if d else 0, int(p[0]) if p else 0

    def _person(self, r: tuple[Any, ...]) -> PersonRow:
        if not self._protects:
            return tuple(str(v) for v in r[:10])
        values = self._opened_person(r[0], r[10])
        if any(str(values[i]) != str(r[i]) for i in _PERSON_PLAIN):
            raise altered(_PERSON_SEALED)
        return tuple(str(v) for v in values)

    def _opened_person(self, ref_ix: Any, sealed: Any) -> list[Any]:
        """A sealed person record, checked against its row as :func:`_opened_document`: its
        owner reference must be the one the row's blind index names."""
        c = self._db.codec
        values: list[Any] = _opened(c, _PERSON_SEALED, sealed)
        check_placed(c, _PERSON_SEALED, _OWNER, str(values[0]), ref_ix)
        return values


@contextlib.contextmanager
def sibling_store(db: Database) -> Iterator[SqlWatchlistStore]:
    """The watchlist of ``db``'s database on a connection of its own, for another thread
    (the person index's full rebuild): a handle of the same PostgreSQL pool, or the
    SQLCipher file opened again with its key.  Closed on exit."""
    pool = getattr(db, "pool", None)
    if pool is not None:
        other: Database = pool.database()
    else:
        from node.store.sqlcipher import Store  # (an import cycle at module level)

        if not isinstance(db, Store):
            raise TypeError(f"no second connection for {type(db).__name__}")
        path, key = db.reader_spec()
        other = Store.open(path, key)
    try:
        yield SqlWatchlistStore(other)
    finally:
        other.close()
