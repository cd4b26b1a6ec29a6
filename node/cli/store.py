"""``bxnode store migrate`` and ``bxnode store copy``: the node's database.

``migrate`` creates or upgrades the schema.  On PostgreSQL the schema changes only here,
never while serving: every replica refuses a database whose schema is behind
(``schema_outdated``) or ahead of (``schema_newer``) its code.  Run it once per upgrade,
before starting the new version's replicas; it is one transaction under a database lock,
so running it twice, or on two machines at once, is harmless.  On SQLCipher there is
nothing to do: the file migrates itself when opened.  ``--dsn`` migrates a PostgreSQL
database the node does not use yet (the target of ``store copy``).

``copy --to postgresql`` moves a SQLCipher node into an empty, migrated PostgreSQL database
(:mod:`node.store.copy`).  The target is named on the command line, with the same settings
``[storage]`` takes afterwards: ``--dsn`` (never with a password), the password from
``$BXNODE_PG_PASSWORD`` or ``--password-file`` (0600), the field key from
``$BXNODE_FIELD_KEY`` or ``--field-key-file`` (0600).  The node's own ``node.toml`` still
names the SQLCipher file; the command prints the ``[storage]`` lines to switch to.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.cli.main import CliError, _config, _emit, add_command, add_group
from node.core.errors import ConfigError

if TYPE_CHECKING:
    from node.store.postgresql import PgPool

__all__ = ["register"]

#: Connections a copy or a migration by --dsn needs: one.
_TIMEOUT_S = 5.0


def _file(text: str | None) -> Path | None:
    return None if not text else Path(text).resolve()


def _open_target(args: argparse.Namespace, *, check_schema: bool) -> PgPool:
    """The PostgreSQL database named by --dsn, --password-file and --field-key-file."""
    from node.store.fieldcrypt import KeyedCodec, load_field_key
    from node.store.open import load_pg_password
    from node.store.postgresql import PgPool, dsn_has_password

    if dsn_has_password(args.dsn):  # never echo the DSN: it holds the password
        raise CliError("--dsn must not contain a password; put it in --password-file "
                       "(mode 0600) or $BXNODE_PG_PASSWORD")
    try:
        codec = KeyedCodec.from_key(load_field_key(_file(args.field_key_file)))
    except ConfigError as exc:
        if exc.reason != "no_field_key":
            raise
        raise CliError("no field key: give --field-key-file (mode 0600, 64 hex characters) "
                       "or set $BXNODE_FIELD_KEY") from None
    password = load_pg_password(_file(args.password_file))
    try:
        return PgPool.open(dsn=args.dsn, password=password, codec=codec, min_size=1,
                           max_size=1, timeout_s=_TIMEOUT_S, check_schema=check_schema)
    except ConfigError as exc:
        if exc.reason == "schema_outdated":
            raise CliError("the target database is not migrated to this bxnode's schema: run "
                           "'bxnode store migrate --dsn ...' on it first") from None
        if exc.reason == "wrong_field_key":
            raise CliError("the field key does not match the one the target database was "
                           "migrated with (--field-key-file / $BXNODE_FIELD_KEY)") from None
        raise


def _target_args(sp: argparse.ArgumentParser, *, required: bool) -> None:
    sp.add_argument("--dsn", required=required,
                    help="the PostgreSQL database: libpq key=value pairs or a postgresql:// "
                         "URI, without a password")
    sp.add_argument("--password-file",
                    help="file holding the database password on its first line, mode 0600 "
                         "($BXNODE_PG_PASSWORD takes precedence)")
    sp.add_argument("--field-key-file",
                    help="the field key (64 hex characters), mode 0600: blind indexes and "
                         "sealed columns; keep it with the node's key files "
                         "($BXNODE_FIELD_KEY takes precedence)")


# --- migrate ------------------------------------------------------------------------------


def cmd_store_migrate(args: argparse.Namespace) -> int:
    from node.store.postgresql.migrate import migrate

    if args.dsn is not None:
        pool = _open_target(args, check_schema=False)
    else:
        if args.password_file or args.field_key_file:
            raise CliError("--password-file and --field-key-file go with --dsn")
        cfg = _config(args)
        if cfg.storage.backend != "postgresql":
            _emit(args, {"backend": cfg.storage.backend, "applied": [], "migrated": False},
                  "store migrate: nothing to do on SQLCipher: the database file migrates "
                  "itself when the node opens it")
            return 0
        from node.store.open import open_pg_pool

        pool = open_pg_pool(cfg, check_schema=False)
    try:
        result = migrate(pool.database())
    finally:
        pool.close()
    applied = [f"{s.name} v{s.version}" for s in result.applied]
    versions = ", ".join(f"{n} v{v}" for n, v in sorted(result.versions.items()))
    _emit(args, {"backend": "postgresql", "applied": applied, "migrated": bool(applied),
                 "versions": dict(sorted(result.versions.items()))},
          (f"store migrate: applied {', '.join(applied)}" if applied
           else "store migrate: the schema is current; nothing applied")
          + f" (now {versions})")
    return 0


# --- copy ---------------------------------------------------------------------------------


def cmd_store_copy(args: argparse.Namespace) -> int:
    from node.app import now_ms
    from node.store.copy import copy_to_postgresql
    from node.store.open import open_database

    cfg = _config(args)
    if cfg.storage.backend != "sqlcipher":
        raise CliError("this node already keeps its data in PostgreSQL ([storage] backend); "
                       "store copy reads a SQLCipher node")
    source = open_database(cfg)
    try:
        pool = _open_target(args, check_schema=True)
        try:
            report = copy_to_postgresql(source, pool.database(), now_ms=now_ms())
        finally:
            pool.close()
    finally:
        source.close()
    storage = {"backend": "postgresql", "dsn": args.dsn,
               "password_file": str(_file(args.password_file) or ""),
               "field_key_file": str(_file(args.field_key_file) or "")}
    head = None if report.checkpoint is None else {
        "size": report.checkpoint[0], "root": report.checkpoint[1].hex()}
    payload = {"from": "sqlcipher", "to": "postgresql", "node_id": cfg.node_id,
               "tables": report.tables, "expired_nonces_left": report.expired_nonces,
               "checkpoint": head, "storage": storage}
    width = max(len(t) for t in report.tables)
    lines = [f"store copy: copied {cfg.node_id} from {cfg.db_path} into PostgreSQL "
             "(one transaction)"]
    lines += [f"  {t:<{width}}  {n:>10}" for t, n in report.tables.items()]
    if report.expired_nonces:
        lines.append(f"  ({report.expired_nonces} expired nonces left behind)")
    lines.append("latest signed checkpoint: " + (
        "none" if head is None else f"size {head['size']}, root {head['root']}"))
    lines.append("next: keep the node stopped, set [storage] in node.toml to")
    lines.append(f'  backend = "postgresql"\n  dsn = "{args.dsn}"')
    for key in ("password_file", "field_key_file"):
        if storage[key]:
            lines.append(f'  {key} = "{storage[key]}"')
    lines.append("then 'bxnode audit verify' must give the same entries and root as before")
    _emit(args, payload, "\n".join(lines))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    group = add_group(sub, "store", "the node's database")
    sp = add_command(group, "migrate", cmd_store_migrate,
                     "create or upgrade the database schema (PostgreSQL; a no-op on "
                     "SQLCipher); --dsn migrates a database the node does not use yet",
                     common)
    _target_args(sp, required=False)
    sp = add_command(group, "copy", cmd_store_copy,
                     "copy this SQLCipher node (watchlist, receipts, crossings, follow-ups, "
                     "registry history, witnessing, the whole audit log) into an empty, "
                     "migrated PostgreSQL database, in one transaction; stop the node first",
                     common)
    sp.add_argument("--to", required=True, choices=["postgresql"],
                    help="the target backend")
    _target_args(sp, required=True)
