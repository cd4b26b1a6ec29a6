"""The one ordered list of schema steps every backend applies.

A step is ``Schema(name, version, ddl)``: portable DDL (node/store/db.py) that brings the
tables of ``name`` (``core``, ``crossings``, ``audit_merkle`` ...) to ``version``.  Steps of
one name are numbered 1, 2, 3 ... and applied in that order; a new version holds only
what changed (``ALTER TABLE ... ADD COLUMN ...``, a new index).

The SQL modules under ``node/store/`` register their steps when imported::

    from node.store.schema import register
    CROSSINGS_DDL = register("crossings", 1, \"\"\"CREATE TABLE IF NOT EXISTS ...\"\"\").ddl

and :func:`steps` imports every such module first (everything directly under
``node/store/`` except the infrastructure modules named in ``_INFRASTRUCTURE``), so the
list is complete whoever asks.  ``core`` (meta, watchlist, nonces, usage, receipts) comes
first, then the modules in name order, each module's steps in the order it registers
them.

SQLCipher applies steps as today, on open (``Store.ensure_schema``).  PostgreSQL applies
them only in ``bxnode store migrate`` (``node.store.postgresql.migrate``), in one
transaction under ``lock("schema")``, and refuses to serve a database whose recorded
versions differ from these.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re
from dataclasses import dataclass

from node.store.sqlcipher import _SCHEMA as _CORE_DDL
from node.store.sqlcipher import SCHEMA_VERSION as _CORE_VERSION

__all__ = ["SCHEMAS", "Schema", "latest_versions", "register", "steps"]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
#: Modules directly under node/store/ that hold no schema of their own.
_INFRASTRUCTURE = frozenset({"db", "keys", "schema", "open", "fieldcrypt"})


@dataclass(frozen=True, slots=True)
class Schema:
    """One schema step: the DDL that brings ``name`` to ``version``."""

    name: str
    version: int
    ddl: str

    @property
    def digest(self) -> str:
        """SHA-256 of the DDL text, recorded beside the version it applied."""
        return hashlib.sha256(self.ddl.encode()).hexdigest()


#: Every registered step, in the order backends apply them.  Append with :func:`register`.
SCHEMAS: list[Schema] = [Schema("core", _CORE_VERSION, _CORE_DDL)]
_discovered = False


def register(name: str, version: int, ddl: str) -> Schema:
    """Append a step.  ``version`` must be the next one for ``name`` (1 for a new name);
    registering the very same step again (a re-imported module) returns it unchanged."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"schema name {name!r} must match {_NAME.pattern}")
    if not ddl.strip():
        raise ValueError(f"schema {name} v{version} has no DDL")
    step = Schema(name, version, ddl)
    if step in SCHEMAS:
        return step
    have = max((s.version for s in SCHEMAS if s.name == name), default=0)
    if version != have + 1:
        raise ValueError(f"schema {name} is at version {have}: the next step is "
                         f"v{have + 1}, not v{version}")
    SCHEMAS.append(step)
    return step


def steps() -> tuple[Schema, ...]:
    """Every step, after importing every SQL module under node/store/ (see module doc)."""
    global _discovered
    if not _discovered:
        import node.store as package

        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not info.ispkg and not info.name.startswith("_") \
                    and info.name not in _INFRASTRUCTURE:
                importlib.import_module(f"node.store.{info.name}")
        _discovered = True
    return tuple(SCHEMAS)


def latest_versions() -> dict[str, int]:
    """The version the code expects of each name."""
    out: dict[str, int] = {}
    for s in steps():
        out[s.name] = max(out.get(s.name, 0), s.version)
    return out
