"""Stored cosignatures checked against the directory's witness keys; the log compared with
what its witnesses hold (a consistent rollback, a fork); the witness's read of its state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest

from node.audit.bundle import witness_name
from node.audit.checkpoint import Checkpoint, CosignatureV1Signer
from node.audit.log import MerkleAuditLog, log_origin
from node.audit.note import parse_note
from node.audit.verification import (
    WitnessedHead,
    check_cosignatures,
    compare_with_witnesses,
    open_witnessed,
)
from node.audit.witnessing import WitnessDesk
from node.core.errors import BxError
from node.core.members import Member, MemberKey, StaticDirectory
from node.store.audit_log import AuditLogTables
from node.store.sqlcipher import Store

KEY = bytes(range(7, 39))
LOG_SK = nacl.signing.SigningKey(bytes(range(32)))
W_SK = nacl.signing.SigningKey(bytes(range(1, 33)))
OLD_SK = nacl.signing.SigningKey(bytes(range(2, 34)))
T0 = 1_763_900_000_000


def _member(node_id: str, *keys: tuple[nacl.signing.SigningKey, bool]) -> Member:
    return Member(node_id=node_id, country=node_id[:3], agency="x", endpoint="127.0.0.1:1",
                  roles=("node",), tls_cert_sha256=(),
                  keys=tuple(MemberKey(f"k{i}", bytes(k.verify_key), revoked=r)
                             for i, (k, r) in enumerate(keys)))


DIRECTORY = StaticDirectory(members=(_member("KAZ-BS", (LOG_SK, False)),
                                     _member("KGZ-BS", (W_SK, False), (OLD_SK, True))))


@pytest.fixture
def log(tmp_path: Path) -> Iterator[MerkleAuditLog]:
    store = Store.open(tmp_path / "n.db", KEY, create=True)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=LOG_SK)
    for i in range(6):
        with store.transaction():
            log.append({"event": "lookup", "n": i}, time_ms=T0 + i)
    yield log
    store.close()


def _cosign(size: int, log: MerkleAuditLog, key: nacl.signing.SigningKey,
            name: str = witness_name("KGZ-BS")) -> str:
    head = log.head(size)
    assert head is not None
    cp = Checkpoint.parse(parse_note(head.note).text)
    return CosignatureV1Signer(name=name, seed=bytes(key)).cosign(cp, timestamp=1).line()


def test_valid_cosignatures_are_counted_per_checkpoint(log: MerkleAuditLog) -> None:
    with log.store.transaction():
        log.add_cosignature(4, witness_name("KGZ-BS"), _cosign(4, log, W_SK), time_ms=T0)
    check = check_cosignatures(log.heads(), log.cosignature_rows(), directory=DIRECTORY,
                               log_id="KAZ-BS")
    assert (check.valid, check.problems, check.count(4), check.count(6)) == (
        {4: ("KGZ-BS",)}, (), 1, 0)
    assert (check.last_cosigned(1), check.last_cosigned(2)) == (4, 0)


def test_a_forged_or_misplaced_cosignature_is_tampering(log: MerkleAuditLog) -> None:
    wrong = nacl.signing.SigningKey(bytes(range(3, 35)))
    with log.store.transaction():
        # stored with checkpoint 5, but made over checkpoint 4
        log.add_cosignature(5, witness_name("KGZ-BS"), _cosign(4, log, W_SK), time_ms=T0)
        log.add_cosignature(3, witness_name("KGZ-BS"), _cosign(3, log, wrong), time_ms=T0)
        log.add_cosignature(2, witness_name("UZB-BS"), _cosign(2, log, wrong,
                                                               witness_name("UZB-BS")),
                            time_ms=T0)
        log.add_cosignature(6, witness_name("KAZ-BS"), _cosign(6, log, LOG_SK,
                                                               witness_name("KAZ-BS")),
                            time_ms=T0)
    check = check_cosignatures(log.heads(), log.cosignature_rows(), directory=DIRECTORY,
                               log_id="KAZ-BS")
    assert check.valid == {}
    assert check.problems == (
        "cosignature on checkpoint 2 is by bxnode-witness/UZB-BS, not a federation witness",
        "cosignature of bxnode-witness/KGZ-BS on checkpoint 3 does not verify",
        "cosignature of bxnode-witness/KGZ-BS on checkpoint 5 does not verify",
        "cosignature on checkpoint 6 is by bxnode-witness/KAZ-BS, not a federation witness")


def test_a_revoked_key_is_not_counted_but_is_no_tampering(log: MerkleAuditLog) -> None:
    with log.store.transaction():
        log.add_cosignature(4, witness_name("KGZ-BS"), _cosign(4, log, OLD_SK), time_ms=T0)
    check = check_cosignatures(log.heads(), log.cosignature_rows(), directory=DIRECTORY,
                               log_id="KAZ-BS")
    assert (check.valid, check.problems, check.notes) == ({}, (), (
        "cosignature of bxnode-witness/KGZ-BS on checkpoint 4 is by a revoked key",))


def test_a_cosignature_of_a_deleted_checkpoint_is_named(log: MerkleAuditLog) -> None:
    with log.store.transaction():
        log.add_cosignature(6, witness_name("KGZ-BS"), _cosign(6, log, W_SK), time_ms=T0)
        log.store.execute("DELETE FROM audit_checkpoints WHERE size = 6")
    check = check_cosignatures(log.heads(), log.cosignature_rows(), directory=DIRECTORY,
                               log_id="KAZ-BS")
    assert check.problems == (
        "cosignature of bxnode-witness/KGZ-BS on checkpoint 6, which is not stored",)


def _witness_desk(log: MerkleAuditLog, tmp_path: Path) -> tuple[WitnessDesk, Store]:
    """KGZ-BS as a witness that cosigned KAZ-BS's checkpoint 5."""
    from node.audit.checkpoint_witness import AddCheckpointRequest

    store = Store.open(tmp_path / "w.db", KEY, create=True)
    desk = WitnessDesk(store=store, node_id="KGZ-BS", signing_key=W_SK, directory=DIRECTORY)
    head = log.head(5)
    assert head is not None
    desk.add_checkpoint(AddCheckpointRequest(0, (), head.note).to_bytes(), now_ms=T0)
    return desk, store


