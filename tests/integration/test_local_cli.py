"""The CLI under an officer identity, on a production-mode federation (issue 11 §2).

Four nodes initialised as a real deployment is (``bxnode init`` without ``--dev``: fresh
keys, ``dev_mode = false``, TLS certificates from one federation CA): KAZ, KGZ and UZB
serve, TJK is a member that is never started.  KAZ and KGZ serve the LocalService to
officers whose certificates their agency CA issued; KAZ also takes OpenID Connect tokens.
Every officer command runs ``bxnode`` in-process against those nodes: with an officer
certificate (or token) it is a LocalService client, and with a typed ``--operator`` (or no
identity) it is refused before anything is read or sent.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from joserfc.jwk import ECKey

from node.cli.main import main
from node.local.server import LocalApiServer
from tests.federation import DEMO, Federation, sample_policy
from tests.integration.local_federation import (
    Officers,
    add_local_section,
    make_production_federation,
    new_idp_key,
    start_api,
    stop_api,
    token,
)

pytestmark = pytest.mark.integration

ROLES = {
    "KAZ-BS": {"kz-duty": ["duty_officer"], "kz-nobody": [], "kz-idp-officer": ["duty_officer"],
               "kz-gate-1": [], "kz-wl": ["watchlist_manager"], "kz-aud": ["auditor"]},
    "KGZ-BS": {"kg-desk-1": ["followup_desk"], "kg-desk-2": ["followup_desk"],
               "kg-duty": ["duty_officer"]},
}
CROSSINGS = {"KAZ-BS": "kaz-crossings.csv", "KGZ-BS": "kgz-crossings.csv",
             "UZB-BS": "uzb-crossings.jsonl"}
SERVING = ("KAZ-BS", "KGZ-BS", "UZB-BS")


@dataclass
class Run:
    rc: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one ``bxnode:`` line on stderr (structlog's JSON records are skipped)."""
        lines = [ln for ln in self.err.splitlines() if ln.startswith("bxnode: ")]
        assert len(lines) == 1, self.err
        assert not any(ln and not ln.startswith(("bxnode: ", "{")) for ln in
                       self.err.splitlines()), self.err
        return lines[0]


@dataclass
class Setup:
    fed: Federation
    officers: dict[str, Officers]
    other: Officers
    idp: ECKey
    apis: dict[str, LocalApiServer]
    tmp: Path


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("localcli")
    data = sample_policy()
    for a in data["bxnode"]["followup_agreements"]:
        if a["responder"] == "KGZ-BS" and a["requester"] == "KAZ-BS":
            a["four_eyes"] = True
    fed = make_production_federation(root, ("KAZ-BS", "KGZ-BS", "UZB-BS", "TJK-BS"), data)
    for node, name in CROSSINGS.items():  # the node administrator's imports
        d = str(fed.dirs[node])
        assert main(["crossings", "bcps", str(DEMO / "bcps.json"), "--node-dir", d]) == 0
        assert main(["crossings", "import", str(DEMO / name), "--node-dir", d]) == 0
    officers = {n: Officers(root / f"officers-{n}", n) for n in ("KAZ-BS", "KGZ-BS")}
    idp, jwks = new_idp_key(root)
    for node_id, off in officers.items():
        add_local_section(fed.dirs[node_id], off, ROLES[node_id],
                          jwks=jwks if node_id == "KAZ-BS" else None)
    apis = {}
    for node_id in SERVING:
        running = fed.start(node_id)
        if node_id in officers:
            apis[node_id] = start_api(running)
    try:
        yield Setup(fed=fed, officers=officers, other=Officers(root / "other", "OTHER"),
                    idp=idp, apis=apis, tmp=root)
    finally:
        for node_id, api in apis.items():
            stop_api(fed.nodes[node_id], api)
        fed.stop_all()


@pytest.fixture
def bx(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    for var in ("BXNODE_HOME", "BXNODE_OFFICER_CERT", "BXNODE_OFFICER_KEY",
                "BXNODE_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)

    def run(*argv: str) -> Run:
        capsys.readouterr()
        try:
            rc = main(list(argv))
        except SystemExit as exc:
            rc = int(exc.code or 0)
        finally:  # main() bound structlog to capsys's stderr; follow the real one again
            structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))
        out, err = capsys.readouterr()
        return Run(rc, out, err)

    return run


