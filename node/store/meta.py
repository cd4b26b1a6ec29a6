"""Reads and removals of ``meta`` keys beyond a Database's own get_meta/set_meta (the
restore hold and the log epoch are read together once per commit)."""

from __future__ import annotations

from node.store.db import Database

__all__ = ["delete_meta", "meta_values"]


def meta_values(db: Database, *keys: str) -> dict[str, str]:
    """The stored value of each of ``keys`` that has one, in one statement."""
    marks = ", ".join("?" * len(keys))
    return {str(k): str(v) for k, v in db.query(
        f"SELECT k, v FROM meta WHERE k IN ({marks})", keys)}  # noqa: S608 - placeholders only


def delete_meta(db: Database, key: str) -> None:
    db.execute("DELETE FROM meta WHERE k = ?", (key,))
