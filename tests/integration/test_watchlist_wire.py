"""Alerts on the wire, between real nodes over mTLS (issue 13).

Three demo nodes (KAZ, KGZ, UZB), the shipped policies: KAZ-BS's agreement with KGZ-BS
discloses an alert's source agency, its agreement with UZB-BS does not.  KAZ-BS and KGZ-BS
also serve the LocalService to their officers (certificates from a test CA, the agency's
own): KGZ-BS's duty officer sees the source as the answer gives it; KAZ-BS's watchlist
manager adds, changes and withdraws alerts through it while KGZ-BS asks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from node.cli.main import main as cli
from node.client.peer import QueryContext
from node.core import envelope as env_mod
from node.core.model import DocumentQuery, LookupAnswer, Outcome, QueryKind
from node.local.client import LocalCallError, LocalClient
from node.local.server import LocalApiServer
from node.wire import convert
from node.wire.convert import pb
from node.wire.local import lpb
from tests.federation import Federation, make_federation
from tests.integration.localapi import Officers, start_api

pytestmark = pytest.mark.integration

CTX = QueryContext(operator="officer-7", purpose="border_check",
                   legal_basis="Agreement on border cooperation, art. 7", case_ref="CASE-W1")
ROLES = {"KGZ-BS": {"kg-duty": ["duty_officer"]},
         "KAZ-BS": {"kz-wm": ["watchlist_manager"], "kz-duty": ["duty_officer"]}}
MVD_DOC = DocumentQuery(number="M0000417", issuing_state="KAZ")


@pytest.fixture(scope="module")
def wfed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("wwire")
    fed = make_federation(root, ("KAZ-BS", "KGZ-BS", "UZB-BS"))
    officers = {n: Officers(root / f"officers-{n}", n) for n in ROLES}
    for node_id, off in officers.items():
        roles = "\n".join(f'"{k}" = {json.dumps(v)}' for k, v in ROLES[node_id].items())
        with (fed.dirs[node_id] / "node.toml").open("a") as f:
            f.write(f'\n[local]\napi_socket = "unix:officers.sock"\n'
                    f'client_ca = "{off.root / "ca.crt"}"\n\n[local.roles]\n{roles}\n')
    apis: dict[str, LocalApiServer] = {}
    for node_id in fed.dirs:
        node = fed.start(node_id)
        if node_id in officers:
            apis[node_id] = start_api(node)
    assert cli(["watchlist", "add", "--kind", "document", "--ref", "KAZ-MVD-2026-0417",
                "--action", "seize_document", "--expires", "2036-01-01", "--number",
                MVD_DOC.number, "--state", "KAZ", "--type", "P", "--source", "MVD",
                "--reason", "reported stolen", "--operator", "kz-0193",
                "--node-dir", str(fed.dirs["KAZ-BS"])]) == 0
    try:
        yield {"fed": fed, "officers": officers}
    finally:
        for node_id, api in apis.items():
            asyncio.run_coroutine_threadsafe(api.stop(0.5), fed.nodes[node_id].loop).result(10)
        fed.stop_all()


def officer(s: dict[str, Any], node_id: str, cn: str) -> LocalClient:
    fed: Federation = s["fed"]
    off: Officers = s["officers"][node_id]
    cert, key = (off.root / f"{cn}.crt", off.root / f"{cn}.key")
    if not cert.exists():
        cert, key = off.issue(cn)
    return LocalClient.over_socket(fed.dirs[node_id] / "officers.sock", cert=cert, key=key,
                                   ca=fed.dirs[node_id] / "ca.crt")


def ask(fed: Federation, asker: str, *items: Any) -> LookupAnswer:
    client = fed.client(asker)
    try:
        kind = QueryKind.BATCH if len(items) > 1 else items[0].kind
        return client.lookup("KAZ-BS", CTX, kind, list(items))
    finally:
        client.close()


def test_source_agency_disclosed_only_where_the_agreement_says_so(
        wfed: dict[str, Any]) -> None:
    fed: Federation = wfed["fed"]
    legacy = DocumentQuery(number="N0481516", issuing_state="KAZ")  # imported, no source
    kgz = ask(fed, "KGZ-BS", MVD_DOC, legacy)
    assert [(r.outcome, r.reference, r.source_agency) for r in kgz.results] == [
        (Outcome.HIT, "KAZ-MVD-2026-0417", "MVD"), (Outcome.HIT, "KAZ-SLTD-2026-000117", "")]
    uzb = ask(fed, "UZB-BS", MVD_DOC)
    assert [(r.outcome, r.reference, r.source_agency) for r in uzb.results] == [
        (Outcome.HIT, "KAZ-MVD-2026-0417", "")]
    # The field is in the signed payload KGZ-BS keeps as its receipt.
    client = fed.client("KGZ-BS")
    try:
        [receipt] = [r for r in client._store.receipt_store.all(direction="sent")  # type: ignore[union-attr]
                     if r.request_digest == kgz.request_digest]
        key = client._directory.member("KAZ-BS").keys[0].public_key
    finally:
        client.close()
    env = convert.envelope_from_pb(pb.SignedEnvelope.FromString(receipt.response_env))
    env_mod.verify(env, key, expected_type=env_mod.RESPONSE_TYPE)  # raises if it does not
    signed = pb.ResponsePayload.FromString(env.payload)
    assert [r.source_agency for r in signed.lookup.results] == ["MVD", ""]
    # The owner audits which fields left, never the value.
    kaz = [e for e in fed.audit("KAZ-BS") if e.get("event") == "lookup"]
    assert kaz[-2]["disclosed"] == ["action", "contact", "reference", "source_agency"]
    assert kaz[-1]["disclosed"] == ["action", "reference"]
    assert "MVD" not in json.dumps(kaz[-2:])


def test_an_officer_sees_the_source_through_the_local_service_and_the_cli(
        wfed: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    fed: Federation = wfed["fed"]
    with officer(wfed, "KGZ-BS", "kg-duty") as node:
        r = node.lookup_document(MVD_DOC.number, "KAZ", peers=["KAZ-BS", "UZB-BS"],
                                 purpose="border_check", case_ref="CASE-W2")
    assert [(x.outcome, x.source_agency) for x in r.peer("KAZ-BS").results] == [
        (Outcome.HIT, "MVD")]
    assert [x.outcome for x in r.peer("UZB-BS").results] == [Outcome.NO_HIT]
    capsys.readouterr()
    argv = ["query", "doc", "--node-dir", str(fed.dirs["KGZ-BS"]), "--peer", "KAZ-BS",
            "--purpose", "border_check", "--case-ref", "CASE-W3", "--number", MVD_DOC.number,
            "--state", "KAZ"]
    assert cli(argv) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "#0: HIT  ref=KAZ-MVD-2026-0417 action=seize_document contact=KAZ-BS desk source=MVD")
    assert cli([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["source_agency"] == "MVD"


def test_a_watchlist_manager_keeps_alerts_through_the_local_service(
        wfed: dict[str, Any]) -> None:
    fed: Federation = wfed["fed"]
    doc = DocumentQuery(number="W5550001", issuing_state="KAZ")
    record = lpb.AlertRecord(kind="document", owner_ref="KAZ-LS-0001", action="seize_document",
                             expires="2036-01-01", number=doc.number, issuing_state="KAZ",
                             doc_type="P", loss_type="stolen")
    before = len(fed.audit("KAZ-BS"))
    with officer(wfed, "KAZ-BS", "kz-wm") as wm:
        added = wm.call("AddAlert", lpb.AddAlertRequest(alert=record, source="MID",
                                                        reason="reported stolen")).alert
        assert (added.owner_ref, added.kind, added.source, added.state) == (
            "KAZ-LS-0001", "document", "MID", "live")
        [hit] = ask(fed, "KGZ-BS", doc).results  # the running node answers from it at once
        assert (hit.outcome, hit.reference, hit.action.value, hit.source_agency) == (  # type: ignore[union-attr]
            Outcome.HIT, "KAZ-LS-0001", "seize_document", "MID")
        updated = wm.call("UpdateAlert", lpb.UpdateAlertRequest(
            owner_ref="KAZ-LS-0001", changes={"action": "arrest"}, reason="court order")).alert
        assert updated.action == "arrest"
        shown = wm.call("ShowAlert", lpb.ShowAlertRequest(owner_ref="KAZ-LS-0001")).alert
        assert [(r.number, r.action) for r in shown.records] == [(doc.number, "arrest")]
        listed = wm.call("ListAlerts", lpb.ListAlertsRequest(source="MID"))
        assert ([a.owner_ref for a in listed.alerts], listed.matched) == (["KAZ-LS-0001"], 1)
        withdrawn = wm.call("WithdrawAlert", lpb.WithdrawAlertRequest(
            owner_ref="KAZ-LS-0001", reason="passport recovered")).alert
        assert withdrawn.state == "withdrawn" and withdrawn.withdrawn_ms > 0
        assert [r.outcome for r in ask(fed, "KGZ-BS", doc).results] == [Outcome.NO_HIT]
        stats = wm.call("AlertStats", lpb.AlertStatsRequest())
        assert ("document", "MID", "withdrawn", 1) in {
            (c.kind, c.source, c.state, c.count) for c in stats.counts}
        refused = [
            ("WithdrawAlert", lpb.WithdrawAlertRequest(owner_ref="KAZ-LS-0001", reason="again"),
             "FAILED_PRECONDITION", "already_withdrawn"),
            ("UpdateAlert", lpb.UpdateAlertRequest(owner_ref="KAZ-LS-0404",
                                                   changes={"action": "arrest"}, reason="x"),
             "NOT_FOUND", "unknown_alert"),
            ("AddAlert", lpb.AddAlertRequest(alert=record, source="bad source!", reason="x"),
             "INVALID_ARGUMENT", "bad_source"),
            ("UpdateAlert", lpb.UpdateAlertRequest(
                owner_ref="KAZ-MVD-2026-0417", changes={f"c{i}": "x" for i in range(17)},
                reason="x"), "INVALID_ARGUMENT", "bad_field"),
            ("ListAlerts", lpb.ListAlertsRequest(state="gone"), "INVALID_ARGUMENT",
             "bad_filter"),
            ("ShowAlert", lpb.ShowAlertRequest(owner_ref="KAZ-LS-0404"), "NOT_FOUND",
             "unknown_alert"),
        ]
        for method, request, status, reason in refused:
            with pytest.raises(LocalCallError) as err:
                wm.call(method, request)
            assert (err.value.status, err.value.reason) == (status, reason), method
    with officer(wfed, "KAZ-BS", "kz-duty") as duty, pytest.raises(LocalCallError) as err:
        duty.call("AddAlert", lpb.AddAlertRequest(alert=record, source="MID", reason="x"))
    assert (err.value.status, err.value.reason) == ("PERMISSION_DENIED", "role_required")
    assert [r.outcome for r in ask(fed, "KGZ-BS", doc).results] == [Outcome.NO_HIT]
    entries = fed.audit("KAZ-BS")[before:]
    changes = [(e["event"], e.get("operator"), e.get("reason"), e.get("source"))
               for e in entries if str(e["event"]).startswith("watchlist_")]
    assert changes == [
        ("watchlist_add", "kz-wm", "reported stolen", "MID"),
        ("watchlist_update", "kz-wm", "court order", "MID"),
        ("watchlist_withdraw", "kz-wm", "passport recovered", "MID"),
        ("watchlist_change_refused", "kz-wm", "already_withdrawn", None),
        ("watchlist_change_refused", "kz-wm", "unknown_alert", None),
        ("watchlist_change_refused", "kz-wm", "bad_source", None)]
    calls = [(e["method"], e["caller"], e["outcome"], e.get("reason"))
             for e in entries if e["event"] == "local_call"]
    assert calls == [
        ("AddAlert", "kz-wm", "ok", None), ("UpdateAlert", "kz-wm", "ok", None),
        ("ShowAlert", "kz-wm", "ok", None), ("ListAlerts", "kz-wm", "ok", None),
        ("WithdrawAlert", "kz-wm", "ok", None), ("AlertStats", "kz-wm", "ok", None),
        *[(m, "kz-wm", "refused", reason) for m, _, _, reason in refused],
        ("AddAlert", "kz-duty", "refused", "role_required")]
    text = json.dumps(entries, ensure_ascii=False)
    assert "KAZ-LS-0001" not in text and doc.number not in text