def as_officer(s: Setup, node_id: str, officer: str, *, ca: str | None = None) -> list[str]:
    off = s.other if ca == "other" else s.officers[ca or node_id]
    cert, key = off.issue(officer)
    return ["--node-dir", str(s.fed.dirs[node_id]), "--officer-cert", str(cert),
            "--officer-key", str(key)]


def audit(s: Setup, node_id: str) -> list[dict[str, Any]]:
    return s.fed.audit(node_id)


def counts(s: Setup) -> dict[str, int]:
    return {n: len(audit(s, n)) for n in SERVING}


def local_calls(s: Setup, node_id: str) -> list[dict[str, Any]]:
    return [e for e in audit(s, node_id) if e.get("event") == "local_call"]


def manifest(s: Setup) -> Path:
    p = s.tmp / "flight.csv"
    p.write_text(
        "number,issuing_state,doc_type,family_name,given_names,patronymic,dob,nationality,sex\n"
        "AC7654321,KGZ,P,,,,,,\n"
        "N5550001,KGZ,P,Асанов,Бакыт,Токтогулович,1979-11-02,KGZ,M\n")
    return p


# --- each command under an officer identity -------------------------------------------------


def test_query_doc_with_an_officer_certificate(s: Setup, bx: Any) -> None:
    r = bx("query", "doc", "--number", "AC7654321", "--state", "KGZ", "--peer", "KGZ-BS",
           "--purpose", "border_check", "--case-ref", "CLI-DOC-1", "--json",
           *as_officer(s, "KAZ-BS", "kz-duty"))
    assert r.rc == 0, r.err
    out = json.loads(r.out)
    call = local_calls(s, "KAZ-BS")[-1]
    assert (out["peer"], out["hits"], out["results"][0]["reference"], out["verified"],
            out["local_audit_seq"]) == ("KGZ-BS", 1, "KGZ-SLTD-2026-0031", True, call["seq"])
    assert (call["method"], call["caller"], call["operator"], call["auth"], call["outcome"]) == (
        "LookupDocument", "kz-duty", "kz-duty", "certificate", "ok")
    sent = [e for e in audit(s, "KAZ-BS") if e.get("case_ref") == "CLI-DOC-1"
            and e.get("event") == "lookup_sent"]
    answered = [e for e in audit(s, "KGZ-BS") if e.get("case_ref") == "CLI-DOC-1"]
    assert [e["operator"] for e in sent] == ["kz-duty"]
    assert [e["operator"] for e in answered] == ["kz-duty"]
    assert answered[0]["seq"] == out["peer_audit_seq"]


