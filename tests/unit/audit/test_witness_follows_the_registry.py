"""The witness follows the registry as it is now, not as it was when the node started.

A registry version applied while the node runs (node/federation/registry_directory.py
swaps it in place) changes whose logs this node witnesses and with which keys: a log key
the federation revoked must stop being trusted at once, a rotated-in key and a new
member's log must be trusted without a restart, and a revoked node's log is no longer
followed.  Real registries signed by generated governance keys, a real SQLCipher store.
"""

from __future__ import annotations

from pathlib import Path

import nacl.signing
import pytest

from node.audit.checkpoint_witness import AddCheckpointRequest, CheckpointNotTrusted, UnknownLog
from node.audit.log import MerkleAuditLog, log_origin
from node.audit.witnessing import WitnessDesk
from node.core.errors import ConfigError, EnvironmentFault
from node.federation.registry_directory import RegistryDirectory
from node.federation.registry_edit import RevokeNode, draft_next
from node.store.sqlcipher import Store
from tests.unit.federation._support import DAY, NOW, World

KEY = bytes(range(5, 37))


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> int:
        return self.t


def _first_checkpoint(tmp_path: Path, name: str, node: str,
                      key: nacl.signing.SigningKey) -> bytes:
    """``node``'s first checkpoint (3 entries), signed with ``key``, as a request body."""
    store = Store.open(tmp_path / f"{name}.db", KEY, create=True)
    try:
        log = MerkleAuditLog(store=store, node_id=node, signing_key=key)
        for i in range(3):
            with store.transaction():
                log.append({"event": "lookup", "n": i}, time_ms=NOW + i)
        head = log.latest_head()
        assert head is not None and head.size == 3
        return AddCheckpointRequest(0, (), head.note).to_bytes()
    finally:
        store.close()


def test_a_registry_applied_while_the_node_runs_changes_whose_logs_it_witnesses(
        tmp_path: Path) -> None:
    w = World()
    v1 = w.sign(w.signed(members=[w.member("KAZ-BS", 0), w.member("KGZ-BS", 1)]),
                "KAZ", "KGZ", "UZB")
    clock = Clock()
    directory = RegistryDirectory(registry=v1, clock_ms=clock)
    store = Store.open(tmp_path / "kaz.db", KEY, create=True)
    desk = WitnessDesk(store=store, node_id="KAZ-BS", signing_key=w.node_keys["KAZ-BS"],
                       directory=directory)
    old_key, new_key = w.node_keys["KGZ-BS"], nacl.signing.SigningKey.generate()
    signed_old = _first_checkpoint(tmp_path, "kgz-old", "KGZ-BS", old_key)
    signed_new = _first_checkpoint(tmp_path, "kgz-new", "KGZ-BS", new_key)
    uzb = _first_checkpoint(tmp_path, "uzb", "UZB-BS", w.node_keys["UZB-BS"])
    try:
        with pytest.raises(UnknownLog):  # not a member yet
            desk.add_checkpoint(uzb, now_ms=NOW)
        with pytest.raises(CheckpointNotTrusted):  # a key the registry does not list
            desk.add_checkpoint(signed_new, now_ms=NOW)

        # v2: KGZ-BS's key compromised, revoked, a new one listed; UZB-BS joins
        kgz = w.member("KGZ-BS", 1)
        kgz["signing_keys"] += w.member("KGZ-BS", 1, key=new_key)["signing_keys"]
        v2 = w.sign(w.signed(version=2, members=[w.member("KAZ-BS", 0), kgz,
                                                 w.member("UZB-BS", 2)],
                             revoked=[{"key_id": w.kid("KGZ-BS"), "reason": "key compromised"}]),
                    "KAZ", "KGZ", "UZB")
        directory.swap(v2)
        with pytest.raises(CheckpointNotTrusted):  # the revoked key counts no more
            desk.add_checkpoint(signed_old, now_ms=NOW)
        assert desk.add_checkpoint(signed_new, now_ms=NOW)  # the new key, no restart
        assert desk.add_checkpoint(uzb, now_ms=NOW)  # the new member's log
        note, line = desk.witnessed_checkpoint(log_origin("KGZ-BS"), now_ms=NOW)
        assert note and line

        # v3: KGZ-BS revoked as a node: its log is no longer followed
        v3 = w.sign(draft_next(v2, [RevokeNode("KGZ-BS", "left the federation")],
                               now_ms=NOW), "KAZ", "UZB", "TJK")
        directory.swap(v3)
        with pytest.raises(UnknownLog):
            desk.witnessed_checkpoint(log_origin("KGZ-BS"), now_ms=NOW)
        assert desk.witnessed_checkpoint(log_origin("UZB-BS"), now_ms=NOW)[0]

        # and an expired registry witnesses nothing (fail closed, as every request)
        clock.t = NOW + 400 * DAY
        with pytest.raises(EnvironmentFault) as exc:
            desk.add_checkpoint(uzb, now_ms=clock.t)
        assert exc.value.reason == "registry_expired"
    finally:
        store.close()


def test_a_node_with_no_peer_logs_refuses_until_one_joins(tmp_path: Path) -> None:
    w = World()
    v1 = w.sign(w.signed(members=[w.member("KAZ-BS", 0)]), "KAZ", "KGZ", "UZB")
    directory = RegistryDirectory(registry=v1, clock_ms=Clock())
    store = Store.open(tmp_path / "kaz.db", KEY, create=True)
    desk = WitnessDesk(store=store, node_id="KAZ-BS", signing_key=w.node_keys["KAZ-BS"],
                       directory=directory)
    kgz = _first_checkpoint(tmp_path, "kgz", "KGZ-BS", w.node_keys["KGZ-BS"])
    try:
        with pytest.raises(ConfigError) as exc:
            desk.add_checkpoint(kgz, now_ms=NOW)
        assert exc.value.reason == "no_logs_to_witness"
        directory.swap(w.sign(w.signed(version=2, members=[w.member("KAZ-BS", 0),
                                                           w.member("KGZ-BS", 1)]),
                              "KAZ", "KGZ", "UZB"))
        assert desk.add_checkpoint(kgz, now_ms=NOW)
    finally:
        store.close()
