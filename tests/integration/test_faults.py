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
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from node.app import now_ms, open_store
from node.audit.receipts import fetch_inclusion_proof
from node.cli.main import main as bxnode
from node.client.peer import PeerClient
from node.config import load_config
from node.core import envelope as env_mod
from node.core.errors import BxError, RemoteError
from node.core.model import DocumentQuery, Outcome, QueryKind
from node.federation.members_file import load_members
from node.federation.pki import TlsMaterial
from tests.federation import CTX, ROOT, Federation, file_signing_key, make_federation
from tests.grpc_clients import health_stub
from tests.integration.test_audit_crash import Serve
from tests.integration.test_failover_client import SilentListener
from tests.unit.policy.standin_opa import StandInOpaServer
from tests.waiting import until

pytestmark = pytest.mark.integration

DOC = DocumentQuery(number="N0481516", issuing_state="KAZ")  # a hit in KAZ's demo watchlist
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


# --- helpers ---------------------------------------------------------------------------------

def poll(cond: Callable[[], bool], *, timeout: float, what: str, every: float = 0.05) -> None:
    """Wait (bounded) until ``cond()`` holds (tests/waiting.py)."""
    until(what, cond, timeout=timeout, every=every)


def health(fed: Federation, node: str, *, as_node: str = "UZB-BS") -> int:
    """The node's grpc.health.v1 status for the empty service name, over mTLS."""
    d = fed.dirs[as_node]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{fed.ports[node]}", creds) as ch:
        stub = health_stub(ch)
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
    outcome: Outcome | None = None


