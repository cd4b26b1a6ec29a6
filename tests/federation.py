"""Test federation: real nodes, real mTLS on 127.0.0.1, real SQLCipher files, real Rego.

Each node is initialised with ``bxnode init --dev`` from keys/dev, imports the
demo watchlist with ``bxnode watchlist import``, and serves with the same
:class:`NodeServer` that ``bxnode serve`` runs, on its own event loop thread.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import nacl.signing

from node.app import NodeRuntime, now_ms, open_store
from node.audit.log import MerkleAuditLog
from node.cli.main import main as bxnode
from node.client.peer import PeerClient, QueryContext
from node.config import NodeConfig, load_config
from node.core.model import DocumentQuery, QueryKind
from node.federation.devkeys import dev_registry
from node.federation.directory import load_directory
from node.federation.members_file import load_members
from node.federation.pki import TlsMaterial, load_signing_key
from node.server.assemble import build_server
from node.server.grpc_server import REASON_KEY
from node.server.registry_service import refresh
from node.wire.trailers import trailers

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "keys" / "dev"
DEMO = ROOT / "deployments" / "demo"
FOLDERS = {"KAZ-BS": "kaz", "KGZ-BS": "kgz", "UZB-BS": "uzb", "TJK-BS": "tjk"}
WATCHLISTS = {"KAZ-BS": "kaz-watchlist.csv", "KGZ-BS": "kgz-watchlist.jsonl",
              "UZB-BS": "uzb-watchlist.csv"}
CTX = QueryContext(operator="officer-7", purpose="border_check",
                   legal_basis="Agreement on border cooperation, art. 7", case_ref="CASE-1")


def file_signing_key(cfg: NodeConfig) -> nacl.signing.SigningKey:
    """The node's signing key from its key file (a test node keeps none in a token)."""
    assert isinstance(cfg.signing_key, Path), cfg.signing_key
    return load_signing_key(cfg.signing_key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningNode:
    """A node's gRPC server on a private event loop thread."""

    def __init__(self, node_dir: Path, listen: str, **build: Any) -> None:
        self.dir = node_dir
        self.cfg = load_config(node_dir)
        self.listen = listen
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runtime = NodeRuntime.load(self.cfg)
        self.server = build_server(self.runtime, tls=NodeRuntime.tls(self.cfg), **build)
        self.port = asyncio.run_coroutine_threadsafe(
            self.server.start(listen), self.loop).result(10)

    def refresh_registry(self) -> Any:
        """One registry refresh (file, then peers) on the node's own loop, as serving does."""
        keeper = self.runtime.registry
        assert keeper is not None, "this node has no registry configured"
        run = self.server.writer.run_in_batch if self.server.writer is not None else None
        return asyncio.run_coroutine_threadsafe(
            refresh(keeper, run) if run is not None else refresh(keeper), self.loop).result(30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(0.5), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.runtime.close()


@dataclass
class Federation:
    root: Path
    dirs: dict[str, Path]
    ports: dict[str, int]
    nodes: dict[str, RunningNode] = field(default_factory=dict)

    def start(self, node_id: str, **build: Any) -> RunningNode:
        """``build``: keyword arguments for :func:`build_server` (e.g. a moved clock)."""
        node = RunningNode(self.dirs[node_id], f"127.0.0.1:{self.ports[node_id]}", **build)
        self.nodes[node_id] = node
        return node

    def restart(self, node_id: str) -> RunningNode:
        self.nodes.pop(node_id).stop()
        return self.start(node_id)

    def stop_all(self) -> None:
        for n in list(self.nodes.values()):
            n.stop()
        self.nodes.clear()

    def client(self, node_id: str, *, store: bool = True, tls_of: str | None = None,
               members: Path | None = None) -> PeerClient:
        """A peer client signing as ``node_id``; ``tls_of`` presents another node's TLS cert."""
        d = self.dirs[node_id]
        cfg = load_config(d)
        tls_dir = self.dirs[tls_of] if tls_of else d
        directory: Any
        if cfg.registry is not None and members is None:  # the node's own, live directory
            running = self.nodes.get(node_id)
            directory = (running.runtime.directory if running is not None
                         else load_directory(cfg, store=None, clock_ms=now_ms))
        else:
            directory = load_members(members or cfg.members)
        return PeerClient(
            node_id=node_id, signing_key=file_signing_key(cfg),
            directory=directory,
            tls=TlsMaterial.from_files(cert=tls_dir / "tls.crt", key=tls_dir / "tls.key",
                                       ca=tls_dir / "ca.crt"),
            store=open_store(cfg) if store else None, clock_ms=now_ms)

    def raw_call(self, as_node: str, peer: str, payload: bytes) -> tuple[grpc.StatusCode, str]:
        """Send raw bytes to ``peer``'s Lookup over mTLS as ``as_node``; (status, reason)."""
        d = self.dirs[as_node]
        creds = grpc.ssl_channel_credentials(
            root_certificates=(d / "ca.crt").read_bytes(),
            private_key=(d / "tls.key").read_bytes(),
            certificate_chain=(d / "tls.crt").read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{self.ports[peer]}", creds) as ch:
            call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(
                "/bxnode.v1.NodeService/Lookup")
            try:
                call(payload, timeout=10)
            except grpc.RpcError as err:
                return err.code(), str(trailers(err).get(REASON_KEY, ""))
        return grpc.StatusCode.OK, ""

    def audit(self, node_id: str) -> list[dict[str, Any]]:
        store = open_store(load_config(self.dirs[node_id]))
        try:
            return list(MerkleAuditLog(store=store).bodies())
        finally:
            store.close()


def ask_document(fed: Federation, asker: str, owner: str, number: str,
                 issuing_state: str = "KAZ") -> Any:
    """One document lookup: ``asker`` asks ``owner`` about ``number`` (a LookupAnswer;
    a refusal raises RemoteError)."""
    client = fed.client(asker)
    try:
        return client.lookup(owner, CTX, QueryKind.DOCUMENT,
                             [DocumentQuery(number=number, issuing_state=issuing_state)])
    finally:
        client.close()


def make_federation(root: Path, node_ids: tuple[str, ...] = ("KAZ-BS", "KGZ-BS", "UZB-BS"),
                    policy_data: dict[str, Any] | None = None,
                    members_edit: Any = None, registry: bool = False,
                    registry_nodes: tuple[str, ...] | None = None) -> Federation:
    """Initialise nodes (not yet started).  ``policy_data`` replaces policies/data.json.

    ``registry=True``: the nodes use a signed registry (``root/registry.json``, version 1,
    signed 3 of 5 by the dev governance keys) listing ``registry_nodes`` (default: all),
    installed on each listed node with ``bxnode registry publish``.
    """
    ports = {n: free_port() for n in node_ids}
    members = json.loads((DEV / "members.json").read_text())
    members["members"] = [m for m in members["members"] if m["node_id"] in node_ids]
    for m in members["members"]:
        m["endpoint"] = f"127.0.0.1:{ports[m['node_id']]}"
    if members_edit is not None:
        members_edit(members)
    (root / "members.json").write_text(json.dumps(members))
    policy_dir = root / "policies"
    shutil.copytree(ROOT / "policies", policy_dir)
    if policy_data is not None:
        (policy_dir / "data.json").write_text(json.dumps(policy_data))
    dirs = {}
    for node_id in node_ids:
        d = root / FOLDERS[node_id]
        rc = bxnode(["init", "--node-dir", str(d), "--node-id", node_id,
                     "--country", node_id[:3], "--dev", "--dev-keys", str(DEV / FOLDERS[node_id]),
                     "--listen", f"127.0.0.1:{ports[node_id]}",
                     "--members", str(root / "members.json"), "--policy-dir", str(policy_dir),
                     "--operator", "officer-7", "--contact", f"{node_id} desk"])
        assert rc == 0
        if node_id in WATCHLISTS:
            assert bxnode(["watchlist", "import", str(DEMO / WATCHLISTS[node_id]),
                           "--node-dir", str(d)]) == 0
        dirs[node_id] = d
    if registry:
        listed = registry_nodes or node_ids
        reg = dev_registry([m for m in members["members"] if m["node_id"] in listed],
                           now_ms=now_ms())
        (root / "registry.json").write_bytes(reg.to_bytes())
        for node_id in listed:
            assert bxnode(["registry", "publish", str(root / "registry.json"),
                           "--node-dir", str(dirs[node_id])]) == 0
    return Federation(root=root, dirs=dirs, ports=ports)


def sample_policy() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "policies" / "data.json").read_text())
    return data
