"""The watchlist import's SQLite memory stays flat (issue 16: "memory flat at 10,000,000
documents"), measured through SQLite's own counter, not RSS or time.

``sqlite3_status64(SQLITE_STATUS_MEMORY_USED)`` is every byte SQLite has allocated: the
page cache, and the in-memory temporary storage of this build (``TEMP_STORE=2``: statement
and savepoint sub-journals, sorters, temp b-trees), which is where a growing import would
show.  Its high-water mark over an import four times larger than a first one, into the
same file (so the later chunks land among pages that existed before the transaction),
must not grow with the rows.
"""

from __future__ import annotations

import ctypes
import datetime as dt
from pathlib import Path

import sqlcipher3._sqlite3 as _ext

from node.store.sqlcipher import Store
from node.store.watchlist import SqlWatchlistStore
from node.watchlist.importer import import_file

TODAY = dt.date(2026, 7, 1)
_MEMORY_USED = 0  # SQLITE_STATUS_MEMORY_USED
_MB = 1 << 20


def _status(reset: bool) -> tuple[int, int]:
    """SQLite's (current, high-water) bytes allocated; ``reset`` restarts the high-water."""
    lib = ctypes.CDLL(_ext.__file__)
    cur, high = ctypes.c_int64(), ctypes.c_int64()
    rc = lib.sqlite3_status64(_MEMORY_USED, ctypes.byref(cur), ctypes.byref(high), int(reset))
    assert rc == 0
    return cur.value, high.value


def _file(path: Path, first: int, n: int) -> Path:
    with path.open("w", encoding="utf-8") as f:
        f.write("kind,owner_ref,action,expires,number,issuing_state,doc_type\n")
        for i in range(first, first + n):  # owner_ref out of key order, as the bench's
            f.write(f"document,D{i},seize_document,2036-01-01,N{i:08d},KAZ,P\n")
    return path


def _peak_of_import(store: Store, path: Path) -> int:
    _status(reset=True)
    result = import_file(path, store=store, today=TODAY, chunk=5_000)
    assert (result.written, result.error_count) == (True, 0)
    return _status(reset=False)[1]


def test_sqlite_memory_does_not_grow_with_the_rows_imported(store: Store,
                                                              tmp_path: Path) -> None:
    small = _peak_of_import(store, _file(tmp_path / "a.csv", 0, 100_000))
    large = _peak_of_import(store, _file(tmp_path / "b.csv", 100_000, 300_000))
    assert SqlWatchlistStore(store).generation() == "2"
    assert large <= small + 2 * _MB, (small / _MB, large / _MB)
    assert large < 32 * _MB, large / _MB
