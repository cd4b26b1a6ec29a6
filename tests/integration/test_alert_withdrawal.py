"""An alert withdrawn mid-traffic never hits again, on the node and on another replica
(issue 13 §1, "done when").

KGZ-BS keeps asking KAZ-BS over mTLS, from two threads with a channel each, about a stolen
passport (N0481516), a wanted person (Юсупов Тимур, asked in Cyrillic by one thread and as
YUSUPOV TIMUR by the other) and a control passport that stays on the list (N1122334).
While the questions run, KAZ-BS's operator withdraws the passport and then the person.

"After" is stated by the owner's audit log, not by timing: every answer carries the
sequence number of the owner's audit entry for it, reserved under the audit lock in the
same transaction that read the watchlist; the withdrawal's own entry is appended in the
transaction that deleted the alert.  So an answer whose sequence number is above the
withdrawal's was decided after the withdrawal committed: each such answer must be NO_HIT
for that alert, each one below it HIT, and the control passport a hit throughout.

1. One node on SQLCipher, withdrawn with the real CLI (``bxnode watchlist withdraw``)
   against the running node's database.
2. Two ``bxnode serve`` replicas on one PostgreSQL (as in test_replicas.py): withdrawn by
   a watchlist manager through replica A's LocalService (WithdrawAlert, on A's group
   commit) while the questions go to replica B only; B never hits afterwards.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.audit.log import MerkleAuditLog
from node.cli.main import main as bxnode
from node.client.peer import PeerClient, QueryContext
from node.config import load_config
from node.core.model import DocumentQuery, PartialDate, PersonQuery, QueryKind, Sex
from node.federation.members_file import load_members
from node.local.client import LocalClient
from node.store.open import open_database
from node.wire.local import lpb
from tests.federation import DEMO, WATCHLISTS, Federation, free_port, make_federation
from tests.integration.localapi import Officers
from tests.integration.test_audit_crash import Serve
from tests.pgcluster import PgCluster, to_postgresql

pytestmark = pytest.mark.integration

CTX = QueryContext(operator="officer-7", purpose="border_check",
                   legal_basis="Agreement on border cooperation, art. 7", case_ref="CASE-WD1")
DOC_REF, PERSON_REF, CONTROL_REF = (
    "KAZ-SLTD-2026-000117", "KAZ-WNT-2026-000311", "KAZ-SLTD-2025-004410")
STOLEN = DocumentQuery(number="N0481516", issuing_state="KAZ")
CONTROL = DocumentQuery(number="N1122334", issuing_state="KAZ")
PERSONS = (
    PersonQuery(family_name="Юсупов", given_names="Тимур",
                date_of_birth=PartialDate(1984, 3, 17), nationality="UZB", sex=Sex.MALE),
    PersonQuery(family_name="YUSUPOV", given_names="TIMUR",
                date_of_birth=PartialDate(1984, 3, 17), nationality="UZB", sex=Sex.MALE))
#: answers each side of every withdrawal before the stream stops (kept small: seconds)
ENOUGH = 6
#: a bound on each thread's questions, so a broken node cannot make the test run forever
MAX_PER_THREAD = 400


@dataclass(frozen=True, slots=True)
class Seen:
    """One answer as the asking peer got it: the owner's audit seq and each item's
    (outcome, reference)."""

    seq: int
    thread: int
    results: tuple[tuple[str, str], ...]
    address: str


class Stream:
    """Two threads of KGZ-BS asking KAZ-BS [STOLEN, a person, CONTROL] without pause, and a
    third asking [STOLEN, CONTROL]: documents alone, which the node reads before its
    writers' lock and answers from that read only if the watchlist has not changed since
    (node/watchlist/lookup.py, "Read before the lock")."""

    def __init__(self, make_client: Callable[[], PeerClient]) -> None:
        self.seen: list[Seen] = []
        self.errors: list[BaseException] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i, make_client), daemon=True)
                         for i in range(3)]

    def __enter__(self) -> Stream:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _run(self, i: int, make_client: Callable[[], PeerClient]) -> None:
        client = make_client()
        try:
            for _ in range(MAX_PER_THREAD):
                if self._stop.is_set():
                    return
                try:
                    out = client.lookup_outcome("KAZ-BS", CTX, QueryKind.BATCH,
                                                [STOLEN, PERSONS[i], CONTROL] if i < 2
                                                else [STOLEN, CONTROL])
                except Exception as exc:  # recorded: the test asserts there were none
                    with self._cond:
                        self.errors.append(exc)
                        self._cond.notify_all()
                    return
                with self._cond:
                    self.seen.append(Seen(out.answer.audit_seq, i, tuple(
                        (r.outcome.value, r.reference) for r in out.answer.results),
                        out.exchange.address))
                    self._cond.notify_all()
        finally:
            client.close()
            with self._cond:
                self._cond.notify_all()

    def wait_for(self, enough: Callable[[list[Seen]], bool]) -> None:
        """Until ``enough(seen)`` (or an error, or the threads ran out of questions)."""
        with self._cond:
            while not (enough(self.seen) or self.errors
                       or not any(t.is_alive() for t in self._threads)):
                self._cond.wait(30)


def _stream_around(stream: Stream, withdraw: Callable[[], tuple[int, int]]) -> tuple[int, int]:
    stream.wait_for(lambda seen: len(seen) >= ENOUGH)
    doc_seq, person_seq = withdraw()
    stream.wait_for(lambda seen: all(  # each thread's question answered after both
        sum(1 for s in seen if s.seq > person_seq and s.thread == t) >= ENOUGH // 3
        for t in range(3)))
    return doc_seq, person_seq


def _assert_never_hits_after(stream: Stream, doc_seq: int, person_seq: int,
                             log: dict[int, dict[str, Any]]) -> None:
    assert not stream.errors, stream.errors[:3]
    seen = stream.seen
    assert doc_seq < person_seq
    before = [s for s in seen if s.seq < doc_seq]
    after = [s for s in seen if s.seq > person_seq]
    assert len(before) >= ENOUGH and len(after) >= ENOUGH, (len(before), len(after))
    # the Cyrillic and the Latin question, and the documents alone
    assert {s.thread for s in after} == {0, 1, 2}
    for s in seen:
        assert s.seq not in (doc_seq, person_seq)
        want_doc = ("hit", DOC_REF) if s.seq < doc_seq else ("no_hit", "")
        want_person = ("hit", PERSON_REF) if s.seq < person_seq else ("no_hit", "")
        assert s.results == ((want_doc, want_person, ("hit", CONTROL_REF)) if s.thread < 2
                             else (want_doc, ("hit", CONTROL_REF))), s
        # the owner's log says the same of that very exchange
        entry = log[s.seq]
        assert (entry["event"], entry["outcome"], entry["requester"], entry["hits"]) == (
            "lookup", "answered", "KGZ-BS", sum(1 for o, _ in s.results if o == "hit"))
    assert len({s.seq for s in seen}) == len(seen)


def _withdrawals(log: dict[int, dict[str, Any]], after: int) -> tuple[int, int]:
    """The seqs of the document's and then the person's withdrawal entries."""
    found = [(e["kind"], seq) for seq, e in sorted(log.items())
             if seq > after and e["event"] == "watchlist_withdraw"]
    assert [k for k, _ in found] == ["document", "person"], found
    return found[0][1], found[1][1]


# --- 1. one node, the CLI -----------------------------------------------------------------------


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    f = make_federation(tmp_path, ("KAZ-BS", "KGZ-BS"))
    for n in f.dirs:
        f.start(n)
    yield f
    f.stop_all()


def _log_of(fed: Federation) -> dict[int, dict[str, Any]]:
    return {e["seq"]: e for e in fed.audit("KAZ-BS")}


def test_withdrawn_with_the_cli_mid_traffic_never_hits_again(fed: Federation) -> None:
    start = max(_log_of(fed))
    kaz = str(fed.dirs["KAZ-BS"])

    def withdraw() -> tuple[int, int]:
        for ref, why in ((DOC_REF, "passport recovered"), (PERSON_REF, "arrested")):
            assert bxnode(["watchlist", "withdraw", ref, "--reason", why,
                           "--operator", "op-1", "--node-dir", kaz]) == 0
        return _withdrawals(_log_of(fed), start)

    with Stream(lambda: fed.client("KGZ-BS", store=False)) as stream:
        doc_seq, person_seq = _stream_around(stream, withdraw)
    log = _log_of(fed)
    _assert_never_hits_after(stream, doc_seq, person_seq, log)
    assert [(log[s]["operator"], log[s]["reason"]) for s in (doc_seq, person_seq)] == [
        ("op-1", "passport recovered"), ("op-1", "arrested")]
    assert DOC_REF not in json.dumps([log[doc_seq], log[person_seq]])


# --- 2. two replicas on one PostgreSQL, the LocalService ----------------------------------------


@dataclass
class Replicas:
    fed: Federation
    a: Path
    b: Path
    b_port: int
    officers: Officers


@pytest.fixture
def replicas(tmp_path: Path, pg_cluster: PgCluster, pg_dsn: str) -> Iterator[Replicas]:
    b_port = free_port()

    def two_addresses(members: dict[str, Any]) -> None:
        for m in members["members"]:
            if m["node_id"] == "KAZ-BS":
                m["endpoint"] = [m["endpoint"], f"127.0.0.1:{b_port}"]

    fed = make_federation(tmp_path, ("KAZ-BS", "KGZ-BS"), members_edit=two_addresses)
    a = fed.dirs["KAZ-BS"]
    to_postgresql(a, dsn=pg_dsn, password=pg_cluster.password, field_key="5a" * 32,
                  listen=None)
    b = tmp_path / "kaz-b"
    shutil.copytree(a, b, ignore=shutil.ignore_patterns("node.db*", "*.sock", "serve.port"))
    to_postgresql(b, dsn=pg_dsn, password=pg_cluster.password, field_key="5a" * 32,
                  listen=f"127.0.0.1:{b_port}")
    officers = Officers(tmp_path / "officers", "KAZ-BS")
    with (a / "node.toml").open("a") as f:  # only replica A serves the officers
        f.write(f'\n[local]\napi_socket = "unix:officers.sock"\n'
                f'client_ca = "{officers.root / "ca.crt"}"\n\n[local.roles]\n'
                f'"kz-wm" = ["watchlist_manager"]\n')
    assert bxnode(["store", "migrate", "--node-dir", str(a)]) == 0
    assert bxnode(["watchlist", "import", str(DEMO / WATCHLISTS["KAZ-BS"]),
                   "--node-dir", str(a)]) == 0
    fed.start("KGZ-BS")
    serves: list[Serve] = []
    try:
        serves += [Serve(a), Serve(b)]
        yield Replicas(fed=fed, a=a, b=b, b_port=b_port, officers=officers)
    finally:
        for s in serves:
            if s.proc.poll() is None:
                s.stop()
        fed.stop_all()


def _pg_log(rep: Replicas) -> dict[int, dict[str, Any]]:
    db = open_database(load_config(rep.a))
    try:
        return {e["seq"]: e for e in MerkleAuditLog(store=db).bodies()}
    finally:
        db.close()


def _only_b(rep: Replicas) -> Path:
    """A members file for a client that knows replica B's address only."""
    members = json.loads((rep.fed.root / "members.json").read_text())
    for m in members["members"]:
        if m["node_id"] == "KAZ-BS":
            m["endpoint"] = f"127.0.0.1:{rep.b_port}"
    path = rep.fed.root / "members-B.json"
    path.write_text(json.dumps(members))
    load_members(path)
    return path


