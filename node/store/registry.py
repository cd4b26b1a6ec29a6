"""The registry history: every federation registry version this node applied
(:mod:`node.federation.registry_keeper`).  The newest row is the trusted version.

Registry documents are public to the federation (signed lists of nodes and keys): no
personal identifier, nothing passes through the field codec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from node.store.db import Database
from node.store.schema import register

__all__ = ["REGISTRY_SCHEMA", "REGISTRY_SCHEMA_NAME", "RegistryTables", "RegistryVersionRow"]

REGISTRY_SCHEMA_NAME: Final = "registry"
REGISTRY_SCHEMA: Final = register(REGISTRY_SCHEMA_NAME, 1, """
CREATE TABLE IF NOT EXISTS registry_versions (
    version    INTEGER PRIMARY KEY,
    digest     TEXT NOT NULL,
    document   BLOB NOT NULL,
    applied_ms INTEGER NOT NULL
)
""").ddl


@dataclass(frozen=True, slots=True)
class RegistryVersionRow:
    version: int
    digest: str
    document: bytes
    applied_ms: int


class RegistryTables:
    """The registry history over one :class:`~node.store.db.Database` (callers hold the
    transaction).  Versions are always inserted explicitly, never numbered by the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        self.db.ensure_schema(REGISTRY_SCHEMA_NAME, REGISTRY_SCHEMA)

    def latest_document(self) -> bytes | None:
        """The document of the newest applied version (None before the first start)."""
        row = self.db.query_one(
            "SELECT document FROM registry_versions ORDER BY version DESC LIMIT 1")
        return None if row is None else bytes(row[0])

    def digest(self, version: int) -> str | None:
        row = self.db.query_one("SELECT digest FROM registry_versions WHERE version=?",
                                (version,))
        return None if row is None else str(row[0])

    def document(self, version: int) -> bytes | None:
        row = self.db.query_one("SELECT document FROM registry_versions WHERE version=?",
                                (version,))
        return None if row is None else bytes(row[0])

    def add(self, row: RegistryVersionRow) -> bool:
        """Record an applied version; a version already recorded is kept as it was (the
        same version number is the same signed document).  True when it was new."""
        return self.db.execute(
            "INSERT INTO registry_versions (version, digest, document, applied_ms) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (version) DO NOTHING",
            (row.version, row.digest, row.document, row.applied_ms)) == 1
