"""The restore hold and the log's epochs, on a real SQLCipher file, witnessed sans network.

A held log signs nothing and appends nothing (whatever the caller: keyed or not), lifting
the hold lets it sign again; a reset's epoch changes the origin line, not the tree; a
witness refuses the new origin until the federation lists it (``log_origin_unlisted``,
its first checkpoint kept as evidence), then starts it from zero, keeps the old one's end
as ``log_reset`` evidence and refuses the old origin from then on (``log_superseded``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest

from node.audit.checkpoint import Checkpoint
from node.audit.checkpoint_witness import (
    AddCheckpointRequest,
    LogOriginUnlisted,
    LogSuperseded,
    UnknownLog,
)
from node.audit.hold import (
    HOLD_KEY,
    AuditLogOnHold,
    RestoreHold,
    hold_of,
    lift_hold,
    log_epoch,
    place_hold,
    set_epoch,
)
from node.audit.log import MerkleAuditLog, log_verifiers
from node.audit.note import parse_note
from node.audit.origins import epoch_of, log_origin, split_epoch
from node.audit.verification import WitnessedHead, judge_restored
from node.audit.witnessing import WitnessDesk
from node.core.errors import ConfigError
from node.core.members import Member, MemberKey, StaticDirectory
from node.store.sqlcipher import Store

KEY = bytes(range(7, 39))
LOG_SK = nacl.signing.SigningKey(bytes(range(32)))
W_SK = nacl.signing.SigningKey(bytes(range(1, 33)))
T0 = 1_763_900_000_000


def _member(node_id: str, key: nacl.signing.SigningKey, log_epoch: int = 1) -> Member:
    return Member(node_id=node_id, country=node_id[:3], agency="x", endpoint="127.0.0.1:1",
                  roles=("node",), tls_cert_sha256=(), log_epoch=log_epoch,
                  keys=(MemberKey("k0", bytes(key.verify_key), revoked=False),))


class SwappableDirectoryStandIn:
    """Stand-in for the registry directory's swap on an applied version: a
    :class:`StaticDirectory` replaced in place (the desk must read it per request)."""

    def __init__(self, inner: StaticDirectory) -> None:
        self.inner = inner

    def member(self, node_id: str) -> Member:
        return self.inner.member(node_id)

    def members(self) -> tuple[Member, ...]:
        return self.inner.members()

    def owner_of_tls_cert(self, fingerprint_hex: str) -> str | None:
        return self.inner.owner_of_tls_cert(fingerprint_hex)

    def sender_of(self, fingerprint_hex: str) -> str:
        return self.inner.sender_of(fingerprint_hex)


DIRECTORY = StaticDirectory(members=(_member("KAZ-BS", LOG_SK), _member("KGZ-BS", W_SK)))
HOLD = RestoreHold(since_ms=T0, backup_created_ms=T0 - 5, backup_size=3,
                   detail="its witnesses have not been asked yet what they hold")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "n.db", KEY, create=True)
    yield s
    s.close()


def _append(log: MerkleAuditLog, n: int, start: int = 0) -> None:
    for i in range(n):
        with log.store.transaction():
            log.append({"event": "lookup", "n": start + i}, time_ms=T0 + start + i)


def test_origins_of_epochs() -> None:
    assert log_origin("KAZ-BS") == "bxnode/KAZ-BS"
    assert log_origin("KAZ-BS", 2) == "bxnode/KAZ-BS/log-2"
    assert split_epoch("bxnode/KAZ-BS/log-17") == ("bxnode/KAZ-BS", 17)
    # log-1 and log-01 are no epoch forms: the first epoch has no suffix
    assert split_epoch("bxnode/KAZ-BS/log-1") == ("bxnode/KAZ-BS/log-1", 1)
    assert split_epoch("bxnode/KAZ-BS/log-02") == ("bxnode/KAZ-BS/log-02", 1)
    assert epoch_of("bxnode/KAZ-BS/log-3", "KAZ-BS") == 3
    assert epoch_of("bxnode/KGZ-BS/log-3", "KAZ-BS") is None
    with pytest.raises(ValueError):
        log_origin("KAZ-BS", 0)


def test_a_held_log_signs_nothing_and_appends_nothing(store: Store) -> None:
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=LOG_SK)
    _append(log, 3)
    place_hold(store, HOLD)
    assert hold_of(store) == HOLD
    with pytest.raises(AuditLogOnHold) as exc:
        _append(log, 1, start=3)
    assert exc.value.reason == "audit_log_on_hold" and exc.value.status == "UNAVAILABLE"
    assert "size 3" in exc.value.message and "reset-log" in exc.value.message
    keyless = MerkleAuditLog(store=store, node_id="KAZ-BS")  # read-only tools: refused too
    with pytest.raises(AuditLogOnHold):
        _append(keyless, 1, start=3)
    assert log.next_seq() == 4 and log.latest_head().size == 3  # type: ignore[union-attr]
    lift_hold(store)
    _append(log, 1, start=3)
    assert log.latest_head().size == 4  # type: ignore[union-attr]


def test_an_unreadable_hold_record_still_holds(store: Store) -> None:
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=LOG_SK)
    with store.transaction():
        store.set_meta(HOLD_KEY, "{not json")
    with pytest.raises(AuditLogOnHold, match="unreadable"):
        _append(log, 1)
    with store.transaction():
        store.set_meta("audit:origin_epoch", "zero")
    with pytest.raises(ConfigError, match="epoch"):
        log_epoch(store)


def test_a_new_epoch_changes_the_origin_not_the_tree(store: Store) -> None:
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=LOG_SK)
    _append(log, 3)
    with store.transaction():
        set_epoch(store, 2)
        log.append({"event": "audit_log_reset"}, time_ms=T0 + 9)
    heads = log.heads()
    assert [Checkpoint.parse(parse_note(h.note).text).origin for h in heads] == [
        "bxnode/KAZ-BS"] * 3 + ["bxnode/KAZ-BS/log-2"]
    assert log.current_origin() == "bxnode/KAZ-BS/log-2"
    report = log.verify(verifiers=log_verifiers("KAZ-BS", [bytes(LOG_SK.verify_key)]))
    assert report.ok and report.entries == 4 and report.checkpoints == 4


def _desk(tmp_path: Path) -> tuple[WitnessDesk, Store]:
    w = Store.open(tmp_path / "w.db", KEY, create=True)
    return WitnessDesk(store=w, node_id="KGZ-BS", signing_key=W_SK, directory=DIRECTORY), w


def test_a_witness_starts_a_new_origin_and_closes_the_old(store: Store, tmp_path: Path) -> None:
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=LOG_SK)
    _append(log, 3)
    directory = SwappableDirectoryStandIn(DIRECTORY)
    w = Store.open(tmp_path / "w.db", KEY, create=True)
    desk = WitnessDesk(store=w, node_id="KGZ-BS", signing_key=W_SK, directory=directory)
    try:
        old = log.head(3)
        assert old is not None
        desk.add_checkpoint(AddCheckpointRequest(0, (), old.note).to_bytes(), now_ms=T0)
        with store.transaction():
            set_epoch(store, 2)
            log.append({"event": "audit_log_reset"}, time_ms=T0 + 9)
        new = log.latest_head()
        assert new is not None and new.size == 4
        first = AddCheckpointRequest(0, (), new.note).to_bytes()
        # the federation still lists epoch 1: refused, kept as evidence, nothing cosigned
        for attempt in range(2):
            with pytest.raises(LogOriginUnlisted) as unlisted:
                desk.add_checkpoint(first, now_ms=T0 + 10 + attempt)
            assert (unlisted.value.reason, unlisted.value.status) == (
                "log_origin_unlisted", "FAILED_PRECONDITION")
        assert desk.status(our_size=0).witnessed_logs == {"bxnode/KAZ-BS": 3}
        [kept] = desk.evidence()  # once per origin, however often it is offered
        assert kept["reason"] == "log_origin_unlisted" and kept["stored_note"] is None
        assert kept["origin"] == "bxnode/KAZ-BS/log-2"
        assert kept["submitted_note"] == new.note.decode()
        assert not desk.status(our_size=0).alert
        # governance records the reset: the same checkpoint is accepted from size 0
        directory.inner = StaticDirectory(members=(_member("KAZ-BS", LOG_SK, 2),
                                                   _member("KGZ-BS", W_SK)))
        desk.add_checkpoint(first, now_ms=T0 + 10)
        assert desk.status(our_size=0).witnessed_logs == {
            "bxnode/KAZ-BS": 3, "bxnode/KAZ-BS/log-2": 4}
        [_, reset] = desk.evidence()
        assert reset["reason"] == "log_reset" and reset["origin"] == "bxnode/KAZ-BS"
        assert reset["stored_note"] == old.note.decode()
        assert reset["submitted_note"] == new.note.decode()
        assert not desk.status(our_size=0).alert  # a declared reset is no misbehaviour
        # the old origin is closed: even its own consistent extension is refused
        with store.transaction():
            set_epoch(store, 1)
            log.append({"event": "lookup"}, time_ms=T0 + 11)
        later = log.latest_head()
        assert later is not None
        proof = log.consistency_proof(3, later.size)
        with pytest.raises(LogSuperseded) as exc:
            desk.add_checkpoint(AddCheckpointRequest(3, tuple(proof), later.note).to_bytes(),
                                now_ms=T0 + 12)
        assert (exc.value.reason, exc.value.status) == ("log_superseded", "FAILED_PRECONDITION")
        # and a witness that never saw epoch 2 refuses epoch 1 once the registry lists 2
        fresh = Store.open(tmp_path / "w2.db", KEY, create=True)
        try:
            other = WitnessDesk(store=fresh, node_id="KGZ-BS", signing_key=W_SK,
                                directory=directory)
            with pytest.raises(LogSuperseded):
                other.add_checkpoint(AddCheckpointRequest(0, (), old.note).to_bytes(),
                                     now_ms=T0 + 12)
        finally:
            fresh.close()
        assert desk.status(our_size=0).witnessed_logs["bxnode/KAZ-BS"] == 3
        # what it holds of each origin is still answered, the old one's included
        note, _ = desk.witnessed_checkpoint("bxnode/KAZ-BS", now_ms=T0 + 13)
        assert note == old.note
        with pytest.raises(UnknownLog):  # an epoch of a node it does not follow
            desk.witnessed_checkpoint("bxnode/UZB-BS/log-2", now_ms=T0 + 13)
    finally:
        w.close()




def test_judge_restored_fails_closed(store: Store) -> None:
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=LOG_SK)
    _append(log, 3)
    keys = log_verifiers("KAZ-BS", [bytes(LOG_SK.verify_key)])
    head = log.latest_head()
    assert head is not None
    report = log.verify(verifiers=keys, roots_at=[3])
    same = WitnessedHead("KGZ-BS", 3, head.root)
    ahead = WitnessedHead("KGZ-BS", 5, b"\x01" * 32)
    other = WitnessedHead("KGZ-BS", 3, b"\x02" * 32)
    assert judge_restored(report, [same], witnesses=["KGZ-BS"], failed={}).ok
    j = judge_restored(report, [ahead], witnesses=["KGZ-BS"], failed={})
    assert not j.ok and "witnessed size 5" in j.detail and j.witnessed == {"KGZ-BS": 5}
    assert "another root" in judge_restored(report, [other], witnesses=["KGZ-BS"],
                                            failed={}).detail
    j = judge_restored(report, [same], witnesses=["KGZ-BS", "UZB-BS"],
                       failed={"UZB-BS": "UNAVAILABLE/"})
    assert not j.ok and "UZB-BS" in j.detail and "UNAVAILABLE" in j.detail
    assert not judge_restored(report, [], witnesses=[], failed={}).ok


def test_a_held_node_neither_cosigns_nor_answers_as_a_witness(store: Store,
                                                              tmp_path: Path) -> None:
    """Its witness state may be older than what it cosigned before the restore."""
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=LOG_SK)
    _append(log, 2)
    desk, w = _desk(tmp_path)
    try:
        head = log.latest_head()
        assert head is not None
        place_hold(w, HOLD)
        with pytest.raises(AuditLogOnHold):
            desk.add_checkpoint(AddCheckpointRequest(0, (), head.note).to_bytes(), now_ms=T0)
        with pytest.raises(AuditLogOnHold):
            desk.witnessed_checkpoint("bxnode/KAZ-BS", now_ms=T0)
        assert desk.status(our_size=0).witnessed_logs == {}
        lift_hold(w)
        desk.add_checkpoint(AddCheckpointRequest(0, (), head.note).to_bytes(), now_ms=T0)
        assert desk.status(our_size=0).witnessed_logs == {"bxnode/KAZ-BS": 2}
    finally:
        w.close()


def test_a_bundle_of_a_later_epoch_verifies_once_the_federation_lists_it(
        store: Store) -> None:
    from node.audit.bundle import BundleError, make_bundle, verify_bundle

    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=LOG_SK)
    _append(log, 2)
    before = make_bundle(log, 2, node_id="KAZ-BS")
    with store.transaction():
        set_epoch(store, 2)
        log.append({"event": "audit_log_reset"}, time_ms=T0 + 9)
    bundle = make_bundle(log, 3, node_id="KAZ-BS")
    with pytest.raises(BundleError) as exc:  # an unannounced reset
        verify_bundle(bundle, directory=DIRECTORY, quorum=0)
    assert (exc.value.reason, exc.value.status) == ("log_origin_unlisted",
                                                    "FAILED_PRECONDITION")
    assert "bxnode/KAZ-BS/log-2" in exc.value.message
    listed = StaticDirectory(members=(_member("KAZ-BS", LOG_SK, 2), _member("KGZ-BS", W_SK)))
    report = verify_bundle(bundle, directory=listed, quorum=0)
    assert (report.log, report.seq, report.tree_size) == ("KAZ-BS", 3, 3)
    # entries of the origin before the recorded reset stay verifiable
    assert verify_bundle(before, directory=listed, quorum=0).tree_size == 2
