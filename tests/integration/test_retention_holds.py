"""Holds keep records past their retention, end to end (issue 13 §2).

Two real nodes over mTLS (KAZ-BS answers, KGZ-BS asks; the federation lists the dev
auditor).  KGZ-BS asks KAZ-BS under four case references:

* ``CASE-HWM`` -- put on hold by a KAZ-BS watchlist manager (``bxnode retention hold``);
* ``CASE-HAU`` -- put on hold by the auditor (``--auditor-key``);
* ``CASE-FU``  -- a hit KGZ-BS then files a follow-up on, left open (pending) at KAZ-BS;
  the alert behind it is then withdrawn, so its withdrawn record is tied to that
  follow-up;
* ``CASE-N``   -- the unheld neighbour, asked about an alert withdrawn as well.

The erasure sweep runs inside the running node (its group commit, as ``serve`` runs it),
with the injected clock 1200 days ahead -- past every default retention -- never with
sleep.  The held records stay, their neighbours go; lifting the holds (audited) lets the
next sweep erase them, while the open follow-up still holds its own.  Each sweep is one
``retention_sweep`` audit entry with the counts per kind.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.app import now_ms, open_store
from node.audit.log import MerkleAuditLog
from node.cli.main import main as cli
from node.client.peer import QueryContext
from node.config import load_config
from node.core.model import DocumentQuery, LookupAnswer, QueryKind
from node.followup.client import file_followup
from node.followup.store import FollowUpStore
from node.retention.serve import sweep_once
from node.retention.settings import DAY_MS, RETENTION_KINDS
from node.retention.sweep import RetentionSweep, SweepReport
from node.store.retention import RetentionTables
from tests.federation import DEV, Federation, make_federation

pytestmark = pytest.mark.integration

LEGAL = "Agreement on border cooperation, art. 7"
FU_DOC = DocumentQuery(number="N0481516", issuing_state="KAZ")        # KAZ-SLTD-2026-000117
NEIGHBOUR_DOC = DocumentQuery(number="N1122334", issuing_state="KAZ")  # KAZ-SLTD-2025-004410
HELD = ("CASE-HWM", "CASE-HAU")


def _with_auditor(members: dict[str, Any]) -> None:
    members["members"].append(json.loads((DEV / "auditor" / "member.json").read_text()))


@pytest.fixture(scope="module")
def hfed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    f = make_federation(tmp_path_factory.mktemp("holds"), ("KAZ-BS", "KGZ-BS"),
                        members_edit=_with_auditor)
    for n in f.dirs:
        f.start(n)
    yield f
    f.stop_all()


def ask(fed: Federation, case_ref: str, doc: DocumentQuery) -> LookupAnswer:
    client = fed.client("KGZ-BS")
    try:
        return client.lookup("KAZ-BS", QueryContext(
            operator="officer-7", purpose="border_check", legal_basis=LEGAL, case_ref=case_ref),
            QueryKind.DOCUMENT, [doc])
    finally:
        client.close()


def kaz(fed: Federation, *argv: str) -> int:
    return cli([*argv, "--node-dir", str(fed.dirs["KAZ-BS"])])


def sweep_at(fed: Federation, clock_ms: int) -> SweepReport:
    """One sweep inside KAZ-BS's running server, its clock ``clock_ms``."""
    node = fed.nodes["KAZ-BS"]
    sweep = RetentionSweep(db=node.runtime.store, audit=node.runtime.responder.audit_log,
                           settings=node.cfg.retention, clock_ms=lambda: clock_ms)
    assert node.server.writer is not None
    return asyncio.run_coroutine_threadsafe(sweep_once(sweep, node.server.writer),
                                            node.loop).result(60)


def kaz_receipt_erased(fed: Federation, answer: LookupAnswer) -> int | None:
    store = open_store(load_config(fed.dirs["KAZ-BS"]))
    try:
        [head] = RetentionTables(store).receipts_for(request_digest=answer.request_digest,
                                                    peer="KGZ-BS", direction="received")
    finally:
        store.close()
    return head.erased_ms


def kaz_body_kept(fed: Federation, seq: int) -> bool:
    store = open_store(load_config(fed.dirs["KAZ-BS"]))
    try:
        entry = MerkleAuditLog(store=store).entry(seq)
    finally:
        store.close()
    assert entry is not None and entry.leaf  # the leaf always stays
    return entry.body is not None


def live_receipts(fed: Federation) -> int:
    store = open_store(load_config(fed.dirs["KAZ-BS"]))
    try:
        return len(RetentionTables(store).receipts_before(2**62))
    finally:
        store.close()


def counts(**nonzero: int) -> dict[str, int]:
    return {kind: nonzero.get(kind, 0) for kind in RETENTION_KINDS}


