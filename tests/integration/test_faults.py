"""Faults under a serving node (issue 12 section 4): real processes, mTLS on 127.0.0.1.

Each test breaks one thing under a node while peers keep asking, and asserts three things:

(a) what every peer's request got while the fault lasted (exact status and reason);
(b) that every answered request has its audit entry, with the seq the answer carries, and
    that no request refused for want of a durable entry left one (client answers compared
    with the node's log by request digest);
(c) that the node recovers by itself once the fault ends: health SERVING again, a new
    request answered, ``bxnode audit verify`` passing — without a restart.

The faults: the disk under the database full (a tmpfs the test mounts); the database file
locked by another process; the OPA server down (a held, slow one is
tests/integration/test_slow_policy.py); a peer that accepts connections and never answers;
a network partition between two nodes in network namespaces.  A SIGKILL in the middle of
a batch is tests/integration/test_audit_crash.py.  Tests needing root (mount, namespaces)
skip with one line saying why when the machine does not allow it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from node.app import now_ms
from node.cli.main import main as bxnode
from node.client.peer import PeerClient
from node.config import load_config
from node.core import envelope as env_mod
from node.core.errors import BxError, RemoteError
from node.core.model import DocumentQuery, Outcome, QueryKind
from node.federation.members_file import load_members
from node.federation.pki import TlsMaterial, load_signing_key
from tests.federation import CTX, Federation, make_federation
from tests.integration.test_audit_crash import Serve

pytestmark = pytest.mark.integration

DOC = DocumentQuery(number="N0481516", issuing_state="KAZ")  # a hit in KAZ's demo watchlist
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


# --- helpers ---------------------------------------------------------------------------------

def poll(cond: Callable[[], bool], *, timeout: float, what: str, every: float = 0.05) -> None:
    """Wait (bounded) until ``cond()`` holds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def health(fed: Federation, node: str, *, as_node: str = "UZB-BS") -> int:
    """The node's grpc.health.v1 status for the empty service name, over mTLS."""
    d = fed.dirs[as_node]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{fed.ports[node]}", creds) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=3)
    return int(answer.status)


@dataclass
class Asked:
    """One request as its client saw it: answered (with the seq the answer carries) or
    refused (status, reason)."""

    digest: str
    status: str
    reason: str = ""
    audit_seq: int | None = None


def peer_client(fed: Federation, node: str, *, timeout_s: float = 10.0,
                members: Path | None = None) -> PeerClient:
    """A client signing as ``node`` (no receipts kept), each call bounded by ``timeout_s``."""
    d = fed.dirs[node]
    cfg = load_config(d)
    return PeerClient(
        node_id=node, signing_key=load_signing_key(cfg.signing_key),
        directory=load_members(members or cfg.members),
        tls=TlsMaterial.from_files(cert=d / "tls.crt", key=d / "tls.key", ca=d / "ca.crt"),
        store=None, clock_ms=now_ms, timeout_s=timeout_s)


def ask(client: PeerClient, peer: str) -> Asked:
    request = client.build(CTX, QueryKind.DOCUMENT, [DOC])
    digest = env_mod.digest(request).hex()
    try:
        out = client.send_outcome(peer, request, expected_items=1)
    except RemoteError as exc:
        return Asked(digest, exc.status, exc.reason)
    except BxError as exc:  # the client gave up (no answer, deadline)
        return Asked(digest, getattr(exc, "status", "?"), exc.reason)
    assert out.answer.results[0].outcome is Outcome.HIT
    return Asked(digest, "OK", audit_seq=out.answer.audit_seq)


