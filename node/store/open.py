"""Open the node's database from its configuration: SQLCipher or PostgreSQL.

``[storage] backend = "sqlcipher"`` (the default) opens the encrypted file as
``node.app.open_store`` does; ``"postgresql"`` opens a pool on the DSN with the password
from ``$BXNODE_PG_PASSWORD`` or ``[storage] password_file`` (0600) and the field key from
``$BXNODE_FIELD_KEY`` or ``[storage] field_key_file`` (0600), and refuses a database whose
schema is not this code's (``bxnode store migrate``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from node.core.errors import ConfigError
from node.store.db import Database
from node.store.keys import check_private_file

if TYPE_CHECKING:
    from node.config import NodeConfig
    from node.store.postgresql import PgPool

__all__ = ["PG_PASSWORD_ENV", "load_pg_password", "open_database", "open_pg_pool"]

PG_PASSWORD_ENV = "BXNODE_PG_PASSWORD"  # noqa: S105 (the variable's name, not a password)
_MAX_PASSWORD = 1024


def load_pg_password(password_file: Path | None) -> str | None:
    """``$BXNODE_PG_PASSWORD``, else the first line of ``password_file`` (mode 0600), else
    None (the server authenticates us otherwise: peer, certificate)."""
    env = os.environ.get(PG_PASSWORD_ENV)
    if env:
        return env
    if password_file is None:
        return None
    check_private_file(password_file, "PostgreSQL password file")
    text = password_file.read_text(encoding="utf-8")
    lines = text.splitlines()
    password = lines[0] if lines else ""
    if not password or len(password) > _MAX_PASSWORD:
        raise ConfigError(f"PostgreSQL password file {password_file} must hold the password "
                          f"on its first line (1..{_MAX_PASSWORD} characters)",
                          reason="bad_password_file")
    return password


def open_pg_pool(cfg: NodeConfig, *, check_schema: bool = True) -> PgPool:
    """The PostgreSQL pool of a node with ``backend = "postgresql"``."""
    from node.store.fieldcrypt import KeyedCodec, load_field_key
    from node.store.postgresql import PgPool

    st = cfg.storage
    if st.backend != "postgresql" or st.dsn is None:
        raise ConfigError('[storage] backend is not "postgresql"', reason="bad_config")
    codec = KeyedCodec.from_key(load_field_key(st.field_key_file))
    return PgPool.open(dsn=st.dsn, password=load_pg_password(st.password_file), codec=codec,
                       min_size=st.pool_min, max_size=st.pool_max,
                       timeout_s=float(st.connect_timeout_s), check_schema=check_schema,
                       lock_timeout_s=float(st.busy_timeout_s))


def open_database(cfg: NodeConfig) -> Database:
    """The node's database: a SQLCipher ``Store`` or a ``PgDatabase`` owning its pool
    (``db.pool.database()`` gives further threads theirs; ``close`` closes the pool)."""
    if cfg.storage.backend == "postgresql":
        from node.store.postgresql import PgDatabase

        return PgDatabase(pool=open_pg_pool(cfg), owns_pool=True)
    from node.store.keys import load_db_key
    from node.store.sqlcipher import Store

    return Store.open(cfg.db_path, load_db_key(cfg.db_key_file),
                      busy_timeout_s=cfg.storage.busy_timeout_s)