def test_holds_keep_records_past_retention_until_lifted(hfed: Federation,
                                                         tmp_path: Path) -> None:
    fed = hfed
    held = {c: ask(fed, c, NEIGHBOUR_DOC) for c in HELD}
    neighbour = ask(fed, "CASE-N", NEIGHBOUR_DOC)
    followed = ask(fed, "CASE-FU", FU_DOC)
    assert [a.results[0].outcome.value for a in (*held.values(), neighbour, followed)] == [
        "hit"] * 4
    # an open follow-up on the CASE-FU hit (KAZ-BS's desk has not decided it)
    client = fed.client("KGZ-BS")
    try:
        filed = file_followup(client, FollowUpStore(client._store), "KAZ-BS",  # type: ignore[arg-type]
                              QueryContext(operator="officer-7", purpose="border_check",
                                           legal_basis=LEGAL, case_ref="CASE-FU"),
                              hit_request_digest=followed.request_digest, hit_item_index=0,
                              hit_reference=followed.results[0].reference,
                              fields=["issuing_state"])
    finally:
        client.close()
    assert filed.state == "pending"
    # both alerts withdrawn: one is tied to the open follow-up, the other to nothing
    for ref in ("KAZ-SLTD-2026-000117", "KAZ-SLTD-2025-004410"):
        assert kaz(fed, "watchlist", "withdraw", ref, "--reason", "recovered",
                   "--operator", "op-1") == 0
    # the holds: one by a watchlist manager, one by the auditor
    assert kaz(fed, "retention", "hold", "CASE-HWM", "--reason", "complaint to the DPA",
               "--operator", "op-2") == 0
    auditor_key = tmp_path / "auditor.key"
    shutil.copyfile(DEV / "auditor" / "signing.key", auditor_key)
    auditor_key.chmod(0o600)
    assert kaz(fed, "retention", "hold", "CASE-HAU", "--reason", "inspection 2026/4",
               "--operator", "insp-1", "--auditor-key", str(auditor_key)) == 0

    entries = fed.audit("KAZ-BS")
    held_bodies = [e["seq"] for e in entries if e.get("case_ref") in HELD]
    receipts_before = live_receipts(fed)
    first_at = now_ms() + 1200 * DAY_MS
    first = sweep_at(fed, first_at)
    # kept: the two held cases' receipts and the followed-up lookup's; their audit bodies;
    # the withdrawn alert the open follow-up is about
    assert first.held == counts(receipts=3, audit_bodies=len(held_bodies), withdrawn_alerts=1)
    assert first.erased["receipts"] == receipts_before - 3
    assert first.erased["withdrawn_alerts"] == 1
    assert first.erased["audit_bodies"] == len(entries) - len(held_bodies)
    assert [kaz_receipt_erased(fed, a) for a in (*held.values(), followed)] == [None] * 3
    assert kaz_receipt_erased(fed, neighbour) == first_at
    assert [kaz_body_kept(fed, a.audit_seq) for a in held.values()] == [True, True]
    assert kaz_body_kept(fed, neighbour.audit_seq) is False
    assert kaz_body_kept(fed, followed.audit_seq) is False  # no hold on CASE-FU's entry

    # lifting the holds is audited; the next sweep erases what they kept
    assert kaz(fed, "retention", "release", "CASE-HWM", "--reason", "answered",
               "--operator", "op-2") == 0
    assert kaz(fed, "retention", "release", "CASE-HAU", "--reason", "inspection closed",
               "--operator", "insp-1", "--auditor-key", str(auditor_key)) == 0
    released = fed.audit("KAZ-BS")
    second = sweep_at(fed, first_at + DAY_MS)
    assert second.held == counts(receipts=1, withdrawn_alerts=1)  # the open follow-up's
    assert (second.erased["receipts"], second.erased["withdrawn_alerts"]) == (2, 0)
    # the held bodies, and the hold and release entries since, are now past retention
    assert second.erased["audit_bodies"] == len(held_bodies) + 2
    assert [kaz_receipt_erased(fed, a) for a in held.values()] == [first_at + DAY_MS] * 2
    assert kaz_receipt_erased(fed, followed) is None
    assert [kaz_body_kept(fed, a.audit_seq) for a in held.values()] == [False, False]

    # each sweep is one audit entry with the counts per kind; every hold change audited
    # (read before the sweep that erased its body)
    after = fed.audit("KAZ-BS")[len(entries):]
    sweeps = [e for e in after if e.get("event") == "retention_sweep"]
    assert [(s["seq"], s["erased"], s["held"]) for s in sweeps] == [
        (first.audit_seq, first.erased, first.held),
        (second.audit_seq, second.erased, second.held)]
    assert [hold_changes(entries, "retention_hold"),
            hold_changes(released, "retention_release")] == [[
        ("retention_hold", "CASE-HWM", "op-2", "watchlist_manager", "complaint to the DPA"),
        ("retention_hold", "CASE-HAU", "KAZ-DPA/insp-1", "auditor", "inspection 2026/4")], [
        ("retention_release", "CASE-HWM", "op-2", "watchlist_manager", "answered"),
        ("retention_release", "CASE-HAU", "KAZ-DPA/insp-1", "auditor", "inspection closed")]]
    assert cli(["audit", "verify", "--node-dir", str(fed.dirs["KAZ-BS"])]) == 0


def hold_changes(entries: list[dict[str, Any]], event: str) -> list[tuple[Any, ...]]:
    return [(e["event"], e.get("case_ref"), e.get("operator"), e.get("role"), e.get("reason"))
            for e in entries if e.get("event") == event]
