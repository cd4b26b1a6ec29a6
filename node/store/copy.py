"""Copy a SQLCipher node's database into an empty, migrated PostgreSQL database.

``bxnode store copy --to postgresql`` (:mod:`node.cli.store`) runs :func:`copy_to_postgresql`.
This is the one module that knows every table of a node.  Tables split in two:

* tables with personal identifiers (documents, persons, receipts, crossings, follow-ups
  filed with us and by us, alert metadata and withdrawn alerts) are read through their
  domain module on the source, which decodes them, and written through the same module
  on the target, which encodes them with the target's field codec (blind indexes, AES-GCM
  sealed columns).  A protected column is never copied as stored;
* tables without any (nonces, usage, the whole audit log, registry history, witnessing,
  receipt proofs, BCPs and their pairs, alert feed numbers, first approvals awaiting a
  second officer, retention holds; receipts' answer digests and erasure times) are
  copied column by column as stored: the audit log's bodies, salts, leaves, erased
  markers, tree hashes, checkpoints and cosignatures byte for byte, so the target's log
  has the same size and root and verifies.

``meta`` is copied except the SQLCipher file's own schema bookkeeping (``schema_version``,
``schema:*``): the target's comes from ``bxnode store migrate``.  Nonces are copied only
while unexpired (an expired nonce no longer refuses anything).

Guarantees:

* one transaction on the target, under the locks migrations (``schema``) and audit
  appenders (``audit``) take: any failure, a wrong count included, leaves it as it was;
* one snapshot of the source: its write lock is held while it is read (a node still
  serving on the file waits until the copy ends; stop it first, since what it writes
  afterwards is not in the copy);
* the target must be migrated to this code's schema and hold no data in any table
  (``meta`` may hold only what migrate wrote); a source table this module does not know
  is refused if it holds rows, rather than silently left behind (one that is empty loses
  nothing);
* large tables are streamed: rows are read with a cursor and written in chunks, so a
  10-million-row watchlist is never in memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

from node.core.errors import ConfigError, EnvironmentFault
from node.store.alerts import AlertTables
from node.store.audit_log import AuditLogTables
from node.store.console_sessions import ConsoleTables
from node.store.crossings import CrossingTables
from node.store.db import Database
from node.store.exchange import SqlReceiptStore
from node.store.followup_confirmations import FollowUpConfirmations
from node.store.followups import FollowUpTables
from node.store.receipts import ReceiptTables
from node.store.registry import RegistryTables
from node.store.retention import RetentionTables
from node.store.watchlist import SqlWatchlistStore
from node.store.witness import WitnessTables

if TYPE_CHECKING:  # psycopg only where a copy runs (node.store.schema imports this module)
    from node.store.postgresql import PgDatabase

__all__ = ["CHUNK", "DERIVED_TABLES", "EPHEMERAL_TABLES", "PLAIN_TABLES",
           "PROTECTED_TABLES", "CopyReport",
           "PlainTable", "copy_to_postgresql"]

#: Rows per write (and the most rows of one table held in memory at once).
CHUNK: Final = 2000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PlainTable:
    """A table without personal identifiers, copied column by column as stored."""

    name: str
    columns: tuple[str, ...]
    #: A condition on the rows to copy, with the copy's ``now_ms`` as its one parameter.
    live_since_now: str = ""


PLAIN_TABLES: Final = (
    PlainTable("nonces", ("node_id", "nonce", "expires_ms"), live_since_now="expires_ms >= ?"),
    PlainTable("usage", ("node_id", "day", "items")),
    PlainTable("audit_entries", ("seq", "time_ms", "salt", "body", "leaf", "erased_ms", "event",
                                 "requester", "operator", "purpose", "case_ref", "outcome",
                                 "request_digest")),
    PlainTable("audit_hashes", ("level", "idx", "hash")),
    PlainTable("audit_checkpoints", ("size", "time_ms", "root", "note")),
    PlainTable("audit_cosignatures", ("size", "witness", "time_ms", "line")),
    PlainTable("registry_versions", ("version", "digest", "document", "applied_ms")),
    PlainTable("witness_state", ("origin", "size", "root", "note", "updated_ms")),
    PlainTable("witness_evidence", ("id", "origin", "time_ms", "reason", "stored_note",
                                    "submitted_note")),
    PlainTable("audit_witnessed", ("peer", "size", "updated_ms")),
    PlainTable("receipt_proofs", ("request_digest", "peer", "bundle", "fetched_ms")),
    PlainTable("crossing_bcps", ("code", "country", "name", "modes")),
    PlainTable("crossing_pairs", ("a", "b", "section")),
    PlainTable("alert_feeds", ("source", "seq", "updated_ms")),
    PlainTable("followup_confirmations", ("followup_id", "approved_by", "fields",
                                          "approved_ms")),
    PlainTable("retention_holds", ("case_ref", "reason", "placed_by", "role", "placed_ms")),
    PlainTable("console_prefs", ("identity", "language", "timezone")),
)
#: Tables holding personal identifiers: copied through their domain module's codec.
PROTECTED_TABLES: Final = ("documents", "persons", "receipts", "crossings", "followups",
                           "followups_sent", "alert_meta", "alerts_withdrawn")
#: Every column of those tables: a column added later must be handled here (through its
#: module, or as a plain column below) before a copy runs, never silently dropped.
PROTECTED_COLUMNS: Final = {
    "documents": ("issuing_state", "number", "doc_type", "owner_ref", "action", "contact",
                  "expires", "loss_type", "sealed"),
    "persons": ("owner_ref", "family_name", "given_names", "patronymic", "dob", "nationality",
                "sex", "action", "contact", "expires", "sealed"),
    "receipts": ("id", "direction", "peer", "request_digest", "request_env", "response_env",
                 "created_ms", "response_digest", "erased_ms"),
    "crossings": ("record_id", "event", "bcp", "crossed_at_ms", "mode", "doc_number",
                  "doc_state", "doc_type", "family_name", "given_names", "dob", "nationality",
                  "recorded_ms", "sealed"),
    "followups": ("id", "requester", "state", "record_kind", "hit_reference",
                  "hit_request_digest", "hit_item_index", "hit_audit_seq", "purpose",
                  "legal_basis", "case_ref", "operator", "requested", "allowed", "file_digest",
                  "filed_ms", "deadline_ms", "overdue_ms", "decided_ms", "decided_by",
                  "released", "deny_reason", "decision_env", "fetched_ms", "sealed"),
    "followups_sent": ("id", "peer", "hit_reference", "hit_request_digest", "hit_item_index",
                       "fields", "purpose", "legal_basis", "case_ref", "file_digest",
                       "filed_ms", "state", "deadline_ms", "decision_env", "sealed"),
    "alert_meta": ("owner_ref", "kind", "source", "created_ms", "updated_ms"),
    "alerts_withdrawn": ("owner_ref", "kind", "source", "withdrawn_ms", "operator", "record"),
}
#: Columns without personal identifiers that a protected table's module does not write,
#: copied by key after it: (table, key column, columns).  Receipts' retention (digest of
#: the answer, erasure time: ``node.store.retention``).
_PLAIN_COLUMNS: Final = (("receipts", "id", ("response_digest", "erased_ms")),)
_META: Final = "meta"
#: Derived tables, not copied: the person index's change feed (node/store/watchlist_feed.py;
#: the target has none for its generation, so every replica's index rebuilds fully).
DERIVED_TABLES: Final = frozenset({"watchlist_feed", "watchlist_feed_generations"})
#: Not copied either: the console's sessions, OpenID Connect sign-ins under way and
#: previewed watchlist syncs (node/store/console_sessions.py): officers sign in again on
#: the copy, and preview again; and the replicas' shared per-peer buckets and their leases
#: of calls in flight (node/store/peer_buckets.py), full and free again on the copy.
EPHEMERAL_TABLES: Final = frozenset({"console_sessions", "console_oidc", "console_syncs",
                                      "peer_buckets", "peer_slots"})
_KNOWN: Final = frozenset({_META, *PROTECTED_TABLES, *(t.name for t in PLAIN_TABLES),
                           *DERIVED_TABLES, *EPHEMERAL_TABLES})
#: PostgreSQL's schema bookkeeping (``bxnode store migrate``), never copied into.
_PG_BOOKKEEPING: Final = frozenset({"bxnode_schema"})
#: ``meta`` keys migrate writes on the target; any other key means it holds data.
_MIGRATE_META: Final = frozenset({"schema_version", "field_key_check"})


def _source_only_meta(key: str) -> bool:
    """The SQLCipher file's own schema bookkeeping, and the target's own key check."""
    return key in _MIGRATE_META or key.startswith("schema:")


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What a copy wrote."""

    #: Rows written per table (``meta``: the keys copied), by table name.
    tables: dict[str, int]
    #: Expired nonces left behind.
    expired_nonces: int
    #: The latest signed checkpoint copied, ``(size, root)``; None for an empty log.
    checkpoint: tuple[int, bytes] | None


