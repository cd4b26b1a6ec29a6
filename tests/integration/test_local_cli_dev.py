"""The CLI in development (``dev_mode = true``): a typed ``--operator`` is accepted, and
every use logs the warning ``dev_typed_operator`` (issue 11 §2).

Three demo nodes from keys/dev (KAZ, KGZ, UZB), serving over mTLS on 127.0.0.1; the
CLI signs and sends itself, as before the LocalService existed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from node.cli.main import main
from tests.federation import DEMO, Federation, make_federation
from tests.integration.local_federation import Officers, add_local_section, start_api, stop_api

pytestmark = pytest.mark.integration

CROSSINGS = {"KAZ-BS": "kaz-crossings.csv", "KGZ-BS": "kgz-crossings.csv",
             "UZB-BS": "uzb-crossings.jsonl"}


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Federation, Officers]]:
    root = tmp_path_factory.mktemp("localclidev")
    f = make_federation(root)
    for node, name in CROSSINGS.items():
        d = str(f.dirs[node])
        assert main(["crossings", "bcps", str(DEMO / "bcps.json"), "--node-dir", d]) == 0
        assert main(["crossings", "import", str(DEMO / name), "--node-dir", d]) == 0
    officers = Officers(root / "officers-kaz", "KAZ-BS")
    add_local_section(f.dirs["KAZ-BS"], officers, {"kz-duty": ["duty_officer"]})
    for n in f.dirs:
        f.start(n)
    api = start_api(f.nodes["KAZ-BS"])
    yield f, officers
    stop_api(f.nodes["KAZ-BS"], api)
    f.stop_all()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[dict[str, Any]]]:
    """(exit status, stdout, the JSON log records on stderr)."""
    capsys.readouterr()
    try:
        rc = main(list(argv))
    finally:
        structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))
    out, err = capsys.readouterr()
    records = [json.loads(ln) for ln in err.splitlines() if ln.startswith("{")]
    return rc, out, records


def warnings(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(r["command"], r["source"], r["level"]) for r in records
            if r.get("event") == "dev_typed_operator"]


def operators(fed: Federation, node: str, case_ref: str) -> set[str]:
    return {e["operator"] for e in fed.audit(node) if e.get("case_ref") == case_ref}


def _ask(case: str) -> list[str]:
    return ["--purpose", "border_check", "--case-ref", case, "--operator", "dev-typed-1"]


@pytest.mark.parametrize(("command", "asker", "peer", "argv"), [
    ("query doc", "KAZ-BS", "KGZ-BS", ["query", "doc", "--number", "AC7654321", "--state",
                                       "KGZ", "--peer", "KGZ-BS"]),
    ("query person", "KAZ-BS", "KGZ-BS", ["query", "person", "--family", "Асанов", "--dob",
                                          "1979-11-02", "--nationality", "KGZ", "--peer",
                                          "KGZ-BS"]),
    ("query paxlst", "KGZ-BS", "KAZ-BS", ["query", "paxlst",
                                          str(DEMO / "flight-KC109-paxlst.edi"), "--peer",
                                          "KAZ-BS"]),
    ("crossings confirm", "KGZ-BS", "KAZ-BS", [
        "crossings", "confirm", "--peer", "KAZ-BS", "--doc-number", "AC1111111",
        "--doc-state", "KGZ", "--bcp", "KAZ-KORDAI", "--direction", "exit", "--from",
        "2026-11-20T00:00:00Z", "--to", "2026-11-20T12:00:00Z"]),
])
def test_typed_operator_accepted_with_a_warning(fed: tuple[Federation, Officers],
                                                capsys: pytest.CaptureFixture[str],
                                                command: str, asker: str, peer: str,
                                                argv: list[str]) -> None:
    f, _ = fed
    case = f"DEV-{command.replace(' ', '-').upper()}"
    rc, out, records = run(capsys, *argv, *_ask(case), "--node-dir", str(f.dirs[asker]))
    assert rc == 0, out
    assert warnings(records) == [(command, "--operator", "warning")]
    assert operators(f, peer, case) == {"dev-typed-1"}  # the peer audits the typed id
    assert not any("dev-typed-1" in json.dumps(r) for r in records)  # never logged


def test_configured_operator_warns_too_and_an_identity_still_works(
        fed: tuple[Federation, Officers], capsys: pytest.CaptureFixture[str]) -> None:
    f, officers = fed
    d = ["--node-dir", str(f.dirs["KAZ-BS"])]
    base = ["query", "doc", "--number", "AC7654321", "--state", "KGZ", "--peer", "KGZ-BS",
            "--purpose", "border_check"]
    rc, _, records = run(capsys, *base, "--case-ref", "DEV-CFG-1", *d)
    assert rc == 0
    assert warnings(records) == [("query doc", "[client] operator", "warning")]
    assert operators(f, "KGZ-BS", "DEV-CFG-1") == {"officer-7"}  # init --operator
    cert, key = officers.issue("kz-duty")
    rc, _, records = run(capsys, *base, "--case-ref", "DEV-ID-1", *d, "--officer-cert",
                         str(cert), "--officer-key", str(key))
    assert rc == 0
    assert warnings(records) == []
    assert operators(f, "KGZ-BS", "DEV-ID-1") == {"kz-duty"}


def test_followups_and_reconcile_with_typed_operators(fed: tuple[Federation, Officers],
                                                      capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    f, _ = fed
    kaz, kgz = ["--node-dir", str(f.dirs["KAZ-BS"])], ["--node-dir", str(f.dirs["KGZ-BS"])]
    rc, _, _ = run(capsys, "query", "doc", "--number", "AC7654321", "--state", "KGZ",
                   "--peer", "KGZ-BS", *_ask("DEV-FU-1"), *kaz)
    assert rc == 0
    rc, out, records = run(capsys, "followup", "file", "--peer", "KGZ-BS", "--reference",
                           "KGZ-SLTD-2026-0031", "--fields", "loss_type", "--legal-basis",
                           "art. 7", "--json", *_ask("DEV-FU-1"), *kaz)
    assert rc == 0 and warnings(records) == [("followup file", "--operator", "warning")]
    fid = json.loads(out)["id"]
    rc, out, records = run(capsys, "followup", "approve", fid, "--operator", "kg-desk-typed",
                           *kgz)
    assert rc == 0 and warnings(records) == [("followup approve", "--operator", "warning")]
    approved = [e for e in f.audit("KGZ-BS") if e.get("followup_id") == fid
                and e["event"] == "followup_approved"]
    assert [e["operator"] for e in approved] == ["kg-desk-typed"]
    for sub in ("status", "watch"):
        rc, out, records = run(capsys, "followup", sub, fid, "--peer", "KGZ-BS", "--operator",
                               "dev-typed-1", "--json", *kaz)
        assert rc == 0 and json.loads(out)["fields"] == {"loss_type": "stolen"}
        assert warnings(records) == [(f"followup {sub}", "--operator", "warning")]
    rc, out, records = run(capsys, "crossings", "reconcile", "--peer", "KGZ", "--from",
                           "2026-11-20T00:00:00Z", "--to", "2026-11-20T23:59:59Z", "--out",
                           str(tmp_path / "r.csv"), "--operator", "dev-typed-1", "--json", *kaz)
    assert rc == 0 and json.loads(out)["checked"] == 5
    assert warnings(records) == [("crossings reconcile", "--operator", "warning")]
    assert [e["operator"] for e in f.audit("KAZ-BS")
            if e.get("event") == "crossings_reconciled"] == ["dev-typed-1"]


def test_fractional_transit_hours_count_the_same_on_both_paths(
        fed: tuple[Federation, Officers], capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """--transit-hours 0.4 (24 minutes) through the LocalService, as the CLI counts it when
    it asks the peer itself: the exits at 08:15 and 09:05 entered KGZ 27 and 26 minutes
    later, so only the entry at 14:20 (KGZ exit 18 minutes before) matches; 0.5 h matches
    all three."""
    f, officers = fed
    cert, key = officers.issue("kz-duty")
    ident = ["--officer-cert", str(cert), "--officer-key", str(key)]
    typed = ["--operator", "dev-typed-1"]
    got = {}
    for hours in ("0.4", "0.5"):
        for path, who in (("local", ident), ("direct", typed)):
            rc, out, _ = run(capsys, "crossings", "reconcile", "--peer", "KGZ", "--from",
                             "2026-11-20T00:00:00Z", "--to", "2026-11-20T23:59:59Z",
                             "--transit-hours", hours, "--out",
                             str(tmp_path / f"{path}-{hours}.csv"), *who, "--json",
                             "--node-dir", str(f.dirs["KAZ-BS"]))
            assert rc == 0, out
            s = json.loads(out)
            got[(hours, path)] = (s["checked"], s["matched"], s["exit_without_entry"],
                                  s["entry_without_exit"])
    assert got == {("0.4", "local"): (5, 1, 3, 1), ("0.4", "direct"): (5, 1, 3, 1),
                   ("0.5", "local"): (5, 3, 1, 1), ("0.5", "direct"): (5, 3, 1, 1)}
    call = [e for e in f.audit("KAZ-BS") if e.get("method") == "ReconcileCrossings"][-1]
    assert (call["operator"], call["outcome"], call["matched"]) == ("kz-duty", "ok", 3)