def test_query_person_with_certificate_from_the_environment(s: Setup, bx: Any,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    cert, key = s.officers["KAZ-BS"].issue("kz-duty")
    monkeypatch.setenv("BXNODE_OFFICER_CERT", str(cert))
    monkeypatch.setenv("BXNODE_OFFICER_KEY", str(key))
    r = bx("query", "person", "--family", "Асанов", "--given", "Бакыт", "--dob", "1979-11-02",
           "--nationality", "KGZ", "--sex", "M", "--peer", "KGZ-BS", "--purpose",
           "border_check", "--case-ref", "CLI-PERSON-1", "--node-dir", str(s.fed.dirs["KAZ-BS"]))
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("#0: HIT  ref=KGZ-WNT-2026-0007")
    assert lines[1].startswith("KGZ-BS: 1 hit(s) in 1 item(s); answer verified")
    assert lines[2] == (f"asked through the node's LocalService under your officer identity "
                        f"(local audit entry {local_calls(s, 'KAZ-BS')[-1]['seq']})")


def test_query_batch_all_peers_row_by_row(s: Setup, bx: Any) -> None:
    r = bx("query", "batch", str(manifest(s)), "--peer", "all", "--purpose", "border_check",
           "--case-ref", "CLI-BATCH-1", "--json", *as_officer(s, "KAZ-BS", "kz-duty"))
    assert r.rc == 0, r.err
    out = json.loads(r.out)
    by_peer = {p["peer"]: p for p in out["peers"]}
    assert {p: v["outcome"] for p, v in by_peer.items()} == {
        "KGZ-BS": "answered", "UZB-BS": "answered", "TJK-BS": "not_asked"}
    assert [row["hit"] for row in by_peer["KGZ-BS"]["rows"]] == [["document"], ["person"]]
    assert [row["hit"] for row in by_peer["UZB-BS"]["rows"]] == [[], []]
    assert by_peer["TJK-BS"]["reason"] == "no_agreement_on_file"


def test_query_paxlst_all_peers_person_item_catches_the_new_passport(s: Setup, bx: Any) -> None:
    r = bx("query", "paxlst", str(DEMO / "flight-KC109-paxlst.edi"), "--peers", "all",
           "--purpose", "border_check", "--case-ref", "CLI-PAX-1", "--json",
           *as_officer(s, "KGZ-BS", "kg-duty"))
    assert r.rc == 0, r.err
    out = json.loads(r.out)
    peers = {p["peer"]: p for p in out["peers"]}
    assert {p: v["status"] for p, v in peers.items()} == {
        "KAZ-BS": "answered", "UZB-BS": "answered", "TJK-BS": "not_asked"}
    iusupov = peers["KAZ-BS"]["travellers"][0]
    assert (iusupov["name"], iusupov["hit"]) == ("IUSUPOV TIMUR", ["person"])
    assert [i["reference"] for i in iusupov["items"] if i["outcome"] == "hit"] == [
        "KAZ-WNT-2026-000311"]
    kaz = [e for e in audit(s, "KAZ-BS") if e.get("case_ref") == "CLI-PAX-1"]
    assert kaz and {e["operator"] for e in kaz} == {"kg-duty"}
    assert local_calls(s, "KGZ-BS")[-1]["method"] == "LookupPaxlst"


def test_token_file_with_a_workstation_certificate(s: Setup, bx: Any) -> None:
    now = int(time.time())
    good, expired, forged = (s.tmp / n for n in ("good.jwt", "expired.jwt", "forged.jwt"))
    good.write_text(token(s.idp, "kz-idp-officer", now=now) + "\n")
    expired.write_text(token(s.idp, "kz-idp-officer", now=now - 7200))
    other = ECKey.generate_key("P-256", parameters={"kid": "idp-1"}, private=True)
    forged.write_text(token(other, "kz-idp-officer", now=now))
    base = ["query", "doc", "--number", "AC7654321", "--state", "KGZ", "--peer", "KGZ-BS",
            "--purpose", "border_check", "--case-ref", "CLI-TOKEN-1",
            *as_officer(s, "KAZ-BS", "kz-gate-1")]
    r = bx(*base, "--token-file", str(good))
    assert r.rc == 0, r.err
    call = local_calls(s, "KAZ-BS")[-1]
    assert (call["operator"], call["auth"], call["client_system"]) == (
        "kz-idp-officer", "token", "kz-gate-1")
    for path, reason in ((expired, "token_expired"), (forged, "token_bad_signature")):
        before = counts(s)
        r = bx(*base, "--token-file", str(path))
        assert r.rc == 1
        assert r.error.startswith(f"bxnode: the node refused the call: unauthenticated/"
                                  f"{reason}: ")
        after = counts(s)
        assert after == {**before, "KAZ-BS": before["KAZ-BS"] + 1}  # its local_call only
        assert (local_calls(s, "KAZ-BS")[-1]["caller"],
                local_calls(s, "KAZ-BS")[-1]["reason"]) == ("kz-gate-1", reason)


def test_followup_file_status_four_eyes_watch_list_and_deny(s: Setup, bx: Any) -> None:
    kaz = as_officer(s, "KAZ-BS", "kz-duty")
    r = bx("query", "doc", "--number", "AC7654321", "--state", "KGZ", "--peer", "KGZ-BS",
           "--purpose", "border_check", "--case-ref", "CLI-FU-1", *kaz)
    assert r.rc == 0, r.err
    filed = []
    for _ in range(2):
        r = bx("followup", "file", "--peer", "KGZ", "--reference", "KGZ-SLTD-2026-0031",
               "--fields", "document_number,loss_type", "--purpose", "border_check",
               "--legal-basis", "Agreement art. 7", "--case-ref", "CLI-FU-1", "--json", *kaz)
        assert r.rc == 0, r.err
        filed.append(json.loads(r.out)["id"])
    fid, fid2 = filed
    desk1, desk2 = as_officer(s, "KGZ-BS", "kg-desk-1"), as_officer(s, "KGZ-BS", "kg-desk-2")
    r = bx("followup", "list", "--state", "pending", "--json", *desk1)
    assert r.rc == 0, r.err
    assert {fid, fid2} <= {f["id"] for f in json.loads(r.out)["followups"]}
    r = bx("followup", "approve", fid, "--json", *desk1)
    assert (r.rc, json.loads(r.out)["confirmation_pending"]) == (0, True), r.err
    calls = len(local_calls(s, "KGZ-BS"))
    r = bx("followup", "show", fid, "--json", *desk1)  # through the LocalService
    assert r.rc == 0, r.err
    shown = json.loads(r.out)
    r = bx("followup", "show", fid, "--json", "--node-dir", str(s.fed.dirs["KGZ-BS"]))
    assert r.rc == 0, r.err  # the administrator's own read of the database, the same record
    assert shown == {**json.loads(r.out), "approval_pending_by": "kg-desk-1",
                     "approval_pending_fields": ["document_number", "loss_type"]}
    assert {k: shown[k] for k in ("id", "requester", "state", "hit_reference", "operator",
                                  "legal_basis", "case_ref", "requested")} == {
        "id": fid, "requester": "KAZ-BS", "state": "pending",
        "hit_reference": "KGZ-SLTD-2026-0031", "operator": "kz-duty",
        "legal_basis": "Agreement art. 7", "case_ref": "CLI-FU-1",
        "requested": ["document_number", "loss_type"]}
    show = local_calls(s, "KGZ-BS")[calls:]
    assert [(c["method"], c["operator"], c["outcome"], c["followup_id"]) for c in show] == [
        ("ShowDeskFollowUp", "kg-desk-1", "ok", fid)]
    r = bx("followup", "show", "FU-NEVER", *desk1)
    assert (r.rc, r.error) == (1, "bxnode: the node refused the call: not_found/"
                                  "unknown_followup: no follow-up FU-NEVER was filed with us")
    r = bx("followup", "approve", fid, *desk1)
    assert r.rc == 1
    assert r.error.startswith("bxnode: the node refused the call: "
                              "failed_precondition/same_officer: ")
    r = bx("followup", "status", fid, "--peer", "KGZ-BS", "--json", *kaz)
    assert (r.rc, json.loads(r.out)["state"]) == (0, "pending"), r.err
    r = bx("followup", "approve", fid, *desk2)
    assert r.rc == 0, r.err
    assert r.out.startswith(f"{fid} approved: releasing document_number, loss_type to KAZ-BS")
    r = bx("followup", "watch", fid, "--peer", "KGZ-BS", "--timeout", "20", "--json", *kaz)
    assert r.rc == 0, r.err
    assert json.loads(r.out)["fields"] == {"document_number": "AC7654321",
                                           "loss_type": "stolen"}
    r = bx("followup", "deny", fid2, "--reason", "not covered by the agreement", *desk1)
    assert (r.rc, r.out.strip()) == (0, f"{fid2} denied (signed, bound to its request)")
    r = bx("followup", "status", fid2, "--peer", "KGZ-BS", *kaz)
    assert r.rc == 0 and r.out.startswith(f"{fid2} at KGZ-BS: denied: not covered"), r.err
    kgz = [e for e in audit(s, "KGZ-BS") if e.get("followup_id") in (fid, fid2)]
    assert [(e["event"], e.get("operator")) for e in kgz if e["event"] in (
        "followup_filed", "followup_approval_pending", "followup_approve_refused",
        "followup_approved", "followup_denied")] == [
        ("followup_filed", "kz-duty"), ("followup_filed", "kz-duty"),
        ("followup_approval_pending", "kg-desk-1"), ("followup_approve_refused", "kg-desk-1"),
        ("followup_approved", "kg-desk-2"), ("followup_denied", "kg-desk-1")]


def test_watchlist_changes_by_a_watchlist_manager_hit_at_once(s: Setup, bx: Any) -> None:
    wl = as_officer(s, "KAZ-BS", "kz-wl")
    ask = ["query", "doc", "--number", "N7000001", "--state", "KAZ", "--peer", "KAZ-BS",
           "--purpose", "border_check", "--json", *as_officer(s, "KGZ-BS", "kg-duty")]
    r = bx("watchlist", "add", *ALERT, "--source", "MVD", "--reason", "reported stolen",
           "--json", *wl)
    assert r.rc == 0, r.err
    added = json.loads(r.out)
    assert (added["added"]["ref"], added["added"]["state"]) == ("KAZ-SLTD-2026-CLI-1", "live")
    r = bx(*ask, "--case-ref", "CLI-WL-1")  # the serving node sees it at once
    assert (r.rc, json.loads(r.out)["results"][0]["reference"]) == (0, "KAZ-SLTD-2026-CLI-1")
    r = bx("watchlist", "update", "KAZ-SLTD-2026-CLI-1", "--action", "arrest", "--reason",
           "escalated", *wl)
    assert (r.rc, r.out.strip()) == (0, "updated alert KAZ-SLTD-2026-CLI-1: action"), r.err
    r = bx("watchlist", "withdraw", "KAZ-SLTD-2026-CLI-1", "--reason", "recovered", *wl)
    assert r.rc == 0 and r.out.startswith("withdrew document alert KAZ-SLTD-2026-CLI-1"), r.err
    r = bx(*ask, "--case-ref", "CLI-WL-2")
    assert (r.rc, json.loads(r.out)["results"][0]["outcome"]) == (0, "no_hit")
    kaz = [e for e in audit(s, "KAZ-BS") if e.get("alert_id") == added["alert_id"]]
    assert [(e["event"], e["operator"]) for e in kaz if e["event"].startswith("watchlist_")] == [
        ("watchlist_add", "kz-wl"), ("watchlist_update", "kz-wl"),
        ("watchlist_withdraw", "kz-wl")]
    assert not any("N7000001" in json.dumps(e) for e in kaz)  # never the document number


def test_crossings_confirm_and_reconcile(s: Setup, bx: Any) -> None:
    r = bx("crossings", "confirm", "--peer", "KAZ-BS", "--doc-number", "ac1111111",
           "--doc-state", "KGZ", "--bcp", "KAZ-KORDAI", "--direction", "exit", "--from",
           "2026-11-20T00:00:00Z", "--to", "2026-11-20T12:00:00Z", "--case-ref", "CLI-X-1",
           "--json", *as_officer(s, "KGZ-BS", "kg-duty"))
    assert r.rc == 0, r.err
    assert {k: json.loads(r.out)[k] for k in ("outcome", "bcp", "crossed_at")} == {
        "outcome": "confirmed", "bcp": "KAZ-KORDAI", "crossed_at": "2026-11-20T08:00:00Z"}
    asked = [e for e in audit(s, "KAZ-BS") if e.get("case_ref") == "CLI-X-1"]
    assert asked and {e["operator"] for e in asked} == {"kg-duty"}
    r = bx("crossings", "confirm", "--peer", "KAZ-BS", "--doc-number", "AC1111111",
           "--doc-state", "KGZ", "--bcp", "KAZ-NOWHERE", "--direction", "exit", "--from",
           "2026-11-20T00:00:00Z", "--to", "2026-11-20T12:00:00Z", "--case-ref", "CLI-X-2",
           *as_officer(s, "KGZ-BS", "kg-duty"))
    assert (r.rc, r.error) == (3, "bxnode: the peer refused: invalid_argument/unknown_bcp "
                                  "(signed refusal verified)")  # exit 3, as asked directly
    out = s.tmp / "recon.csv"
    r = bx("crossings", "reconcile", "--peer", "KGZ", "--from", "2026-11-20T00:00:00Z",
           "--to", "2026-11-20T23:59:59Z", "--batch-size", "2", "--out", str(out), "--json",
           *as_officer(s, "KAZ-BS", "kz-duty"))
    assert r.rc == 0, r.err
    summary = json.loads(r.out)
    assert (summary["checked"], summary["batches"], summary["matched"],
            summary["exit_without_entry"], summary["entry_without_exit"]) == (5, 3, 3, 1, 1)
    rows = {row["record_id"]: row for row in csv.DictReader(out.open())}
    assert {k: rows["KZ-KRS-20261120-0003"][k] for k in ("outcome", "doc_number", "doc_state")
            } == {"outcome": "exit_without_entry", "doc_number": "N3333333", "doc_state": "KAZ"}
    call = local_calls(s, "KAZ-BS")[-1]
    assert (call["method"], call["operator"], call["matched"]) == (
        "ReconcileCrossings", "kz-duty", 3)
    kgz = [e for e in audit(s, "KGZ-BS") if e.get("event") == "crossing_confirm"
           and e.get("case_ref", "").startswith("RECON-KGZ-BS-2026-11-20")]
    assert len(kgz) == 3 and {e["operator"] for e in kgz} == {"kz-duty"}



def test_retention_hold_and_release_by_authenticated_officers(s: Setup, bx: Any) -> None:
    """A watchlist manager places the hold, an auditor lifts it, each through the
    LocalService; the node's own hold logic records each with the identity and role; a
    typed --operator, or no identity, is refused outside dev_mode and changes nothing."""
    kaz = s.fed.dirs["KAZ-BS"]
    before = counts(s)
    r = bx("retention", "hold", "CASE-LOC-1", "--reason", "complaint to the DPA",
           "--node-dir", str(kaz), "--operator", "kz-0193")
    assert (r.rc, r.error) == (1, "bxnode: --operator is accepted only when node.toml sets "
                                  "dev_mode = true; outside development the operator is the "
                                  "officer the LocalService authenticates (--officer-cert/"
                                  "--officer-key or --token-file)")
    r = bx("retention", "release", "CASE-LOC-1", "--reason", "x", "--node-dir", str(kaz))
    assert (r.rc, r.error) == (1, "bxnode: 'bxnode retention release' acts for a watchlist "
                                  "manager or an auditor: give --officer-cert and "
                                  "--officer-key or --token-file, or --auditor-key (a typed "
                                  "operator is accepted only when node.toml sets dev_mode = "
                                  "true)")
    assert counts(s) == before  # nothing audited, nothing changed
    r = bx("retention", "hold", "CASE-LOC-1", "--reason", "complaint to the DPA", "--json",
           *as_officer(s, "KAZ-BS", "kz-wl"))
    assert r.rc == 0, r.err
    assert json.loads(r.out) == {"case_ref": "CASE-LOC-1", "held": True, "by": "kz-wl",
                                 "role": "watchlist_manager"}
    r = bx("retention", "hold", "CASE-LOC-1", "--reason", "again",
           *as_officer(s, "KAZ-BS", "kz-aud"))
    assert (r.rc, r.error) == (1, "bxnode: the node refused the call: failed_precondition/"
                                  "already_held: case CASE-LOC-1 is already on hold")
    r = bx("retention", "holds", "--json", "--node-dir", str(kaz))
    assert [(h["case_ref"], h["by"], h["role"]) for h in json.loads(r.out)["holds"]] == [
        ("CASE-LOC-1", "kz-wl", "watchlist_manager")]
    r = bx("retention", "release", "CASE-LOC-1", "--reason", "answered",
           *as_officer(s, "KAZ-BS", "kz-aud"))
    assert (r.rc, r.out.strip()) == (0, "case CASE-LOC-1 released by kz-aud (auditor)"), r.err
    r = bx("retention", "release", "CASE-LOC-1", "--reason", "answered",
           *as_officer(s, "KAZ-BS", "kz-duty"))
    assert r.rc == 1 and r.error.startswith("bxnode: the node refused the call: "
                                            "permission_denied/role_required: ")
    kaz_new = audit(s, "KAZ-BS")[before["KAZ-BS"]:]
    assert [(e["event"], e.get("case_ref"), e["operator"], e["role"], e["reason"])
            for e in kaz_new if e["event"].startswith("retention_")] == [
        ("retention_hold", "CASE-LOC-1", "kz-wl", "watchlist_manager", "complaint to the DPA"),
        ("retention_hold_refused", None, "kz-aud", "auditor", "already_held"),
        ("retention_release", "CASE-LOC-1", "kz-aud", "auditor", "answered")]
    assert [(c["method"], c["operator"], c["status"]) for c in kaz_new
            if c["event"] == "local_call"] == [
        ("PlaceHold", "kz-wl", "OK"), ("PlaceHold", "kz-aud", "FAILED_PRECONDITION"),
        ("ReleaseHold", "kz-aud", "OK"), ("ReleaseHold", "kz-duty", "PERMISSION_DENIED")]
    assert counts(s)["KGZ-BS"] == before["KGZ-BS"]  # no peer heard of it

# --- refused before anything is read or sent ------------------------------------------------


def _cmds(s: Setup) -> dict[str, tuple[str, list[str]]]:
    ask = ["--purpose", "border_check", "--case-ref", "CLI-BAD-1"]
    return {
        "query doc": ("KAZ-BS", ["query", "doc", "--number", "AC7654321", "--state", "KGZ",
                                 "--peer", "KGZ-BS", *ask]),
        "query person": ("KAZ-BS", ["query", "person", "--family", "Асанов", "--dob", "1979",
                                    "--nationality", "KGZ", "--peer", "KGZ-BS", *ask]),
        "query batch": ("KAZ-BS", ["query", "batch", str(manifest(s)), "--peer", "KGZ-BS",
                                   *ask]),
        "query paxlst": ("KGZ-BS", ["query", "paxlst", str(DEMO / "flight-KC109-paxlst.edi"),
                                    "--peer", "KAZ-BS", *ask]),
        "followup file": ("KAZ-BS", ["followup", "file", "--peer", "KGZ-BS", "--reference",
                                     "KGZ-SLTD-2026-0031", "--fields", "loss_type",
                                     "--legal-basis", "art. 7", *ask]),
        "followup status": ("KAZ-BS", ["followup", "status", "FU-1", "--peer", "KGZ-BS"]),
        "followup watch": ("KAZ-BS", ["followup", "watch", "FU-1", "--peer", "KGZ-BS",
                                      "--timeout", "5"]),
        "followup approve": ("KGZ-BS", ["followup", "approve", "FU-1"]),
        "followup deny": ("KGZ-BS", ["followup", "deny", "FU-1", "--reason", "no"]),
        "crossings confirm": ("KGZ-BS", [
            "crossings", "confirm", "--peer", "KAZ-BS", "--doc-number", "AC1111111",
            "--doc-state", "KGZ", "--bcp", "KAZ-KORDAI", "--direction", "exit", "--from",
            "2026-11-20T00:00:00Z", "--to", "2026-11-20T12:00:00Z", "--case-ref", "C-1"]),
        "crossings reconcile": ("KAZ-BS", [
            "crossings", "reconcile", "--peer", "KGZ-BS", "--from", "2026-11-20T00:00:00Z",
            "--to", "2026-11-20T23:59:59Z", "--out", str(s.tmp / "never.csv")]),
        "watchlist add": ("KAZ-BS", ["watchlist", "add", *ALERT, "--source", "MVD",
                                     "--reason", "reported stolen"]),
        "watchlist update": ("KAZ-BS", ["watchlist", "update", "KAZ-SLTD-2026-000117",
                                        "--action", "arrest", "--reason", "escalated"]),
        "watchlist withdraw": ("KAZ-BS", ["watchlist", "withdraw", "KAZ-SLTD-2026-000117",
                                          "--reason", "recovered"]),
    }


COMMANDS = ("query doc", "query person", "query batch", "query paxlst", "followup file",
            "followup status", "followup watch", "followup approve", "followup deny",
            "crossings confirm", "crossings reconcile", "watchlist add", "watchlist update",
            "watchlist withdraw")
ALERT = ("--kind", "document", "--ref", "KAZ-SLTD-2026-CLI-1", "--action", "seize_document",
         "--expires", "2030-12-31", "--number", "N7000001", "--state", "KAZ", "--type", "P",
         "--loss-type", "stolen")


@pytest.mark.parametrize("command", COMMANDS)
def test_typed_operator_or_no_identity_is_refused_outside_dev_mode(s: Setup, bx: Any,
                                                                   command: str) -> None:
    node, argv = _cmds(s)[command]
    d = ["--node-dir", str(s.fed.dirs[node])]
    before = counts(s)
    r = bx(*argv, *d, "--operator", "kz-0193")
    assert r.rc == 1
    assert r.error == ("bxnode: --operator is accepted only when node.toml sets dev_mode = "
                       "true; outside development the operator is the officer the "
                       "LocalService authenticates (--officer-cert/--officer-key or "
                       "--token-file)")
    r = bx(*argv, *d)
    assert r.rc == 1
    assert r.error == (f"bxnode: 'bxnode {command}' acts for an officer: give --officer-cert "
                       "and --officer-key or --token-file (a typed operator is accepted only "
                       "when node.toml sets dev_mode = true)")
    assert counts(s) == before  # nothing audited, nothing sent, on any node


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_identities_are_refused_and_send_nothing(s: Setup, bx: Any, command: str) -> None:
    node, argv = _cmds(s)[command]
    before = counts(s)
    calls = len(local_calls(s, node))
    # a certificate another CA issued: the handshake fails, the node never sees a call
    r = bx(*argv, *as_officer(s, node, "kz-duty", ca="other"))
    assert r.rc == 1
    assert r.error == ("bxnode: the node's LocalService is unavailable (is it serving, and "
                       "does its client CA trust your certificate?)")
    assert counts(s) == before
    # a certificate without its key, a token file that is not a token
    cert, _ = s.officers[node].issue("kz-nobody")
    r = bx(*argv, "--node-dir", str(s.fed.dirs[node]), "--officer-cert", str(cert))
    assert (r.rc, r.error) == (1, "bxnode: --officer-cert and --officer-key go together")
    junk = s.tmp / "junk.jwt"
    junk.write_text("two tokens\n")
    r = bx(*argv, "--node-dir", str(s.fed.dirs[node]), "--token-file", str(junk))
    assert (r.rc, r.error) == (1, f"bxnode: --token-file {junk} must hold one bearer token "
                                  "(a compact JWT) and nothing else")
    assert counts(s) == before
    # an identity the role table gives no role: refused by the node, audited, nothing sent
    r = bx(*argv, *as_officer(s, node, "kz-nobody"))
    assert r.rc == 1
    assert r.error.startswith("bxnode: the node refused the call: permission_denied/"
                              "role_required: ")
    assert counts(s) == {**before, node: before[node] + 1}
    last = local_calls(s, node)[calls:]
    assert [(c["caller"], c["status"], c["reason"]) for c in last] == [
        ("kz-nobody", "PERMISSION_DENIED", "role_required")]


def test_operator_must_name_the_authenticated_identity(s: Setup, bx: Any) -> None:
    argv = ["query", "doc", "--number", "N0000001", "--state", "KGZ", "--peer", "KGZ-BS",
            "--purpose", "border_check", "--case-ref", "CLI-OP-1",
            *as_officer(s, "KAZ-BS", "kz-duty")]
    before = counts(s)
    r = bx(*argv, "--operator", "kz-0193")
    assert (r.rc, r.error) == (1, "bxnode: --operator kz-0193 is not the identity your "
                                  "credentials name (kz-duty); drop --operator")
    assert counts(s) == {**before, "KAZ-BS": before["KAZ-BS"] + 1}  # the WhoAmI call
    r = bx(*argv, "--operator", "kz-duty")
    assert r.rc == 0, r.err


def test_administrator_commands_take_no_typed_operator_outside_dev_mode(s: Setup, bx: Any) -> None:
    before = counts(s)
    for argv in (["crossings", "bcps", str(DEMO / "bcps.json")],
                 ["crossings", "import", str(DEMO / "kaz-crossings.csv")],
                 ["watchlist", "sync", str(DEMO / "kaz-watchlist.csv"), "--source", "MVD"],
                 ["followup", "list"], ["followup", "show", "FU-1"]):
        r = bx(*argv, "--node-dir", str(s.fed.dirs["KAZ-BS"]), "--operator", "kz-0193")
        assert r.rc == 1
        assert r.error.startswith("bxnode: --operator is accepted only when node.toml sets "
                                  "dev_mode = true")
    assert counts(s) == before