def _chunks(rows: Iterable[T]) -> Iterator[list[T]]:
    it = iter(rows)
    while batch := list(itertools.islice(it, CHUNK)):
        yield batch


def _count(db: Database, table: str, where: str = "", args: tuple[int, ...] = ()) -> int:
    row = db.query_one(f"SELECT count(*) FROM {table}"  # noqa: S608 - names from the lists above
                       + (f" WHERE {where}" if where else ""), args)
    return 0 if row is None else int(row[0])


# --- checks -------------------------------------------------------------------------------


def _check_source(source: Database) -> None:
    if source.dialect != "sqlite":
        raise ConfigError("the source of a copy must be a SQLCipher database",
                          reason="source_not_sqlcipher")
    # Bring the file to this code's schema first, as 'bxnode serve' would on start.
    for module in (AuditLogTables(source), CrossingTables(source), FollowUpTables(source),
                   ReceiptTables(source), RegistryTables(source), WitnessTables(source),
                   AlertTables(source), RetentionTables(source)):
        module.ensure_schema()
    FollowUpConfirmations(source)  # these two ensure their schemas when made
    ConsoleTables(source)
    names = {str(r[0]) for r in source.query(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    unknown = sorted(n for n in names - _KNOWN if not n.startswith("sqlite_")
                     and source.query_one(f"SELECT 1 FROM {_quoted(n)} LIMIT 1") is not None)  # noqa: S608 - a quoted catalog name
    if unknown:  # an unknown table holding nothing loses nothing; one holding rows would
        raise ConfigError(f"the source database holds rows in tables this bxnode's copy does "
                          f"not know ({', '.join(unknown)}); nothing was copied",
                          reason="unknown_table")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_target(target: PgDatabase) -> None:
    """Migrated (every table this module knows is there), and empty: no rows in any table
    (call in the copy's transaction, under its locks)."""
    if not target.codec.protects:
        raise ConfigError("the target of a copy needs a field codec that protects "
                          "identifiers", reason="unprotected_codec")
    tables = {str(r[0]) for r in target.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = "
        "current_schema() AND table_type = 'BASE TABLE'")}
    missing = sorted(_KNOWN - tables)
    if missing:
        raise ConfigError(f"the target database lacks the tables {', '.join(missing)}: "
                          "run 'bxnode store migrate' on it first", reason="schema_outdated")
    # this module must name every column, or it would drop some
    named = {**{t.name: t.columns for t in PLAIN_TABLES}, **PROTECTED_COLUMNS}
    for name, columns in sorted(named.items()):
        cols = {str(r[0]) for r in target.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = ?", (name,))}
        if cols != set(columns):
            raise RuntimeError(f"node/store/copy.py names the columns of {name} as "
                               f"{sorted(columns)}, the schema has {sorted(cols)}")
    for name in sorted(tables - _PG_BOOKKEEPING - {_META}):  # ours, and any other table
        if target.query_one(f"SELECT 1 FROM {_quoted(name)} LIMIT 1") is not None:  # noqa: S608 - a quoted catalog name
            raise ConfigError(f"the target database is not empty (table {name} has rows): "
                              "copy only into a freshly migrated database",
                              reason="target_not_empty")
    keys = sorted(str(r[0]) for r in target.query("SELECT k FROM meta")
                  if str(r[0]) not in _MIGRATE_META)
    if keys:
        raise ConfigError(f"the target database is not empty (meta holds {keys[0]}): copy "
                          "only into a freshly migrated database", reason="target_not_empty")


# --- the copy -----------------------------------------------------------------------------


def _copy_plain(source: Database, target: Database, t: PlainTable, now_ms: int) -> int:
    cols = ", ".join(t.columns)
    select = f"SELECT {cols} FROM {t.name}"  # noqa: S608 - names from PLAIN_TABLES
    args: tuple[int, ...] = ()
    if t.live_since_now:
        select += f" WHERE {t.live_since_now}"
        args = (now_ms,)
    insert = (f"INSERT INTO {t.name} ({cols}) VALUES "  # noqa: S608 - names from PLAIN_TABLES
              f"({', '.join('?' for _ in t.columns)})")
    n = 0
    for batch in _chunks(source.stream(select, args)):
        target.executemany(insert, batch)
        n += len(batch)
    return n


def _copy_protected(source: Database, target: Database) -> dict[str, int]:
    """The tables with personal identifiers: decoded by the source's domain module,
    encoded by the target's."""
    out: dict[str, int] = {}
    src_wl, dst_wl = SqlWatchlistStore(source), SqlWatchlistStore(target, record_changes=False)
    out["documents"] = out["persons"] = 0
    for docs in _chunks(src_wl.iter_documents()):
        dst_wl.insert_documents(docs)
        out["documents"] += len(docs)
    for persons in _chunks(src_wl.iter_all_persons()):
        dst_wl.insert_persons(persons)
        out["persons"] += len(persons)
    dst_receipts = SqlReceiptStore(target)
    out["receipts"] = sum(dst_receipts.restore(batch)
                          for batch in _chunks(SqlReceiptStore(source).all_with_ids()))
    dst_crossings = CrossingTables(target)
    out["crossings"] = sum(dst_crossings.insert_many(batch)
                           for batch in _chunks(CrossingTables(source).all()))
    src_fu, dst_fu = FollowUpTables(source), FollowUpTables(target)
    filed = src_fu.all()
    for f in filed:
        dst_fu.add(f)
    sent = src_fu.all_sent()
    for s in sent:
        dst_fu.add_sent(s)
    out["followups"], out["followups_sent"] = len(filed), len(sent)
    src_alerts, dst_alerts = AlertTables(source), AlertTables(target)
    out["alert_meta"] = sum(dst_alerts.restore_meta(batch)
                            for batch in _chunks(src_alerts.all_meta()))
    withdrawn = src_alerts.all_withdrawn()
    for w in withdrawn:
        dst_alerts.put_withdrawn(w)
    out["alerts_withdrawn"] = len(withdrawn)
    for table, key, columns in _PLAIN_COLUMNS:
        where = " OR ".join(f"{c} IS NOT NULL" for c in columns)
        select = f"SELECT {key}, {', '.join(columns)} FROM {table} WHERE {where}"  # noqa: S608 - names from _PLAIN_COLUMNS
        update = (f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in columns)} "  # noqa: S608 - names from _PLAIN_COLUMNS
                  f"WHERE {key} = ?")
        for batch in _chunks(source.stream(select)):
            target.executemany(update, [(*r[1:], r[0]) for r in batch])
    return out


