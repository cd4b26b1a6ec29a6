"""The auditor's tools: prove / verify-bundle, search, export, report (rendered in headless
Chromium), erase-expired, and AuditorService access for the auditor role only."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from node.cli.main import main as bxnode
from node.client.peer import QueryContext
from node.core.errors import RemoteError
from node.core.model import DocumentQuery, QueryKind
from node.federation.devkeys_auditor import AUDITOR_ID, add_dev_auditor
from node.server.audit_services import witness_once
from tests.federation import CTX, DEV, Federation, make_federation


def _with_auditor(members: dict[str, Any]) -> None:
    members["members"].append(json.loads((add_dev_auditor(DEV) / "member.json").read_text()))


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    f = make_federation(tmp_path_factory.mktemp("tools"), members_edit=_with_auditor)
    for n in f.dirs:
        f.start(n)
    for asker in ("KGZ-BS", "UZB-BS"):
        client = f.client(asker)
        try:
            for purpose in ("border_check", "criminal_investigation"):
                request = client.build(
                    QueryContext(CTX.operator, purpose, CTX.legal_basis, CTX.case_ref),
                    QueryKind.DOCUMENT, [DocumentQuery(number="N1122334", issuing_state="KAZ")])
                with contextlib.suppress(RemoteError):  # refusals belong in the report too
                    client.send("KAZ-BS", request, expected_items=1)
        finally:
            client._store.close()  # type: ignore[union-attr]
            client.close()
    from tests.integration.test_audit_services import on_loop, services

    # witnessed by KGZ-BS and UZB-BS: proof bundles carry their cosignatures
    assert on_loop(f, "KAZ-BS", witness_once(services(f, "KAZ-BS"))) == {
        "KGZ-BS": "cosigned", "UZB-BS": "cosigned"}
    yield f
    f.stop_all()


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        rc = bxnode(list(args))
    return rc, out.getvalue()


def test_prove_and_verify_bundle_offline(fed: Federation, tmp_path: Path) -> None:
    kaz = str(fed.dirs["KAZ-BS"])
    bundle = tmp_path / "p.json"
    assert run("audit", "prove", "--seq", "2", "--out", str(bundle), "--node-dir", kaz)[0] == 0
    members = str(fed.root / "members.json")
    rc, out = run("audit", "verify-bundle", str(bundle), "--members", members, "--json")
    assert rc == 0 and json.loads(out)["seq"] == 2
    doc = json.loads(bundle.read_text())
    # the latest cosigned checkpoint, with both witnesses' cosignatures, and the default
    # quorum is the node's [audit] witness_quorum (1)
    result = json.loads(out)
    assert (result["witnesses"], result["quorum"]) == (
        ["bxnode-witness/KGZ-BS", "bxnode-witness/UZB-BS"], 1)
    rc, out = run("audit", "status", "--json", "--node-dir", kaz)
    assert doc["tree_size"] == json.loads(out)["last_cosigned_size"] > 2
    assert json.loads(out)["cosignatures"] == 2 and rc == 0
    doc["inclusion"] = doc["inclusion"][:-1] or ["AAAA"]
    bundle.write_text(json.dumps(doc))
    assert run("audit", "verify-bundle", str(bundle), "--members", members)[0] == 1


def test_a_bundle_below_the_configured_quorum_fails_by_default(fed: Federation,
                                                             tmp_path: Path) -> None:
    kaz = str(fed.dirs["KAZ-BS"])
    client = fed.client("KGZ-BS")
    try:  # one more exchange: its entry is after the witnessed checkpoint
        client.send("KAZ-BS", client.build(CTX, QueryKind.DOCUMENT, [
            DocumentQuery(number="N1122334", issuing_state="KAZ")]), expected_items=1)
    finally:
        client._store.close()  # type: ignore[union-attr]
        client.close()
    newest = max(e["seq"] for e in fed.audit("KAZ-BS"))
    bundle = tmp_path / "n.json"
    assert run("audit", "prove", "--seq", str(newest), "--out", str(bundle),
               "--node-dir", kaz)[0] == 0
    members = str(fed.root / "members.json")
    rc, out = run("audit", "verify-bundle", str(bundle), "--members", members, "--json",
                  "--node-dir", kaz)
    assert (rc, json.loads(out)["witnesses"], json.loads(out)["quorum"]) == (1, [], 1)
    assert run("audit", "verify-bundle", str(bundle), "--members", members, "--quorum",
               "0")[0] == 0


def test_search_and_export(fed: Federation, tmp_path: Path) -> None:
    kaz = str(fed.dirs["KAZ-BS"])
    rc, out = run("audit", "search", "--peer", "KGZ-BS", "--operator", "officer-7",
                  "--case-ref", "CASE-1", "--outcome", "answered", "--json", "--node-dir", kaz)
    rows = [json.loads(x) for x in out.splitlines()]
    assert rc == 0 and rows and all(r["requester"] == "KGZ-BS" for r in rows)
    target = tmp_path / "out.csv"
    assert run("audit", "export", "--format", "csv", "--out", str(target),
               "--node-dir", kaz)[0] == 0
    table = list(csv.DictReader(target.open()))
    assert table and {"seq", "requester", "purpose", "outcome"} <= set(table[0])
    rc, out = run("audit", "export", "--format", "jsonl", "--peer", "UZB-BS", "--node-dir", kaz)
    assert rc == 0 and all(json.loads(x)["requester"] == "UZB-BS" for x in out.splitlines())


def test_auditor_role_gets_access_others_are_denied(fed: Federation, tmp_path: Path) -> None:
    members = str(fed.root / "members.json")
    auditor = str(DEV / "auditor")
    rc, out = run("audit", "search", "--remote", "KAZ-BS", "--auditor-dir", auditor,
                  "--members", members, "--peer", "KGZ-BS")
    assert rc == 0 and all(json.loads(x)["requester"] == "KGZ-BS" for x in out.splitlines())
    bundle = tmp_path / "r.json"
    assert run("audit", "prove", "--seq", "1", "--remote", "KAZ-BS", "--auditor-dir", auditor,
               "--members", members, "--out", str(bundle))[0] == 0
    assert run("audit", "verify-bundle", str(bundle), "--members", members)[0] == 0
    # a border node's credentials are refused
    rc, _ = run("audit", "search", "--remote", "KAZ-BS", "--auditor-dir",
                str(fed.dirs["KGZ-BS"]), "--members", members)
    assert rc == 3
    # the auditor's access is itself audited
    assert any(e.get("event") == "auditor_access" and e.get("requester") == AUDITOR_ID
               for e in fed.audit("KAZ-BS"))


def _chromium() -> str | None:
    """Debian's Chromium, which `make test` installs (scripts/ensure-chromium.sh)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_html_report_renders_in_headless_chromium(fed: Federation, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    assert run("audit", "report", "--from", "2020-01-01T00:00:00Z", "--out", str(report),
               "--node-dir", str(fed.dirs["KAZ-BS"]))[0] == 0
    text = report.read_text()
    # self-contained: no scripts, no external resources
    assert "<script" not in text and "src=" not in text and "href=" not in text
    for needle in ("chart-peers", "chart-purposes", "refusals", "hit-rates", "followups",
                   "witnessing", "KGZ-BS", "UZB-BS"):
        assert needle in text
    # a period reaching back years still charts today's queries (bucketed, not cut off)
    import re

    assert re.search(r"<title>KGZ-BS \d{4}-\d{2}-\d{2}: [1-9]", text)
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (make test installs it where it can)")
    profile = tmp_path / "profile"
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'id="chart-peers"' in dom and 'data-series="KGZ-BS"' in dom
    assert 'id="hit-rates"' in dom and "Audit report: KAZ-BS" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={shot}",
         "--window-size=1000,1400", report.as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000