def peer_client(fed: Federation, node: str, *, timeout_s: float = 10.0,
                members: Path | None = None) -> PeerClient:
    """A client signing as ``node`` (no receipts kept), each call bounded by ``timeout_s``."""
    d = fed.dirs[node]
    cfg = load_config(d)
    return PeerClient(
        node_id=node, signing_key=file_signing_key(cfg),
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
    return Asked(digest, "OK", audit_seq=out.answer.audit_seq,
                 outcome=out.answer.results[0].outcome)


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
            assert a.outcome is (Outcome.HIT if node == "KAZ-BS" else Outcome.NO_HIT), a
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
        # a request's info line says what became durable: none for the five not answered
        lines = [json.loads(ln) for ln in node.lines if ln.startswith("{")]
        assert [x["outcome"] for x in lines if x.get("event") == "lookup"] == ["answered"] * 3
        assert sum(x.get("event") == "request_not_durable" for x in lines) == 5


# --- 2. the database file locked by another process -------------------------------------------

LOCKER = """
import sys, sqlcipher3
conn = sqlcipher3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA key = \\"x'" + sys.stdin.readline().strip() + "'\\"")
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT OR REPLACE INTO meta VALUES ('held_by_another_process', '1')")
print("locked", flush=True)
sys.stdin.readline()  # hold the lock until told
conn.execute("ROLLBACK")
"""


#: Another bxnode writer of the file (the CLI beside the node, ``serve --workers``) stuck
#: while it holds the writers' flock on ``<db>.lock`` (node/store/sqlcipher/flock.py).
FLOCK_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1] + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
sys.stdin.readline()  # the key: unused, the flock needs none
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()  # hold the lock until told
"""


@pytest.mark.parametrize("script", [LOCKER, FLOCK_HOLDER], ids=["sqlite_lock", "writers_flock"])
def test_database_locked_by_another_process(fed: Federation, script: str) -> None:
    """Another process holds ``BEGIN EXCLUSIVE`` on the file (or, as a stuck bxnode writer
    would, the writers' flock) for longer than a peer's deadline.  The node's batch waits
    ``[storage] busy_timeout_s`` (2 s here; 5 s by default, below the peers' usual 10 s
    deadline) and then refuses, precisely, before the peer's deadline; health says
    NOT_SERVING; released, the node serves again by itself."""
    kaz = fed.dirs["KAZ-BS"]
    set_toml(kaz, "storage", "busy_timeout_s", "2")
    node = Serve(kaz)
    kgz, uzb = (peer_client(fed, n, timeout_s=10) for n in ("KGZ-BS", "UZB-BS"))
    asked = [ask(kgz, "KAZ-BS")]
    locker = subprocess.Popen([sys.executable, "-c", script, str(kaz / "node.db")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert asked[0].status == "OK"
        assert locker.stdin is not None and locker.stdout is not None
        locker.stdin.write((kaz / "db.key").read_text().strip() + "\n")
        locker.stdin.flush()
        assert locker.stdout.readline().strip() == "locked"
        for client in (kgz, uzb):
            started = time.monotonic()
            a = ask(client, "KAZ-BS")
            waited = time.monotonic() - started
            asked.append(a)
            # (a) refused after the busy timeout, well inside the peer's 10 s deadline
            assert (a.status, a.reason) == ("UNAVAILABLE", "audit_unavailable"), a
            assert 1.9 < waited < 9, waited
        poll(lambda: health(fed, "KAZ-BS") == NOT_SERVING, timeout=10,
             what="health NOT_SERVING while the file is locked")
        node.wait_for('"reason": "database_locked"')
        locker.stdin.write("release\n")  # (c) the other process lets go
        locker.stdin.flush()
        assert locker.wait(10) == 0
        poll(lambda: health(fed, "KAZ-BS") == SERVING, timeout=15,
             what="health SERVING once the lock is released")
        after = [ask(c, "KAZ-BS") for c in (uzb, kgz)]
        asked += after
        assert [a.status for a in after] == ["OK", "OK"]
    finally:
        if locker.poll() is None:
            locker.kill()
            locker.wait(5)
        kgz.close()
        uzb.close()
        node.stop()
    assert_audited_exactly(fed, "KAZ-BS", asked)
    audit_verify(fed, "KAZ-BS")


# --- 3. the OPA server down -------------------------------------------------------------------

class Relay:
    """A TCP relay from ``127.0.0.1:port`` to ``target`` that can be taken down (its port
    then refuses connections, as a dead server's does) and brought back on the same port.
    With ``netns``, its listening and outgoing sockets live in that network namespace."""

    def __init__(self, target: tuple[str, int], *, port: int = 0,
                 netns: str | None = None) -> None:
        self.target = target
        self.port = port
        self.netns = netns
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.open()

    def open(self) -> None:
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        if not ready.wait(5):
            raise AssertionError("relay did not start")

    def _serve(self, ready: threading.Event) -> None:
        if self.netns is not None:
            enter_netns(self.netns)  # this thread only: its sockets are in the namespace
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen()
        self.port = s.getsockname()[1]
        self._listener = s
        ready.set()
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return  # closed
            try:
                out = socket.create_connection(self.target, timeout=3)
            except OSError:
                conn.close()
                continue
            out.settimeout(None)
            with self._lock:
                self._conns += [conn, out]
            for a, b in ((conn, out), (out, conn)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            # shutdown first: close() alone does not wake the thread blocked in accept(),
            # and that accept would still take one more connection and relay it
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self._conns = []


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        b.shutdown(socket.SHUT_WR)


def test_opa_server_down(fed: Federation) -> None:
    """With ``[policy] opa_url``, a dead OPA server (connection refused) makes every lookup
    a fail-closed refusal (UNAVAILABLE/policy_unavailable, audited as denied) while a
    request the policy does not judge (an inclusion proof) is still answered; when the
    server is back the next lookup is answered, with nothing restarted.  A *slow* (held)
    OPA server is tests/integration/test_slow_policy.py."""
    opa = StandInOpaServer(policy_dir=fed.root / "policies")
    with opa:
        relay = Relay(("127.0.0.1", int(opa.url.rsplit(":", 1)[1])))
        try:
            kaz = fed.dirs["KAZ-BS"]
            set_toml(kaz, "policy", "opa_url", f'"http://127.0.0.1:{relay.port}"')
            set_toml(kaz, "policy", "cache", "false")  # every decision asked of the server
            fed.start("KAZ-BS")
            kgz, uzb = (peer_client(fed, n) for n in ("KGZ-BS", "UZB-BS"))
            try:
                asked = [ask(kgz, "KAZ-BS")]
                assert asked[0].status == "OK"
                relay.close()  # the OPA server is gone: its port refuses connections
                during = [ask(c, "KAZ-BS") for c in (kgz, uzb)]
                asked += during
                assert [(a.status, a.reason) for a in during] == [
                    ("UNAVAILABLE", "policy_unavailable")] * 2
                # another kind of request, not judged by the policy, is still answered
                proof = fetch_inclusion_proof(
                    kgz, "KAZ-BS", CTX, bytes.fromhex(asked[0].digest), store=None,
                    now_ms=now_ms(), directory=load_members(load_config(kaz).members))
                assert proof.seq == asked[0].audit_seq
                assert health(fed, "KAZ-BS") == SERVING  # the node itself is well
                relay.open()  # back, on the same address
                after = [ask(c, "KAZ-BS") for c in (uzb, kgz)]
                asked += after
                assert [a.status for a in after] == ["OK", "OK"]
            finally:
                kgz.close()
                uzb.close()
                fed.stop_all()
        finally:
            relay.close()
    assert_audited_exactly(fed, "KAZ-BS", asked)
    proofs = [e for e in fed.audit("KAZ-BS") if e.get("event") != "lookup"
              and e.get("requester") == "KGZ-BS"]
    assert [e["outcome"] for e in proofs] == ["answered"]
    audit_verify(fed, "KAZ-BS")


# --- 4. a peer that accepts the connection and never answers ----------------------------------

def test_a_silent_peer_does_not_hold_up_serving(fed: Federation) -> None:
    """KGZ-BS's address accepts TCP and never sends a byte.  KAZ-BS's own calls to it
    (witnessing, every second here) run into their deadline off the event loop, while
    KAZ-BS keeps answering every peer — KGZ-BS's own requests included — promptly; once
    KGZ-BS really serves there, KAZ-BS's checkpoint is cosigned by it, nothing restarted."""
    kaz = fed.dirs["KAZ-BS"]
    set_toml(kaz, "audit", "witness_interval_s", "1")
    set_toml(kaz, "audit", "witnesses", '["KGZ-BS"]')
    silent = SilentOn(fed.ports["KGZ-BS"])
    node = Serve(kaz)
    kgz, uzb = (peer_client(fed, n, timeout_s=5) for n in ("KGZ-BS", "UZB-BS"))
    asked: list[Asked] = []
    try:
        asked.append(ask(uzb, "KAZ-BS"))  # a checkpoint to witness
        poll(lambda: len(silent.accepted) >= 1, timeout=10,
             what="KAZ-BS's witnessing to connect to the silent peer")
        slowest = 0.0
        for client in (uzb, kgz, uzb, kgz, uzb, kgz):  # while that call hangs
            started = time.monotonic()
            asked.append(ask(client, "KAZ-BS"))
            slowest = max(slowest, time.monotonic() - started)
        assert [a.status for a in asked] == ["OK"] * 7
        assert slowest < 1.5, slowest
        assert health(fed, "KAZ-BS") == SERVING
        node.wait_for('"event": "witness_unavailable"', timeout=20)  # its 10 s deadline
        assert '"peer": "KGZ-BS"' in next(ln for ln in node.lines
                                          if '"witness_unavailable"' in ln)
        silent.close()  # (c) the peer comes back for real on its address
        fed.start("KGZ-BS")
        poll(lambda: _cosigned_by(fed, "KAZ-BS", "KGZ-BS"), timeout=20, every=0.3,
             what="KAZ-BS's checkpoint cosigned by KGZ-BS")
        asked.append(ask(kgz, "KAZ-BS"))
        assert asked[-1].status == "OK"
    finally:
        silent.close()
        kgz.close()
        uzb.close()
        node.stop()
        fed.stop_all()
    assert_audited_exactly(fed, "KAZ-BS", asked)
    audit_verify(fed, "KAZ-BS")


class SilentOn(SilentListener):
    """:class:`SilentListener` on a given port (where the real peer will serve later)."""

    def __init__(self, port: int) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen()
        self._sock.settimeout(0.05)
        self.address = f"127.0.0.1:{port}"
        self.accepted = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()


def _cosigned_by(fed: Federation, node: str, witness: str) -> bool:
    store = open_store(load_config(fed.dirs[node]))
    try:
        return bool(store.query("SELECT size FROM audit_cosignatures WHERE witness LIKE ?",
                                (f"%{witness}%",)))
    finally:
        store.close()


# --- 5. a network partition between two nodes on the same machine ----------------------------

_CLONE_NEWNET = 0x40000000


def enter_netns(name: str) -> None:
    """Move the calling thread (only it) into network namespace ``name`` (setns(2))."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
    finally:
        os.close(fd)


def ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *(("-n", netns) if netns else ()), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise OSError(f"{' '.join(cmd)}: {done.stderr.strip()}")


@dataclass
class Namespaces:
    """Two network namespaces (KAZ's and KGZ's machines), each linked to the test's own
    namespace (where the third peer asks from) and to each other by veth pairs."""

    kaz: str
    kgz: str
    link: str  # KAZ's end of the KAZ-KGZ veth: down is the partition

    #: Each end's address.  The root namespace is shared with every other test run on the
    #: machine, so each run takes subnets of its own (from its tag): two runs on one
    #: 10.201.1.0/24 would route one's connections into the other's namespaces, where
    #: nothing listens on its ports (a refusal once seen as a flaky partition test).
    addr: dict[str, str]

    @staticmethod
    def addresses(k: int) -> dict[str, str]:
        """Three /24 subnets for run ``k`` (0 <= k < 10880): 10.<64..191>.<0..254>."""
        b, c = 64 + k // 85, (k % 85) * 3
        return {"root-kaz": f"10.{b}.{c}.1", "kaz-root": f"10.{b}.{c}.2",
                "root-kgz": f"10.{b}.{c + 1}.1", "kgz-root": f"10.{b}.{c + 1}.2",
                "kaz-kgz": f"10.{b}.{c + 2}.1", "kgz-kaz": f"10.{b}.{c + 2}.2"}


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("partition: network namespaces need root and ip(8)")
    k = os.getpid() % 10880
    tag = f"{k}"
    ns = Namespaces(kaz=f"bxf{tag}kaz", kgz=f"bxf{tag}kgz", link=f"bxf{tag}ab",
                    addr=Namespaces.addresses(k))
    made: list[str] = []
    try:
        for name in (ns.kaz, ns.kgz):
            ip("netns", "add", name)
            made.append(name)
            ip("link", "set", "lo", "up", netns=name)
        pairs = [(f"bxf{tag}ra", None, "root-kaz", f"bxf{tag}ar", ns.kaz, "kaz-root"),
                 (f"bxf{tag}rb", None, "root-kgz", f"bxf{tag}br", ns.kgz, "kgz-root"),
                 (ns.link, ns.kaz, "kaz-kgz", f"bxf{tag}ba", ns.kgz, "kgz-kaz")]
        for left, lns, laddr, right, rns, raddr in pairs:
            ip("link", "add", left, "type", "veth", "peer", "name", right)
            for dev, where, addr in ((left, lns, laddr), (right, rns, raddr)):
                if where is not None:
                    ip("link", "set", dev, "netns", where)
                ip("addr", "add", f"{ns.addr[addr]}/24", "dev", dev, netns=where)
                ip("link", "set", dev, "up", netns=where)
    except OSError as exc:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)
        subprocess.run(["ip", "link", "del", f"bxf{tag}ra"], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", f"bxf{tag}rb"], check=False, capture_output=True)
        pytest.skip(f"partition: cannot create network namespaces here ({exc})")
    try:
        yield ns
    finally:
        for name in made:  # deleting a namespace deletes its veth ends, and their peers
            subprocess.run(["ip", "netns", "del", name], check=False)


class NsServe:
    """``bxnode serve`` as a real process inside a network namespace."""

    def __init__(self, node_dir: Path, netns: str) -> None:
        (node_dir / "serve.port").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "node.cli.main", "serve",
             "--node-dir", str(node_dir)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        poll(lambda: (node_dir / "serve.port").exists() or self.proc.poll() is not None,
             timeout=20, what=f"{node_dir.name} to start")
        if self.proc.poll() is not None:
            raise AssertionError("node did not start: " + "".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)


def query_from(netns: str, node_dir: Path, peer: str) -> dict[str, Any]:
    """``bxnode query doc --json`` run on the asking node's machine (its namespace)."""
    done = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "node.cli.main", "--json",
         "query", "doc", "--node-dir", str(node_dir), "--number", DOC.number,
         "--state", DOC.issuing_state, "--peer", peer, "--purpose", "border_check",
         "--case-ref", "CASE-P", "--legal-basis", "art. 7"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_network_partition_between_two_nodes(fed: Federation, namespaces: Namespaces) -> None:
    """KAZ-BS and KGZ-BS run in namespaces of their own; the link between them goes down.
    Their requests to each other fail (each side's own outgoing calls too, witnessing
    included) while each keeps answering the third peer; the link comes back and they talk
    again, without a restart."""
    ns, a = namespaces, namespaces.addr
    pa, pb = fed.ports["KAZ-BS"], fed.ports["KGZ-BS"]
    for node, port in (("KAZ-BS", pa), ("KGZ-BS", pb)):
        set_toml(fed.dirs[node], "server", "listen", f'"0.0.0.0:{port}"')
        set_toml(fed.dirs[node], "audit", "witness_interval_s", "1")
    # Every peer is at 127.0.0.1:<its port> (what the certificates name) on every machine:
    # relays carry that over the veth links, so a link down is a real partition.
    relays = [Relay((a["kaz-root"], pa), port=pa), Relay((a["kgz-root"], pb), port=pb),
              Relay((a["kaz-kgz"], pa), port=pa, netns=ns.kgz),
              Relay((a["kgz-kaz"], pb), port=pb, netns=ns.kaz)]
    kaz = NsServe(fed.dirs["KAZ-BS"], ns.kaz)
    kgz = NsServe(fed.dirs["KGZ-BS"], ns.kgz)
    uzb = peer_client(fed, "UZB-BS", timeout_s=5)
    asked: dict[str, list[Asked]] = {"KAZ-BS": [], "KGZ-BS": []}
    try:
        before = query_from(ns.kgz, fed.dirs["KGZ-BS"], "KAZ-BS")  # they talk
        assert (before["hits"], before["verified"]) == (1, True), before
        poll(lambda: _cosigned_size(fed, "KAZ-BS", "KGZ-BS") > 0, timeout=20, every=0.3,
             what="KAZ-BS's checkpoint cosigned by KGZ-BS across the link")

        ip("link", "set", ns.link, "down", netns=ns.kaz)  # the partition
        mark = len(kaz.lines)
        for netns, me, peer in ((ns.kgz, "KGZ-BS", "KAZ-BS"), (ns.kaz, "KAZ-BS", "KGZ-BS")):
            started = time.monotonic()
            failed = query_from(netns, fed.dirs[me], peer)  # (a) fails, and says so
            assert failed["error"]["status"] == "UNAVAILABLE", failed
            assert failed["error"]["reason"] == "peer_unavailable", failed
            assert time.monotonic() - started < 30
        for peer in ("KAZ-BS", "KGZ-BS", "KAZ-BS", "KGZ-BS"):  # each answers its other peer
            started = time.monotonic()
            asked[peer].append(ask(uzb, peer))
            # (on failure, KAZ-BS's log since the partition: an unexplained flake seen twice
            # on a loaded machine, UZB-BS's call to KAZ-BS not sent within its 5 s)
            assert asked[peer][-1].status == "OK", (asked[peer][-1], kaz.lines[mark:][-30:])
            assert time.monotonic() - started < 1.5
        poll(lambda: any('"witness_unavailable"' in ln and '"KGZ-BS"' in ln
                         for ln in kaz.lines[mark:]), timeout=20,
             what="KAZ-BS's witnessing to fail across the partition")
        cut_off = _cosigned_size(fed, "KAZ-BS", "KGZ-BS")

        ip("link", "set", ns.link, "up", netns=ns.kaz)  # (c) healed: they talk again
        after = query_from(ns.kgz, fed.dirs["KGZ-BS"], "KAZ-BS")
        assert (after["hits"], after["verified"]) == (1, True), after
        back = query_from(ns.kaz, fed.dirs["KAZ-BS"], "KGZ-BS")
        assert back["verified"] is True and "error" not in back, back
        poll(lambda: _cosigned_size(fed, "KAZ-BS", "KGZ-BS") > cut_off, timeout=20,
             every=0.3, what="KAZ-BS's newer checkpoint cosigned by KGZ-BS after healing")
        for peer in ("KAZ-BS", "KGZ-BS"):
            asked[peer].append(ask(uzb, peer))
            assert asked[peer][-1].status == "OK"
    finally:
        uzb.close()
        kaz.stop()
        kgz.stop()
        for r in relays:
            r.close()
    for peer in ("KAZ-BS", "KGZ-BS"):
        assert_audited_exactly(fed, peer, asked[peer])
        assert_sent_match_received(fed, asker=peer, peer=next(
            p for p in ("KAZ-BS", "KGZ-BS") if p != peer))
        audit_verify(fed, peer)


def assert_sent_match_received(fed: Federation, *, asker: str, peer: str) -> None:
    """(b) across the link: each of the asker's logged ``lookup_sent`` answered has the
    peer's entry with that digest and seq; each unanswered one left nothing at the peer."""
    received = {e["request_digest"]: e for e in fed.audit(peer) if e.get("request_digest")}
    sent = [e for e in fed.audit(asker) if e.get("event") == "lookup_sent"]
    assert sorted(e["outcome"] for e in sent) == sorted(
        ["answered"] * (2 if asker == "KGZ-BS" else 1) + ["unanswered"]), sent
    for e in sent:
        if e["outcome"] == "answered":
            got = received[e["request_digest"]]
            assert (got["seq"], got["outcome"], got["requester"]) == (
                e["peer_audit_seq"], "answered", asker)
        else:
            assert (e["status"], e["delivery"]) == ("UNAVAILABLE", "not_sent"), e
            assert e["request_digest"] not in received, e


def _cosigned_size(fed: Federation, node: str, witness: str) -> int:
    store = open_store(load_config(fed.dirs[node]))
    try:
        row = store.query_one("SELECT max(size) FROM audit_cosignatures WHERE witness LIKE ?",
                              (f"%{witness}%",))
        return int(row[0]) if row and row[0] is not None else 0
    finally:
        store.close()
