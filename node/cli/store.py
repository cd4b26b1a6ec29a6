"""``bxnode store migrate``: create or upgrade the database schema.

On PostgreSQL the schema changes only here, never while serving: every replica refuses a
database whose schema is behind (``schema_outdated``) or ahead of (``schema_newer``) its
code.  Run it once per upgrade, before starting the new version's replicas; it is one
transaction under a database lock, so running it twice, or on two machines at once, is
harmless.  On SQLCipher there is nothing to do: the file migrates itself when opened.
"""

from __future__ import annotations

import argparse
from typing import Any

from node.cli.main import _config, _emit, add_command, add_group

__all__ = ["register"]


def cmd_store_migrate(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if cfg.storage.backend != "postgresql":
        _emit(args, {"backend": cfg.storage.backend, "applied": [], "migrated": False},
              "store migrate: nothing to do on SQLCipher: the database file migrates itself "
              "when the node opens it")
        return 0
    from node.store.open import open_pg_pool
    from node.store.postgresql.migrate import migrate

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


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    group = add_group(sub, "store", "the node's database")
    add_command(group, "migrate", cmd_store_migrate,
                "create or upgrade the database schema (PostgreSQL; a no-op on SQLCipher)",
                common)