def test_erase_expired_keeps_the_log_verifiable(fed: Federation) -> None:
    kaz = str(fed.dirs["KAZ-BS"])
    rc, out = run("audit", "erase-expired", "--retention-days", "1", "--json", "--node-dir", kaz)
    result = json.loads(out)
    assert rc == 0 and (result["erased"], result["override"]) == (0, True)  # nothing is old
    # the override is in the log: retention used, range erased (none), at the erasure's time
    [entry] = [e for e in fed.audit("KAZ-BS") if e["seq"] == result["audit_seq"]]
    assert (entry["event"], entry["retention_days"], entry["configured_retention_days"],
            entry["override"]) == ("audit_erasure", 1, 1095, True)
    assert entry["audit_erasure"] == {
        "erased_ms": entry["time_ms"], "retention_ms": 86_400_000,
        "before_ms": entry["time_ms"] - 86_400_000, "erased": 0, "first_seq": None,
        "last_seq": None}
    rc, out = run("audit", "verify", "--json", "--node-dir", kaz)
    assert rc == 0 and json.loads(out)["ok"]
    assert [r["seq"] for r in json.loads(out)["erasures"]] == [result["audit_seq"]]
    assert json.loads(out)["unsealed"] == 0  # sealed with the erasure, in one checkpoint