def test_withdrawn_through_replica_a_never_hits_on_replica_b(replicas: Replicas) -> None:
    rep = replicas
    only_b = _only_b(rep)
    start = max(_pg_log(rep))
    cert, key = rep.officers.issue("kz-wm")

    def withdraw() -> tuple[int, int]:
        with LocalClient.over_socket(rep.a / "officers.sock", cert=cert, key=key,
                                     ca=rep.a / "ca.crt") as wm:
            for ref, why in ((DOC_REF, "passport recovered"), (PERSON_REF, "arrested")):
                done = wm.call("WithdrawAlert", lpb.WithdrawAlertRequest(owner_ref=ref,
                                                                         reason=why)).alert
                assert (done.owner_ref, done.state) == (ref, "withdrawn")
        return _withdrawals(_pg_log(rep), start)

    with Stream(lambda: rep.fed.client("KGZ-BS", store=False, members=only_b)) as stream:
        doc_seq, person_seq = _stream_around(stream, withdraw)
    log = _pg_log(rep)
    _assert_never_hits_after(stream, doc_seq, person_seq, log)
    assert [(log[s]["operator"], log[s]["reason"]) for s in (doc_seq, person_seq)] == [
        ("kz-wm", "passport recovered"), ("kz-wm", "arrested")]
    # the withdrawals went through A's LocalService; every question was answered by B
    assert {s.address for s in stream.seen} == {f"127.0.0.1:{rep.b_port}"}
    calls = [e for e in log.values() if e["event"] == "local_call"]
    assert [(c["method"], c["caller"], c["outcome"]) for c in calls] == [
        ("WithdrawAlert", "kz-wm", "ok")] * 2
