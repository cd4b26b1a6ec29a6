"""One table of ``node.toml``, read key by key, every refusal naming the table and the key.

The sections that check their own keys (``[audit]``, ``[storage]``, ``[local]``,
``[console]``) read values through :class:`Section` so the rules are the same everywhere: a
number is an integer (never a bool, never text) within its range, text is text, a path is
text resolved against the node folder, a flag is ``true`` or ``false``, and an unknown key is
an error, never ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from node.core.errors import ConfigError

__all__ = ["Section"]


class Section:
    def __init__(self, name: str, doc: Any, root: Path,
                 keys: Iterable[str] | None = None) -> None:
        self.name = name
        self.root = root
        if not isinstance(doc, dict):
            raise self.error("must be a table")
        self.doc: dict[str, Any] = doc
        if keys is not None:
            unknown = sorted(set(doc) - set(keys))
            if unknown:
                raise self.error(f"has no key {unknown[0]!r}")

    def error(self, message: str, reason: str = "bad_config") -> ConfigError:
        """``config: [name] <message>``, the one-line refusal every section gives."""
        return ConfigError(f"config: [{self.name}] {message}", reason=reason)

    def text(self, key: str, default: str = "") -> str:
        value = self.doc.get(key, default)
        if not isinstance(value, str):
            raise self.error(f"{key} must be text")
        return value.strip()

    def path(self, key: str) -> Path | None:
        """A file or folder relative to the node folder; absent or empty: None."""
        value = self.doc.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(f"{key} must be a file name")
        value = value.strip()
        return (self.root / value).resolve() if value else None

    def num(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self.doc.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise self.error(f"{key} must be {lo}..{hi}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.doc.get(key, default)
        if not isinstance(value, bool):
            raise self.error(f"{key} must be true or false")
        return value
