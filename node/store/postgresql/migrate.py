"""Versioned schema on PostgreSQL: ``bxnode store migrate`` applies, serving only checks.

The database records, per schema name, the version applied and the SHA-256 of that
step's DDL (table ``bxnode_schema``).  :func:`migrate` applies every step of
``node.store.schema`` that is missing, in order, in one transaction under
``lock("schema")`` (two replicas migrating at once: the second finds nothing left to do).
:func:`check_schema`, run when a pool opens, refuses a database that is behind this code
(``schema_outdated``: run ``bxnode store migrate``), ahead of it (``schema_newer``: a newer
bxnode migrated it; never downgrade), or whose recorded step differs from this code's
step of the same version (``schema_mismatch``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from node.core.errors import ConfigError
from node.store.postgresql._db import PgDatabase
from node.store.postgresql._sql import split_statements, translate_ddl
from node.store.schema import Schema, latest_versions, steps

__all__ = ["MigrateResult", "check_schema", "ensure_current", "migrate", "recorded_versions",
           "sync_identities"]

log = structlog.get_logger("bxnode.store")

_BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS bxnode_schema (name TEXT PRIMARY KEY, version BIGINT NOT NULL, "
    "ddl_sha256 TEXT NOT NULL, applied_ms BIGINT NOT NULL)")
_FIELD_KEY_CHECK = "field_key_check"
_RUN = "run 'bxnode store migrate'"


@dataclass(frozen=True, slots=True)
class MigrateResult:
    applied: tuple[Schema, ...]       # the steps this run applied, in order
    versions: dict[str, int]          # every name's version afterwards


def recorded_versions(db: PgDatabase) -> dict[str, tuple[int, str]] | None:
    """name -> (version, DDL digest) as recorded; None where migrate never ran."""
    row = db.query_one("SELECT to_regclass('bxnode_schema') IS NOT NULL")
    if row is None or not row[0]:
        return None
    return {str(n): (int(v), str(d))
            for n, v, d in db.query("SELECT name, version, ddl_sha256 FROM bxnode_schema")}


def _refuse_newer(recorded: dict[str, tuple[int, str]]) -> None:
    code = latest_versions()
    ahead = sorted(f"{n} v{v} (this bxnode knows v{code[n]})" if n in code
                   else f"{n} v{v} (unknown to this bxnode)"
                   for n, (v, _) in recorded.items() if v > code.get(n, 0))
    if ahead:
        raise ConfigError("the database schema was written by a newer bxnode: "
                          + ", ".join(ahead) + "; run that version (never downgrade)",
                          reason="schema_newer")


def _check_digests(recorded: dict[str, tuple[int, str]]) -> None:
    by_key = {(s.name, s.version): s for s in steps()}
    for name, (version, digest) in sorted(recorded.items()):
        step = by_key.get((name, version))
        if step is not None and step.digest != digest:
            raise ConfigError(
                f"schema {name} v{version} in the database differs from this bxnode's "
                f"{name} v{version}: a changed step needs a new version",
                reason="schema_mismatch")


def _check_field_key(db: PgDatabase, *, record: bool) -> None:
    check = getattr(db.codec, "key_check", None)
    if not isinstance(check, str):
        return
    have = db.get_meta(_FIELD_KEY_CHECK)
    if have is None and record:
        db.set_meta(_FIELD_KEY_CHECK, check)
    elif have is not None and have != check:
        raise ConfigError("the field key does not match the one this database was written "
                          "with (BXNODE_FIELD_KEY / [storage] field_key_file)",
                          reason="wrong_field_key")


def check_schema(db: PgDatabase) -> None:
    """Refuse to serve a database whose schema is not exactly this code's."""
    recorded = recorded_versions(db)
    if recorded is None:
        raise ConfigError(f"the database has no bxnode schema yet: {_RUN}",
                          reason="schema_outdated")
    _refuse_newer(recorded)
    _check_digests(recorded)
    behind = sorted(f"{n} v{recorded.get(n, (0, ''))[0]} < v{v}"
                    for n, v in latest_versions().items() if recorded.get(n, (0, ""))[0] < v)
    if behind:
        raise ConfigError(f"the database schema is older than this bxnode ({', '.join(behind)})"
                          f": {_RUN}", reason="schema_outdated")
    _check_field_key(db, record=False)


