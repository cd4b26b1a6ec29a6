"""A member listing several addresses: real bxnode servers over mTLS on 127.0.0.1.

KGZ-BS asks KAZ-BS, whose entry in KGZ's members file lists a failing address first and
KAZ's real server after it.  The failing address is either a port with nothing listening,
or :class:`SilentListener`, a stand-in for a replica that accepts TCP and never answers.
Deadlines are short (the client's per-attempt share is capped) so the tests stay fast.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.app import now_ms, open_store
from node.client.failover import Attempt, Delivery, PeerUnreachable
from node.client.peer import LookupOutcome, PeerClient, QueryContext
from node.config import load_config
from node.core import envelope as env_mod
from node.core.errors import RemoteError
from node.core.model import DocumentQuery, Outcome, QueryKind
from node.federation.members_file import load_members
from node.federation.pki import TlsMaterial
from tests.federation import CTX, Federation, file_signing_key, free_port

pytestmark = pytest.mark.integration

DOC = DocumentQuery(number="N0481516", issuing_state="KAZ")


class SilentListener:
    """A stand-in for a replica that accepts TCP connections and never sends a byte (a hung
    process, or a load balancer in front of one): TLS never completes, every call to it
    runs into its deadline.  Counts the connections it accepted."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self._sock.settimeout(0.05)  # lets the thread see the stop flag
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read or written

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    listener = SilentListener()
    yield listener
    listener.close()


def dead_address() -> str:
    return f"127.0.0.1:{free_port()}"  # bound once, then closed: nothing listens there


class Asker:
    """A node's peer client (KGZ-BS unless told), reading KAZ-BS's addresses from a members
    file of its own."""

    def __init__(self, fed: Federation, tmp: Path, kaz_endpoint: list[str],
                 as_node: str = "KGZ-BS") -> None:
        members = json.loads((fed.root / "members.json").read_text())
        for m in members["members"]:
            if m["node_id"] == "KAZ-BS":
                m["endpoint"] = kaz_endpoint
        path = tmp / "members-seen-by-asker.json"
        path.write_text(json.dumps(members))
        d = fed.dirs[as_node]
        cfg = load_config(d)
        self.store = open_store(cfg)
        self.client = PeerClient(
            node_id=as_node, signing_key=file_signing_key(cfg),
            directory=load_members(path),
            tls=TlsMaterial.from_files(cert=d / "tls.crt", key=d / "tls.key", ca=d / "ca.crt"),
            store=self.store, clock_ms=now_ms, timeout_s=10.0, attempt_timeout_s=0.5)

    def lookup(self, ctx: QueryContext = CTX) -> LookupOutcome:
        return self.client.lookup_outcome("KAZ-BS", ctx, QueryKind.DOCUMENT, [DOC])

    def close(self) -> None:
        self.client.close()
        self.store.close()


def live(fed: Federation) -> str:
    return f"127.0.0.1:{fed.ports['KAZ-BS']}"


def entries_for(fed: Federation, node: str, digest: bytes) -> list[dict[str, Any]]:
    return [e for e in fed.audit(node) if e.get("request_digest") == digest.hex()]


def test_a_dead_first_address_passes_the_same_request_to_the_live_one(
        fed: Federation, tmp_path: Path) -> None:
    dead = dead_address()
    asker = Asker(fed, tmp_path, [dead, live(fed)])
    try:
        out = asker.lookup()
    finally:
        asker.close()
    ex = out.exchange
    assert (ex.address, out.answer.responder) == (live(fed), "KAZ-BS")
    assert out.answer.results[0].outcome is Outcome.HIT
    assert ex.attempts == (Attempt(dead, "UNAVAILABLE", Delivery.NOT_SENT),
                           Attempt(live(fed), "OK"))
    digest = env_mod.digest(ex.request)
    [answered] = entries_for(fed, "KAZ-BS", digest)  # exactly one entry at the responder
    assert (answered["requester"], answered["outcome"], answered["seq"]) == (
        "KGZ-BS", "answered", out.answer.audit_seq)
    # the requester recorded both attempts of the one signed request
    mine = entries_for(fed, "KGZ-BS", digest)
    assert [(e["event"], e["address"], e["outcome"]) for e in mine] == [
        ("lookup_sent", dead, "unanswered"), ("lookup_sent", live(fed), "answered")]
    assert (mine[0]["status"], mine[0]["reason"], mine[0]["delivery"]) == (
        "UNAVAILABLE", "peer_unavailable", "not_sent")
    assert mine[1]["peer_audit_seq"] == out.answer.audit_seq


