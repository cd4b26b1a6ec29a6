"""Fixtures of the watchlist tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.store.sqlcipher import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLCipher node database."""
    s = Store.open(tmp_path / "n.db", bytes(range(32)), create=True)
    try:
        yield s
    finally:
        s.close()