def test_the_witness_answers_what_it_holds_freshly_cosigned(log: MerkleAuditLog,
                                                            tmp_path: Path) -> None:
    from node.audit.checkpoint_witness import UnknownLog
    from node.audit.log import log_verifiers

    desk, store = _witness_desk(log, tmp_path)
    try:
        note, lines = desk.witnessed_checkpoint(log_origin("KAZ-BS"), now_ms=T0 + 9000)
        with pytest.raises(UnknownLog):
            desk.witnessed_checkpoint(log_origin("TJK-BS"), now_ms=T0)
    finally:
        store.close()
    head = log.head(5)
    assert head is not None and note == head.note
    got = open_witnessed(DIRECTORY.member("KGZ-BS"), checkpoint=note, cosignatures=lines,
                         log_verifiers=log_verifiers("KAZ-BS", [bytes(LOG_SK.verify_key)]),
                         origin=log_origin("KAZ-BS"))
    assert (got.witness, got.size, got.root) == ("KGZ-BS", 5, head.root)
    assert got.cosignature is not None and got.cosignature.timestamp == (T0 + 9000) // 1000
    # a cosignature by another key is refused
    with pytest.raises(BxError):
        open_witnessed(DIRECTORY.member("KGZ-BS"), checkpoint=note,
                       cosignatures=_cosign(5, log, OLD_SK).encode(),
                       log_verifiers=log_verifiers("KAZ-BS", [bytes(LOG_SK.verify_key)]),
                       origin=log_origin("KAZ-BS"))


def test_a_consistent_rollback_verifies_alone_but_not_against_a_witness(
        log: MerkleAuditLog) -> None:
    head = log.head(5)
    assert head is not None
    witnessed = [WitnessedHead("KGZ-BS", 5, head.root), WitnessedHead("UZB-BS", 0, None)]
    report = log.verify(roots_at=[5])
    assert [c.ok for c in compare_with_witnesses(report, witnessed)] == [True, True]
    with log.store.transaction():
        AuditLogTables(log.store).unsafe_roll_back_for_tests(3)
    report = log.verify(roots_at=[5])
    assert (report.ok, report.entries, report.checkpoint_size) == (True, 3, 3)
    [kgz, uzb] = compare_with_witnesses(report, witnessed)
    assert (kgz.ok, kgz.size, kgz.problem) == (
        False, 5, "KGZ-BS witnessed size 5, but the log holds only 3 entries: entries 4..5 "
                  "are gone (rolled back)")
    assert uzb.ok
    # the rolled-back log grows again with another history: the root at 5 differs
    for i in range(3):
        with log.store.transaction():
            log.append({"event": "lookup", "n": 100 + i}, time_ms=T0 + 100 + i)
    report = log.verify(roots_at=[5])
    assert report.ok and report.entries == 6
    [kgz, _] = compare_with_witnesses(report, witnessed)
    assert (kgz.ok, kgz.problem) == (
        False, "the log's first 5 entries are not the ones KGZ-BS witnessed at size 5 "
               "(another root: rewritten or forked)")