def test_a_silent_first_address_runs_into_its_deadline_and_a_fresh_request_goes_on(
        fed: Federation, tmp_path: Path, silent: SilentListener) -> None:
    asker = Asker(fed, tmp_path, [silent.address, live(fed)])
    try:
        out = asker.lookup()
    finally:
        asker.close()
    ex = out.exchange
    assert ex.address == live(fed) and out.answer.results[0].outcome is Outcome.HIT
    assert ex.attempts == (Attempt(silent.address, "DEADLINE_EXCEEDED", Delivery.MAYBE_SENT),
                           Attempt(live(fed), "OK"))
    assert len(silent.accepted) == 1  # the first request did go out on a connection
    mine = [e for e in fed.audit("KGZ-BS") if e.get("event") == "lookup_sent"][-2:]
    first, second = mine
    assert (first["address"], first["outcome"], first["status"], first["delivery"]) == (
        silent.address, "unanswered", "DEADLINE_EXCEEDED", "maybe_sent")
    assert (second["address"], second["outcome"]) == (live(fed), "answered")
    assert second["request_digest"] == env_mod.digest(ex.request).hex()
    assert first["request_digest"] != second["request_digest"]  # a fresh nonce, re-signed
    assert out.answer.request_digest == env_mod.digest(ex.request)
    # the responder logged the fresh request once, and never saw the first one
    assert len(entries_for(fed, "KAZ-BS", env_mod.digest(ex.request))) == 1
    assert entries_for(fed, "KAZ-BS", bytes.fromhex(first["request_digest"])) == []


def test_a_refusal_from_the_first_address_is_not_tried_elsewhere(
        fed: Federation, tmp_path: Path, silent: SilentListener) -> None:
    asker = Asker(fed, tmp_path, [live(fed), silent.address], as_node="UZB-BS")
    before = len(fed.audit("KAZ-BS"))
    ctx = QueryContext(operator="officer-7", purpose="criminal_investigation",
                       legal_basis="art. 7", case_ref="CASE-F")
    try:
        with pytest.raises(RemoteError) as err:
            asker.lookup(ctx)
    finally:
        asker.close()
    assert (err.value.status, err.value.reason) == ("PERMISSION_DENIED", "purpose_not_agreed")
    assert silent.accepted == []  # the second address was never even connected to
    entries = fed.audit("KAZ-BS")
    assert len(entries) == before + 1
    assert (entries[-1]["requester"], entries[-1]["outcome"], entries[-1]["reason"]) == (
        "UZB-BS", "denied", "purpose_not_agreed")
    sent = [e for e in fed.audit("UZB-BS") if e.get("event") == "lookup_sent"][-1]
    assert (sent["address"], sent["outcome"], sent["status"]) == (
        live(fed), "refused", "PERMISSION_DENIED")


def test_when_no_address_answers_the_error_names_each(
        fed: Federation, tmp_path: Path, silent: SilentListener) -> None:
    dead = dead_address()
    asker = Asker(fed, tmp_path, [dead, silent.address])
    try:
        with pytest.raises(PeerUnreachable) as err:
            asker.lookup()
    finally:
        asker.close()
    assert (err.value.status, err.value.reason) == ("UNAVAILABLE", "peer_unavailable")
    assert str(err.value) == (
        f"peer KAZ-BS did not answer: {dead} unavailable (not delivered); "
        f"{silent.address} deadline_exceeded (may have been delivered)")
