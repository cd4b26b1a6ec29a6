"""``bxnode query paxlst`` and ``query batch`` rows against real nodes over mTLS (issue 11 §3).

A flight's PAXLST message carries a wanted person on a new passport: the document is
unknown everywhere, the person is on KAZ-BS's watchlist (``Юсупов Тимур``, written in
Cyrillic; the airline sends ``IUSUPOV:TIMUR``), and the person item catches them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import structlog

from node.cli.main import main
from tests.federation import ROOT, Federation
from tests.unit.cli._support import Bx, Run, assert_one_sentence, audit_bodies

pytestmark = pytest.mark.integration

DATA = ROOT / "tests" / "data" / "paxlst"


@pytest.fixture
def bx(capsys: pytest.CaptureFixture[str]) -> Bx:
    def run(*argv: str) -> Run:
        capsys.readouterr()
        try:
            rc = main(list(argv))
        except SystemExit as exc:
            rc = int(exc.code or 0)
        finally:
            structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))
        out, err = capsys.readouterr()
        return Run(rc, out, err)

    return run


def _q(fed: Federation, asker: str, *peers: str, case: str = "CASE-PAX-1") -> list[str]:
    out = ["--node-dir", str(fed.dirs[asker]), "--purpose", "border_check", "--case-ref", case]
    for p in peers:
        out += ["--peer", p]
    return out


def test_wanted_person_on_a_new_passport_is_caught_by_the_person_item(
        fed: Federation, bx: Bx) -> None:
    before = len(audit_bodies(fed.dirs["KAZ-BS"]))
    r = bx("query", "paxlst", str(DATA / "d02b-passengers.edi"), *_q(fed, "KGZ-BS", "KAZ-BS"))
    assert r.rc == 0, r.err
    theirs = audit_bodies(fed.dirs["KAZ-BS"])[before:]
    assert [(e["event"], e["query_kind"], e["items"], e["requester"], e["case_ref"],
             e["outcome"]) for e in theirs] == [
        ("lookup", "batch", 8, "KGZ-BS", "CASE-PAX-1", "answered")]
    seq = theirs[0]["seq"]
    assert r.out.splitlines() == [
        "flight KC109 ALA-FRU: PAXLST D02B passenger list (message PAX001), 4 traveller(s), "
        "8 item(s) in 1 batch(es) per peer",
        "KAZ-BS:",
        "  #1 IUSUPOV TIMUR (passenger): person: HIT  ref=KAZ-WNT-2026-000311 action=arrest "
        "contact=KAZ-BS SIRENE-style desk, +7 7172 000 001; document P FA7777777 UZB: no hit",
        "  #2 O'BRIEN MARY ANN (passenger): person: no hit; document P PA1234567 IRL: no hit; "
        "document V KGZV00991 KGZ: no hit",
        "  #3 NURLANOV ARMAN (passenger): document P N0481516 KAZ: HIT  "
        "ref=KAZ-SLTD-2026-000117 action=seize_document contact=KAZ-BS desk; "
        "person not checked: no date of birth (DTM+329)",
        "  #4 SMITH JOHN (passenger): person: no hit; document P 533380006 GBR: no hit",
        f"  KAZ-BS: 2 hit(s) in 8 item(s), 1 batch(es); answers verified, receipts kept "
        f"(peer audit entries {seq})"]
