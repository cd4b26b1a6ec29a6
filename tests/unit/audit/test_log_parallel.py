"""Every verification test of test_log.py again, with the two-process fast path forced on.

A log of at least PARALLEL_VERIFY_MIN entries is verified by two processes split at the
largest power of two below its size (RFC 9162 2.1.1); on any problem the sequential scan
runs to name the first bad entry, so every outcome must be exactly the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import node.audit.log as audit_log
from node.audit.log import (
    ErasureRecord,
    MerkleAuditLog,
    VerifyReport,
    _Erasures,
    _verify_parallel,
    _verify_sequential,
)
from node.store.audit_log import AuditLogTables as tables
from node.store.sqlcipher import Store
from tests.unit.audit.test_log import *  # noqa: F403 - the same tests, run again here
from tests.unit.audit.test_log import EVENTS, KEY, SK, T0, _erase_raw


@pytest.fixture(autouse=True)
def _parallel_always(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(audit_log, "PARALLEL_VERIFY_MIN", 1)
    yield


def _big(tmp_path: Path, entries: int, per_commit: int) -> Path:
    path = tmp_path / "big.db"
    store = Store.open(path, KEY, create=True)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)
    for start in range(0, entries, per_commit):
        with store.transaction():
            for i in range(start, min(entries, start + per_commit)):
                log.append(EVENTS[i % len(EVENTS)], time_ms=T0 + i)
    store.close()
    return path


@pytest.mark.parametrize("entries", [2, 3, 64, 65, 300])
def test_parallel_report_equals_the_sequential_one(tmp_path: Path, entries: int) -> None:
    path = _big(tmp_path, entries, per_commit=7)
    store = Store.open(path, KEY)
    try:
        log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)
        assert log.verifier is not None
        sizes = sorted({1, entries // 2, entries})  # roots asked for (witnessed sizes)
        fast = _verify_parallel(store, [log.verifier], sizes)
        slow = _verify_sequential(store, [log.verifier], sizes, _Erasures.load(tables(store)))
    finally:
        store.close()
    assert fast is not None and fast.ok
    assert fast == slow and set(fast.roots) == set(sizes)
    assert fast.roots[entries] == bytes.fromhex(fast.head)


def _declined(path: Path) -> VerifyReport:
    """The two-process path declines the log; what the sequential scan then reports."""
    store = Store.open(path, KEY)
    try:
        log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)
        assert log.verifier is not None
        assert _verify_parallel(store, [log.verifier], []) is None
        return log.verify()
    finally:
        store.close()


def test_parallel_path_declines_a_tampered_right_half(tmp_path: Path) -> None:
    import sqlcipher3

    path = _big(tmp_path, 300, per_commit=50)
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{KEY.hex()}'\"")
    conn.execute("UPDATE audit_entries SET time_ms = time_ms + 1 WHERE seq = 290")
    conn.close()
    report = _declined(path)
    assert (report.ok, report.first_bad_seq, report.problem) == (
        False, 290, "entry 290 time was changed")


DAY = 86_400_000


def _erase_first(path: Path, entries: int) -> int:
    """erase-expired of entries 1..``entries`` (their times are T0 + i); its record is the
    next entry, in the right part of the split."""
    store = Store.open(path, KEY)
    try:
        now = T0 + entries + DAY
        erased = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK).erase_expired(
            now_ms=now, retention_ms=DAY)
    finally:
        store.close()
    return now if erased == entries else -1


def test_parallel_judges_erasures_of_both_parts_against_a_record_in_the_right(
        tmp_path: Path) -> None:
    # 300 entries, split at 256: 1..270 erased (both parts), the record is entry 301
    path = _big(tmp_path, 300, per_commit=50)
    now = _erase_first(path, 270)
    assert now > 0
    store = Store.open(path, KEY)
    try:
        log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)
        assert log.verifier is not None
        fast = _verify_parallel(store, [log.verifier], [256, 301])
        slow = _verify_sequential(store, [log.verifier], [256, 301],
                                  _Erasures.load(tables(store)))
    finally:
        store.close()
    assert fast is not None
    assert (fast.ok, fast.entries, fast.erased) == (True, 301, 270)
    assert [(seq, r.erased, r.first_seq, r.last_seq, r.erased_ms)
            for seq, r in fast.erasures] == [(301, 270, 1, 270, now)]
    assert fast == slow


@pytest.mark.parametrize("seq", [5, 280])
def test_parallel_declines_an_uncovered_erasure_and_the_scan_names_it(
        tmp_path: Path, seq: int) -> None:
    path = _big(tmp_path, 300, per_commit=50)
    _erase_raw(path, seq, T0 + 10**9)  # no record at all: in the left or the right part
    report = _declined(path)
    assert (report.ok, report.first_bad_seq, report.problem) == (
        False, seq, f"entry {seq} body was erased with no recorded erasure covering it "
                    "(tampering)")


def test_parallel_declines_more_erased_bodies_than_recorded(tmp_path: Path) -> None:
    path = _big(tmp_path, 300, per_commit=50)
    now = T0 + 10 * DAY + 5000
    _erase_raw(path, 1, now)
    _erase_raw(path, 2, now)  # two bodies under one record that counts one of 1..2
    store = Store.open(path, KEY)
    try:
        with store.transaction():
            assert MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK).append(
                {"event": "retention_sweep", "audit_erasure": ErasureRecord(
                    now, 10 * DAY, 1, 1, 2).to_json()}, time_ms=now) == 301
    finally:
        store.close()
    report = _declined(path)
    assert (report.ok, report.first_bad_seq, report.problem) == (
        False, 301, f"entry 301 records 1 erased bodies at {now}, but 2 bodies carry that "
                    "erasure time")