def ensure_current(db: PgDatabase, name: str, ddl: str) -> None:
    """``Database.ensure_schema`` on PostgreSQL: check, never create (see module doc)."""
    mine = [s for s in steps() if s.name == name]
    step = next((s for s in mine if s.ddl == ddl), None)
    if step is None:
        raise ConfigError(f"schema {name} with this DDL is not registered in "
                          "node/store/schema.py, so 'bxnode store migrate' cannot apply it",
                          reason="schema_unregistered")
    if (name, step.digest) in db.pool.schema_ok:
        return
    latest = max(s.version for s in mine)
    recorded = recorded_versions(db) or {}
    have = recorded.get(name, (0, ""))[0]
    if have > latest:
        _refuse_newer(recorded)
    if have < latest:
        raise ConfigError(f"the database has schema {name} v{have}, this bxnode needs "
                          f"v{latest}: {_RUN}", reason="schema_outdated")
    db.pool.schema_ok.add((name, step.digest))


def migrate(db: PgDatabase, *, now_ms: int | None = None) -> MigrateResult:
    """Create or upgrade the schema to this code's version: one transaction, under
    ``lock("schema")``; applying nothing when it is current."""
    stamp = int(time.time() * 1000) if now_ms is None else now_ms
    applied: list[Schema] = []
    with db.transaction():
        # an operator's command, not a peer's request: it waits for another replica's
        # migration (and the tables' locks) however long they take, not busy_timeout_s
        db.execute_raw("SET LOCAL lock_timeout = 0")
        db.lock("schema")
        db.execute_raw(_BOOKKEEPING)
        recorded = recorded_versions(db) or {}
        _refuse_newer(recorded)
        _check_digests(recorded)
        versions = {n: v for n, (v, _) in recorded.items()}
        for step in steps():
            have = versions.get(step.name, 0)
            if step.version <= have:
                continue
            for stmt in split_statements(translate_ddl(step.ddl)):
                db.execute_raw(stmt)
            db.execute(
                "INSERT INTO bxnode_schema (name, version, ddl_sha256, applied_ms) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET version = "
                "excluded.version, ddl_sha256 = excluded.ddl_sha256, "
                "applied_ms = excluded.applied_ms",
                (step.name, step.version, step.digest, stamp))
            versions[step.name] = step.version
            applied.append(step)
            _data_step(db, step)
        _check_field_key(db, record=True)
        core = versions.get("core")
        if core is not None:
            db.set_meta("schema_version", str(core))
    collation = db.query_one("SELECT datcollate FROM pg_database WHERE datname = "
                             "current_database()")
    if collation is not None and collation[0] not in ("C", "POSIX", "C.UTF-8", "C.utf8"):
        log.warning("database_collation_not_c", collation=collation[0],
                    note="ORDER BY on text differs from the embedded store; create the "
                         "database with LC_COLLATE 'C' (TEMPLATE template0)")
    for s in applied:
        log.info("schema_applied", name=s.name, version=s.version)
    return MigrateResult(applied=tuple(applied), versions=versions)


def _data_step(db: PgDatabase, step: Schema) -> None:
    """What a step does beyond its DDL, in the migration's transaction."""
    if (step.name, step.version) == ("watchlist_seal", 1):  # node/store/watchlist_seal.py
        from node.store.watchlist import reseal_documents

        log.info("documents_sealed_anew", records=reseal_documents(db))


def sync_identities(db: PgDatabase) -> dict[str, int]:
    """Move every identity column's sequence past the largest id stored.

    SQLite numbers an ``INTEGER PRIMARY KEY`` row max(id) + 1; PostgreSQL's identity takes
    the next value of its sequence, which rows inserted with explicit ids (a copy from a
    SQLCipher file) do not advance.  Run after such inserts, in their transaction.
    Returns table -> the id the next row will get.
    """
    out: dict[str, int] = {}
    cols = db.query("SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND is_identity = 'YES' "
                    "ORDER BY table_name")
    for table, column in cols:
        t, c = '"' + str(table).replace('"', '""') + '"', '"' + str(column).replace('"', '""') + '"'
        row = db.query_one(f"SELECT max({c}) FROM {t}")  # noqa: S608 (catalog names, quoted)
        top = int(row[0]) if row and row[0] is not None else 0
        db.query_one("SELECT setval(pg_get_serial_sequence(?, ?), ?, ?)",
                     (t, str(column), max(top, 1), top > 0))
        out[str(table)] = top + 1
    return out