def assert_audited_exactly(fed: Federation, node: str, asked: list[Asked]) -> None:
    """(b): every answer has its one entry (seq as answered); a request refused for want
    of a durable entry, or never answered, left none — and nothing else was logged for
    these digests."""
    by_digest: dict[str, list[dict[str, Any]]] = {}
    for e in fed.audit(node):
        if e.get("request_digest"):
            by_digest.setdefault(str(e["request_digest"]), []).append(e)
    for a in asked:
        entries = by_digest.get(a.digest, [])
        if a.status == "OK":
            assert [(e["seq"], e["outcome"]) for e in entries] == [(a.audit_seq, "answered")], a
        elif a.reason in ("audit_unavailable", "deadline_exceeded", "peer_unavailable"):
            assert entries == [], f"{a} was not answered but left {entries}"
        else:  # a refusal the node answered: audited with its reason
            assert [(e["outcome"], e["reason"]) for e in entries] in (
                [("denied", a.reason)], [("rejected", a.reason)]), a


def audit_verify(fed: Federation, node: str) -> None:
    assert bxnode(["audit", "verify", "--node-dir", str(fed.dirs[node])]) == 0


def set_toml(node_dir: Path, section: str, key: str, value: str) -> None:
    """Set ``key = value`` in ``[section]`` of node.toml (replacing it, or adding it)."""
    path = node_dir / "node.toml"
    lines = path.read_text().splitlines()
    start = lines.index(f"[{section}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")),
               len(lines))
    for i in range(start + 1, end):
        if lines[i].split("=")[0].strip() == key:
            lines[i] = f"{key} = {value}"
            break
    else:
        lines.insert(start + 1, f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def fed(tmp_path: Path) -> Federation:
    return make_federation(tmp_path)


# --- 1. the disk under the database full ------------------------------------------------------

@contextlib.contextmanager
def small_filesystem(where: Path, size_mb: int) -> Iterator[Path]:
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("disk full: mounting a small filesystem needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700",
                           "bxnode-faults", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"disk full: cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(fs: Path) -> Path:
    """Write zeros to ``fs`` until the filesystem refuses (ENOSPC)."""
    filler = fs / "filler"
    chunk = b"\0" * (64 * 1024)
    with filler.open("wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    return filler


def test_disk_full_under_the_database(fed: Federation, tmp_path: Path) -> None:
    kaz = fed.dirs["KAZ-BS"]
    db_size = (kaz / "node.db").stat().st_size
    with small_filesystem(tmp_path / "dbfs", size_mb=db_size // 2**20 + 8) as fs:
        shutil.move(kaz / "node.db", fs / "node.db")
        set_toml(kaz, "storage", "path", f'"{fs / "node.db"}"')
        node = Serve(kaz)
        kgz, uzb = (peer_client(fed, n, timeout_s=5) for n in ("KGZ-BS", "UZB-BS"))
        asked: list[Asked] = []
        try:
            asked.append(ask(kgz, "KAZ-BS"))
            assert asked[-1].status == "OK"
            filler = fill(fs)
            during = [ask(c, "KAZ-BS") for c in (kgz, uzb, kgz, uzb)]
            asked += during
            # (a) each peer is told, precisely, that nothing could be made durable
            assert [(a.status, a.reason) for a in during] == [
                ("UNAVAILABLE", "audit_unavailable")] * 4
            poll(lambda: health(fed, "KAZ-BS") == NOT_SERVING, timeout=10,
                 what="health NOT_SERVING while the disk is full")
            assert ask(kgz, "KAZ-BS").reason == "audit_unavailable"  # still full: still no
            node.wait_for('"reason": "database_full"')  # the log names the cause
            assert node.proc.poll() is None, "the node died: " + "".join(node.lines[-20:])
            filler.unlink()  # (c) space again: the node finds out by itself
            poll(lambda: health(fed, "KAZ-BS") == SERVING, timeout=10,
                 what="health SERVING once space is free")
            after = [ask(c, "KAZ-BS") for c in (uzb, kgz)]
            asked += after
            assert [a.status for a in after] == ["OK", "OK"]
        finally:
            kgz.close()
            uzb.close()
            node.stop()
        assert_audited_exactly(fed, "KAZ-BS", asked)
        audit_verify(fed, "KAZ-BS")
