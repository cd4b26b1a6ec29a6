"""RegistryKeeper: applying verified versions, refusing bad ones (audited, trust unchanged).

Peers are simulated in memory (TUF's repository-simulator style): a fetcher maps
(node id, version) to document bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from node.core.errors import ConfigError, EnvironmentFault
from node.federation.registry import (
    MAX_REGISTRY_BYTES,
    NodeEntry,
    Registry,
    RegistryError,
    format_time,
)
from node.federation.registry_directory import RegistryDirectory
from node.federation.registry_edit import RevokeNode, draft_next
from node.federation.registry_keeper import RegistryKeeper
from node.store.sqlcipher import Store
from tests.unit.federation._support import DAY, NOW, World


class Audit:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def append(self, event: dict[str, Any], *, time_ms: int) -> int:
        self.entries.append(event)
        return len(self.entries)


class Peers:
    """In-memory peers: ``docs[node_id][version]``; version 0 is the newest."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[int, bytes]] = {}
        self.calls: list[tuple[str, int]] = []

    def serve(self, node_id: str, *regs: Registry | bytes) -> None:
        d = self.docs.setdefault(node_id, {})
        for r in regs:
            raw = r if isinstance(r, bytes) else r.to_bytes()
            v = r.version if isinstance(r, Registry) else 999
            d[v] = raw
            d[0] = raw

    def fetch(self, peer: NodeEntry, version: int) -> bytes:
        self.calls.append((peer.node_id, version))
        try:
            return self.docs[peer.node_id][version]
        except KeyError:
            raise EnvironmentFault("no such version", reason="registry_version_unknown") from None


class Env:
    def __init__(self, tmp: Path) -> None:
        self.w = World()
        self.v1 = self.w.sign(self.w.signed(), "KAZ", "KGZ", "UZB")
        self.path = tmp / "registry.json"
        self.path.write_bytes(self.v1.to_bytes())
        self.store = Store.open(tmp / "node.db", os.urandom(32), create=True)
        self.audit = Audit()
        self.peers = Peers()
        self.now = NOW
        self.keeper = self.open()

    def open(self) -> RegistryKeeper:
        trusted = RegistryKeeper.trusted_version(store=self.store, path=self.path)
        k = RegistryKeeper(
            directory=RegistryDirectory(registry=trusted, clock_ms=lambda: self.now),
            store=self.store, audit=self.audit, path=self.path, node_id="KAZ-BS",
            clock_ms=lambda: self.now, fetcher=self.peers)
        k.start()
        return k

    def version(self, v: int, *states: str, **over: Any) -> Registry:
        return self.w.sign(self.w.signed(v, **over), *(states or ("KAZ", "KGZ", "UZB")))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.audit.entries if e["event"] == name]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.store.close()


def test_first_start_records_the_anchor(env: Env) -> None:
    [applied] = env.events("registry_applied")
    assert (applied["version"], applied["source"], applied["digest"]) == (1, "anchor",
                                                                         env.v1.digest)
    assert env.keeper.document(1) is not None and env.keeper.document(0) == env.v1.to_bytes()


def test_newer_versions_are_fetched_walked_and_applied(env: Env) -> None:
    v2, v3 = env.version(2), env.version(3)
    env.peers.serve("KGZ-BS", v2, v3)
    report = env.keeper.refresh_once()
    assert report.applied == [3] and env.keeper.directory.current.version == 3
    assert ("KGZ-BS", 2) in env.peers.calls  # the missing version was walked
    assert [e["version"] for e in env.events("registry_applied")] == [1, 2, 3]
    assert json.loads(env.path.read_bytes())["signed"]["version"] == 3
    # a restart trusts the database, not an older file
    env.path.write_bytes(env.v1.to_bytes())
    assert env.open().directory.current.version == 3


def test_revocation_applies_to_the_live_directory(env: Env) -> None:
    d = env.keeper.directory
    d.member("UZB-BS")
    v2 = env.w.sign(draft_next(env.v1, [RevokeNode("UZB-BS")], now_ms=NOW), "KAZ", "KGZ", "TJK")
    env.peers.serve("KGZ-BS", v2)
    env.keeper.refresh_once()
    with pytest.raises(Exception) as err:
        d.member("UZB-BS")
    assert getattr(err.value, "reason", "") == "node_revoked"


def _bad_documents(env: Env) -> dict[str, bytes]:
    w = env.w
    rogue = nacl.signing.SigningKey.generate()
    v2 = env.version(2)
    dup = v2.document()
    dup["signatures"] = [dup["signatures"][0]] * 3
    big = v2.to_bytes()[:-2] + b" " * MAX_REGISTRY_BYTES + b"}\n"
    return {
        "unsigned": w.sign(w.signed(2)).to_bytes(),
        "under_signed": env.version(2, "KAZ", "KGZ").to_bytes(),
        "rollback": env.v1.to_bytes(),
        "expired": env.version(2, expires=format_time(NOW - DAY)).to_bytes(),
        "malformed": b'{"signed": {"type": "bxnode-registry"}, "signatures": []}',
        "oversized": big,
        "unknown_signer": w.sign(w.signed(2), "KAZ", "KGZ", "UZB", keys=(rogue,)).to_bytes(),
        "duplicate_signature": json.dumps(dup).encode(),
        "version_gap": env.version(5).to_bytes(),
    }


def test_each_bad_document_is_refused_audited_and_changes_nothing(env: Env) -> None:
    for reason, raw in _bad_documents(env).items():
        before = (env.keeper.directory.current, env.path.read_bytes())
        with pytest.raises(RegistryError) as err:
            env.keeper.offer([raw], source="peer:KGZ-BS")
        assert err.value.reason == reason
        assert (env.keeper.directory.current, env.path.read_bytes()) == before
        last = env.audit.entries[-1]
        assert (last["event"], last["reason"], last["source"]) == (
            "registry_refused", reason, "peer:KGZ-BS")
    assert env.keeper.document(2) is None


def test_a_peer_serving_a_bad_document_is_audited_once(env: Env) -> None:
    env.peers.serve("KGZ-BS", env.version(2, "KAZ"))
    for _ in range(3):
        report = env.keeper.refresh_once()
        assert report.refused == [("KGZ-BS", "under_signed")]
    assert len(env.events("registry_refused")) == 1
    env.peers.serve("UZB-BS", env.version(2))  # a good peer still gets us there
    assert env.keeper.refresh_once().applied == [2]


def test_a_newer_file_is_applied_an_older_one_ignored(env: Env) -> None:
    env.path.write_bytes(env.version(2).to_bytes())
    assert env.keeper.check_file() is not None and env.keeper.directory.current.version == 2
    env.path.write_bytes(env.v1.to_bytes())
    assert env.keeper.check_file() is None and env.keeper.directory.current.version == 2


def test_unreachable_peers_are_reported(env: Env) -> None:
    report = env.keeper.refresh_once()
    assert sorted(report.unreachable) == ["KGZ-BS", "UZB-BS"]


def test_a_bad_anchor_stops_the_node(tmp_path: Path) -> None:
    w = World()
    path = tmp_path / "registry.json"
    path.write_bytes(w.sign(w.signed(), "KAZ").to_bytes())
    store = Store.open(tmp_path / "n.db", os.urandom(32), create=True)
    try:
        with pytest.raises(ConfigError) as err:
            RegistryKeeper.trusted_version(store=store, path=path)
        assert err.value.reason == "bad_registry" and "under_signed" in str(err.value)
    finally:
        store.close()
