"""The PostgreSQL backend: several ``bxnode serve`` replicas on one database.

:class:`PgPool` opens the database (psycopg 3, psycopg_pool) and refuses one whose schema
is not this code's; :class:`PgDatabase` is one thread's ``node.store.db.Database`` on it.
Portable SQL from the modules under ``node/store/`` runs unchanged: ``?`` placeholders and
portable DDL are translated here (``_sql``).  Schema changes only in ``bxnode store
migrate`` (:mod:`node.store.postgresql.migrate`).  Personal identifiers reach the columns
only through the pool's field codec (``node.store.fieldcrypt.KeyedCodec``).
"""

from node.store.postgresql._db import PgDatabase, PgPool, dsn_has_password, parse_dsn
from node.store.postgresql._sql import lock_key, split_statements, translate_ddl, translate_sql

__all__ = ["PgDatabase", "PgPool", "dsn_has_password", "lock_key", "parse_dsn",
           "split_statements", "translate_ddl", "translate_sql"]
