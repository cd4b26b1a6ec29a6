"""Several ``bxnode serve`` replicas of one node on one PostgreSQL database (issue 10).

Two real ``bxnode serve`` processes (KAZ-BS, A and B) share a private PostgreSQL cluster
and the node's key files; KAZ-BS's endpoint lists both addresses.  Peers talk to them over
mTLS on 127.0.0.1 exactly as to a single node.  The tests show: a nonce one replica
accepted is refused by the other, daily quotas are exact across replicas, one Merkle log
in one total order, a replica killed with SIGKILL mid-load loses nothing that was
acknowledged, and health follows the database.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from node.audit.log import MerkleAuditLog
from node.cli.main import main as bxnode
from node.client.peer import PeerClient
from node.config import load_config
from node.core import envelope as env_mod
from node.core.errors import BxError
from node.core.model import DocumentQuery, PartialDate, PersonQuery, QueryKind, Sex
from node.federation.members_file import load_members
from node.store.open import open_database
from node.wire.convert import pb
from node.wire.trailers import trailers
from tests.federation import (
    CTX,
    DEMO,
    ROOT,
    WATCHLISTS,
    Federation,
    free_port,
    make_federation,
    sample_policy,
)
from tests.grpc_clients import health_stub
from tests.integration.test_audit_crash import Serve
from tests.pgcluster import PgCluster, to_postgresql
from tests.waiting import until

pytestmark = pytest.mark.integration

QUOTA = 6  # UZB-BS may ask KAZ-BS about this many items a day, across both replicas


@dataclass
class Replicated:
    fed: Federation
    a: Path
    b: Path
    ports: tuple[int, int]
    cluster: PgCluster
    serves: dict[str, Serve]

    def start(self, which: str) -> Serve:
        serve = Serve(self.a if which == "A" else self.b)
        self.serves[which] = serve
        return serve

    def port(self, which: str) -> int:
        return self.ports[0] if which == "A" else self.ports[1]


@pytest.fixture
def replicated(request: pytest.FixtureRequest, tmp_path: Path, pg_cluster: PgCluster,
               pg_dsn: str) -> Iterator[Replicated]:
    """Replicas A and B of KAZ-BS; ``indirect`` parameters change UZB-BS's agreement
    (e.g. ``{"burst": 4}``), but ``busy_timeout_s``, which goes to both replicas'
    ``[storage]``."""
    b_port = free_port()
    data = sample_policy()
    param = dict(getattr(request, "param", {}))
    busy = param.pop("busy_timeout_s", None)
    for ag in data["bxnode"]["agreements"]:
        if (ag["requester"], ag["responder"]) == ("UZB-BS", "KAZ-BS"):
            ag["daily_quota"] = QUOTA
            ag.update(param)

    def two_addresses(members: dict[str, Any]) -> None:
        for m in members["members"]:
            if m["node_id"] == "KAZ-BS":
                m["endpoint"] = [m["endpoint"], f"127.0.0.1:{b_port}"]

    fed = make_federation(tmp_path, policy_data=data, members_edit=two_addresses)
    a = fed.dirs["KAZ-BS"]
    to_postgresql(a, dsn=pg_dsn, password=pg_cluster.password, field_key="5a" * 32,
                  listen=None)
    b = tmp_path / "kaz-b"
    shutil.copytree(a, b, ignore=shutil.ignore_patterns("node.db*", "*.sock", "serve.port"))
    to_postgresql(b, dsn=pg_dsn, password=pg_cluster.password, field_key="5a" * 32,
                  listen=f"127.0.0.1:{b_port}")
    if busy is not None:
        for d in (a, b):
            toml = d / "node.toml"
            toml.write_text(toml.read_text().replace(
                "[storage]\n", f"[storage]\nbusy_timeout_s = {busy}\n", 1))
    assert bxnode(["store", "migrate", "--node-dir", str(a)]) == 0
    assert bxnode(["watchlist", "import", str(DEMO / WATCHLISTS["KAZ-BS"]),
                   "--node-dir", str(a)]) == 0
    rep = Replicated(fed=fed, a=a, b=b, ports=(fed.ports["KAZ-BS"], b_port),
                     cluster=pg_cluster, serves={})
    for n in ("KGZ-BS", "UZB-BS"):
        fed.start(n)
    try:
        rep.start("A")
        rep.start("B")
        yield rep
    finally:
        for s in rep.serves.values():
            if s.proc.poll() is None:
                s.stop()
        fed.stop_all()
        if not pg_cluster.running:
            pg_cluster.start()


def _creds(fed: Federation, node: str) -> grpc.ChannelCredentials:
    d = fed.dirs[node]
    return grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())


def _send_to(fed: Federation, port: int, env_bytes: bytes) -> tuple[grpc.StatusCode, str]:
    """One signed Lookup envelope to one replica, as UZB-BS over mTLS."""
    with grpc.secure_channel(f"127.0.0.1:{port}", _creds(fed, "UZB-BS")) as ch:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(
            "/bxnode.v1.NodeService/Lookup")
        try:
            call(env_bytes, timeout=10)
        except grpc.RpcError as err:
            assert isinstance(err, grpc.Call)
            return err.code(), str(trailers(err).get("bxnode-reason", ""))
    return grpc.StatusCode.OK, ""


def _health(fed: Federation, port: int) -> int:
    with grpc.secure_channel(f"127.0.0.1:{port}", _creds(fed, "UZB-BS")) as ch:
        return int(health_stub(ch).Check(health_pb2.HealthCheckRequest(service=""),
                                         timeout=5).status)


def _signed(client: PeerClient, number: str) -> bytes:
    env = client.build(CTX, QueryKind.DOCUMENT, [DocumentQuery(number=number,
                                                               issuing_state="KAZ")])
    from node.wire import convert

    return bytes(pb.LookupRequest(envelope=convert.envelope_to_pb(env)).SerializeToString())


def _audit(rep: Replicated) -> list[dict[str, Any]]:
    db = open_database(load_config(rep.a))
    try:
        return list(MerkleAuditLog(store=db).bodies())
    finally:
        db.close()


def _only(rep: Replicated, which: str) -> Path:
    """A members file for a client that knows only one replica."""
    members = json.loads((rep.fed.root / "members.json").read_text())
    for m in members["members"]:
        if m["node_id"] == "KAZ-BS":
            m["endpoint"] = f"127.0.0.1:{rep.port(which)}"
    path = rep.fed.root / f"members-{which}.json"
    path.write_text(json.dumps(members))
    load_members(path)
    return path


def test_a_nonce_one_replica_accepted_is_refused_by_the_other(replicated: Replicated) -> None:
    client = replicated.fed.client("UZB-BS", store=False)
    try:
        raw = _signed(client, "N0000001")
    finally:
        client.close()
    assert _send_to(replicated.fed, replicated.port("A"), raw) == (grpc.StatusCode.OK, ""), \
        "".join(replicated.serves["A"].lines[-5:])
    assert _send_to(replicated.fed, replicated.port("B"), raw) == (
        grpc.StatusCode.UNAUTHENTICATED, "replayed_nonce")
    outcomes = [(e["event"], e["outcome"], e.get("reason")) for e in _audit(replicated)
                if e.get("event") == "lookup"]
    assert outcomes == [("lookup", "answered", None), ("lookup", "rejected", "replayed_nonce")]


def test_daily_quota_is_exact_across_replicas(replicated: Replicated) -> None:
    client = replicated.fed.client("UZB-BS", store=False)
    try:
        results = [_send_to(replicated.fed, replicated.port("AB"[i % 2]),
                            _signed(client, f"N00000{i:02d}")) for i in range(QUOTA + 2)]
    finally:
        client.close()
    assert results == [(grpc.StatusCode.OK, "")] * QUOTA + [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "quota_exhausted")] * 2


@pytest.mark.parametrize("replicated", [{"burst": 4, "rate_per_s": 0.0001,
                                         "max_in_flight": 64}], indirect=True)
def test_a_peers_agreed_burst_is_exact_across_replicas(replicated: Replicated) -> None:
    """UZB-BS may spend a burst of 4 (next to no refill): its calls alternating between
    the replicas get exactly 4 answers and 6 refusals, not 4 from each replica; every
    refusal is counted in the one audit log, whichever replica refused it."""
    client = replicated.fed.client("UZB-BS", store=False)
    try:
        results = [_send_to(replicated.fed, replicated.port("AB"[i % 2]),
                            _signed(client, f"N00000{i:02d}")) for i in range(10)]
    finally:
        client.close()
    assert results == [(grpc.StatusCode.OK, "")] * 4 + [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")] * 6
    for serve in replicated.serves.values():
        serve.stop()  # a graceful stop records the refusals still counted
    entries = _audit(replicated)
    refused = [e for e in entries if e.get("reason") == "rate_limited"]
    assert sum(e["refused"] for e in refused) == 6
    assert {e["requester"] for e in refused} == {"UZB-BS"}
    assert [e["outcome"] for e in entries if e.get("event") == "lookup"
            and not e.get("aggregated")] == ["answered"] * 4


@pytest.mark.parametrize("replicated", [{"rate_per_s": 100, "burst": 100, "max_in_flight": 2,
                                         "busy_timeout_s": 60}], indirect=True)
def test_a_peers_calls_in_flight_are_the_nodes_across_replicas(
        replicated: Replicated, pg_dsn: str) -> None:
    """UZB-BS may have 2 calls in flight.  Two held on replica A (their audit entries wait
    for the audit log's lock, which the test holds: replica A's first batch is stuck in its
    commit) leave none for replica B, which refuses a third at once (rate_limited) though
    its own count is 0.  Once A's calls are answered and its idle lease given back, B
    answers; the refusal is in the one audit log."""
    import psycopg

    from node.store.postgresql._sql import lock_key

    rep = replicated
    client = rep.fed.client("UZB-BS", store=False)
    try:
        held, third, later = ([_signed(client, f"N00000{i:02d}") for i in (1, 2)],
                              _signed(client, "N0000003"), _signed(client, "N0000004"))
    finally:
        client.close()
    answered: list[tuple[grpc.StatusCode, str]] = []
    with psycopg.connect(pg_dsn, password=rep.cluster.password, autocommit=True) as conn:

        def one(sql: str) -> int:
            row = conn.execute(sql).fetchone()
            return 0 if row is None else int(row[0])

        conn.execute("SELECT pg_advisory_lock(%s)", (lock_key("audit"),))
        try:
            calls = [threading.Thread(target=lambda p=p: answered.append(
                _send_to(rep.fed, rep.port("A"), p))) for p in held]
            for t in calls:
                t.start()
            until("both calls admitted on A and waiting for the audit log", lambda: one(
                "SELECT COALESCE(SUM(slots), 0) FROM peer_slots") == 2 and one(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))
            assert _send_to(rep.fed, rep.port("B"), third) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key("audit"),))
        for t in calls:
            t.join(60)
        assert answered == [(grpc.StatusCode.OK, "")] * 2
        until("A's idle lease given back",
              lambda: one("SELECT COALESCE(SUM(slots), 0) FROM peer_slots") == 0)
    assert _send_to(rep.fed, rep.port("B"), later) == (grpc.StatusCode.OK, "")
    for serve in rep.serves.values():
        serve.stop()  # a graceful stop records the refusals still counted
    refused = [e for e in _audit(rep) if e.get("reason") == "rate_limited"]
    assert [(e["requester"], e["refused"]) for e in refused] == [("UZB-BS", 1)]


def test_one_log_survives_a_replica_killed_mid_load(replicated: Replicated) -> None:
    rep = replicated
    client = rep.fed.client("KGZ-BS", store=False)
    acknowledged: list[tuple[str, int, str]] = []  # (request digest, audit seq, address)
    errors: list[BaseException] = []
    killed = threading.Event()
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set() and i < 400:
            i += 1
            try:
                out = client.lookup_outcome("KAZ-BS", CTX, QueryKind.DOCUMENT,
                                            [DocumentQuery(number=f"L{i:07d}",
                                                           issuing_state="KAZ")])
            except Exception as exc:  # recorded: the test asserts there were none
                errors.append(exc)
                if not isinstance(exc, BxError):
                    return
                continue
            acknowledged.append((env_mod.digest(out.exchange.request).hex(),
                                 out.answer.audit_seq, out.exchange.address))
            if len(acknowledged) >= 30 and killed.is_set() and \
                    sum(1 for a in acknowledged if a[2].endswith(str(rep.port("B")))) >= 30:
                stop.set()

    t = threading.Thread(target=load)
    t.start()
    until("30 acknowledged answers before the kill", lambda: len(acknowledged) >= 30 or errors,
          every=0.01)
    rep.serves["A"].kill()  # mid-load: SIGKILL, no shutdown
    killed.set()
    t.join(60)
    stop.set()
    client.close()
    assert not t.is_alive()
    assert not errors, errors[:3]
    after_b = [a for a in acknowledged if a[2].endswith(f":{rep.port('B')}")]
    assert len(after_b) >= 30  # the surviving replica kept answering
    # Every acknowledged answer is in the one log, under the sequence number it carried.
    by_seq = {e["seq"]: e for e in _audit(rep)}
    for digest, seq, _ in acknowledged:
        assert by_seq[seq]["request_digest"] == digest and by_seq[seq]["outcome"] == "answered"
    assert len({seq for _, seq, _ in acknowledged}) == len(acknowledged)
    # The log of both replicas verifies as one: entries, tree, every signed checkpoint.
    r = subprocess.run([sys.executable, "-m", "node.cli.main", "audit", "verify",
                        "--node-dir", str(rep.a)], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # The killed replica rejoins after restart and answers from the same log.
    rep.start("A")
    only_a = rep.fed.client("KGZ-BS", store=False, members=_only(rep, "A"))
    try:
        out = only_a.lookup_outcome("KAZ-BS", CTX, QueryKind.DOCUMENT,
                                    [DocumentQuery(number="N0481516", issuing_state="KAZ")])
    finally:
        only_a.close()
    assert out.answer.results[0].outcome.value == "hit"
    assert out.answer.audit_seq == max(by_seq) + 1 or out.answer.audit_seq > max(by_seq)


def _person_lookup(rep: Replicated, which: str) -> Any:
    client = rep.fed.client("KGZ-BS", store=False, members=_only(rep, which))
    try:
        return client.lookup("KAZ-BS", CTX, QueryKind.PERSON, [PersonQuery(
            family_name="NURLANOV", given_names="ARMAN", date_of_birth=PartialDate(1988, 7, 7),
            nationality="KAZ", sex=Sex.MALE)]).results[0]
    finally:
        client.close()


def test_every_replica_follows_watchlist_changes_at_once(replicated: Replicated,
                                                         tmp_path: Path) -> None:
    """A person added through one node's database hits on both replicas at once; the same
    alert expired (re-imported with a past date) never hits again on either."""
    rep = replicated
    assert _person_lookup(rep, "B").outcome.value == "no_hit"  # B has built its index
    row = ('{"kind": "person", "owner_ref": "KAZ-WNT-2026-000999", "action": "arrest", '
           '"expires": "%s", "family_name": "Нурланов", "given_names": "Арман", '
           '"dob": "1988-07-07", "nationality": "KAZ", "sex": "M"}\n')
    rows = tmp_path / "add.jsonl"
    rows.write_text(row % "2031-01-01")
    assert bxnode(["watchlist", "import", str(rows), "--node-dir", str(rep.a)]) == 0
    assert [_person_lookup(rep, w).reference for w in ("B", "A")] == ["KAZ-WNT-2026-000999"] * 2
    rows.write_text(row % "2020-01-01")
    assert bxnode(["watchlist", "import", str(rows), "--node-dir", str(rep.a)]) == 0
    assert [_person_lookup(rep, w).outcome.value for w in ("B", "A")] == ["no_hit"] * 2


def test_no_identifier_reaches_postgresql_in_plaintext(replicated: Replicated) -> None:
    """A pg_dump of the populated database (watchlist, receipts, audit log after real
    lookups) holds none of the imported identifiers, in UTF-8 or transliterated."""
    rep = replicated
    client = rep.fed.client("KGZ-BS", store=False)
    try:
        client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
                      [DocumentQuery(number="N0481516", issuing_state="KAZ")])
        client.lookup("KAZ-BS", CTX, QueryKind.PERSON, [PersonQuery(
            family_name="YUSUPOV", given_names="TIMUR", date_of_birth=PartialDate(1984, 3, 17),
            nationality="UZB", sex=Sex.MALE)])
    finally:
        client.close()
    cfg = load_config(rep.a)
    assert cfg.storage.dsn is not None
    dbname = dict(p.split("=", 1) for p in cfg.storage.dsn.split())["dbname"]
    dump = subprocess.run([str(rep.cluster.tool("pg_dump")), "-h", str(rep.cluster.socket_dir),
                           "-p", str(rep.cluster.port), "-U", rep.cluster.superuser, dbname],
                          capture_output=True, timeout=60, check=True,
                          env={**os.environ, "PGPASSWORD": rep.cluster.password}).stdout
    assert b"audit_entries" in dump and b"documents" in dump  # the dump holds the data
    text = dump.decode("utf-8", "replace")
    for secret in ("N0481516", "N1122334", "AB1234567", "KAZ-SLTD-2026-000117",
                   "KAZ-WNT-2026-000311", "Юсупов", "Тимур", "Рашидович", "YUSUPOV", "Yusupov",
                   "IUSUPOV", "Сейткали", "SEITKALI", "SIRENE-style desk", "+7 7172 000 001"):
        assert secret not in text and secret.lower() not in text.lower(), secret


def test_health_follows_the_database(replicated: Replicated) -> None:
    rep = replicated
    serving, not_serving = (health_pb2.HealthCheckResponse.SERVING,
                            health_pb2.HealthCheckResponse.NOT_SERVING)
    assert _health(rep.fed, rep.port("A")) == serving
    client = rep.fed.client("UZB-BS", store=False)
    try:
        rep.cluster.stop("immediate")
        until("health NOT_SERVING without the database",
              lambda: _health(rep.fed, rep.port("A")) == not_serving, timeout=15, every=0.1)
        code, reason = _send_to(rep.fed, rep.port("A"), _signed(client, "N0000009"))
        assert code is grpc.StatusCode.UNAVAILABLE and reason == "audit_unavailable"
        rep.cluster.start()
        until("health SERVING with the database back",
              lambda: _health(rep.fed, rep.port("A")) == serving, timeout=20, every=0.1)
        assert _send_to(rep.fed, rep.port("A"), _signed(client, "N0000010")) == (
            grpc.StatusCode.OK, "")
    finally:
        client.close()
        if not rep.cluster.running:
            rep.cluster.start()
    # The refused request left no entry (nothing was durable); the later one did.
    lookups = [e for e in _audit(rep) if e.get("event") == "lookup"]
    assert [e["outcome"] for e in lookups] == ["answered"]
