"""PostgreSQL's data step of 2026-12-07: document records sealed anew with their rows'
plain columns.

A document's sealed record held its three identifiers alone; it now also holds the row's
plain columns (node/store/watchlist.py), and a record without them is refused.
``bxnode store migrate`` applies this step once (node/store/postgresql/migrate.py runs
:func:`~node.store.watchlist.reseal_documents` in the migration's transaction), and a
replica refuses a database it has not been applied to (``schema_outdated``), so every
record a serving replica reads was sealed with its columns.  The step has no DDL of its
own: its text is a comment, recorded like any step's.  SQLCipher seals nothing (its whole
file is encrypted) and applies nothing for it.
"""

from __future__ import annotations

from node.store.schema import register

__all__ = ["WATCHLIST_SEAL"]

WATCHLIST_SEAL = register("watchlist_seal", 1, """
-- a data step: documents.sealed sealed anew with the row's plain columns
-- (node.store.watchlist.reseal_documents, run by node.store.postgresql.migrate)
""")