def _copy_meta(source: Database, target: Database) -> int:
    rows = [(str(k), str(v)) for k, v in source.query("SELECT k, v FROM meta")
            if not _source_only_meta(str(k))]
    for k, v in sorted(rows):
        target.set_meta(k, v)
    return len(rows)


def copy_to_postgresql(source: Database, target: PgDatabase, *, now_ms: int) -> CopyReport:
    """Copy every table of the SQLCipher database ``source`` into the empty, migrated
    PostgreSQL database ``target``, in one transaction on each (see module doc)."""
    from node.store.postgresql.migrate import sync_identities

    _check_source(source)
    with target.transaction():
        target.lock("schema")  # no migration meanwhile ...
        target.lock(AuditLogTables.LOCK)  # ... and no replica appending to the audit log
        _check_target(target)
        with source.transaction():  # one snapshot: the file's write lock until done
            expected = {name: _count(source, name)
                        for name in sorted(_KNOWN - {_META} - DERIVED_TABLES
                                             - EPHEMERAL_TABLES)}
            live = _count(source, "nonces", "expires_ms >= ?", (now_ms,))
            written = {"meta": _copy_meta(source, target)}
            for t in PLAIN_TABLES:
                written[t.name] = _copy_plain(source, target, t, now_ms)
            written.update(_copy_protected(source, target))
            head = AuditLogTables(source).latest_checkpoint()
        sync_identities(target)  # the next receipt, evidence row ... after the copied ids
        expected["nonces"] = live
        for name, want in sorted(expected.items()):
            have = _count(target, name)
            if (have, written[name]) != (want, want):
                raise EnvironmentFault(
                    f"copy of {name} is incomplete ({want} rows in the source, {written[name]} "
                    f"written, {have} in the target); nothing was kept",
                    reason="copy_incomplete")
    return CopyReport(tables=dict(sorted(written.items())),
                      expired_nonces=_count(source, "nonces") - live,
                      checkpoint=None if head is None else (head.size, head.root))
