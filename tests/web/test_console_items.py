"""The console's remaining items of issue 15, on the shared federation of tests/web/conftest.py
(real nodes over mTLS, SQLCipher, Rego, Debian's headless Chromium): the desk's order and
what each card shows, TD1/TD2/MRV-A zones on the check page, the watchlist's exact figures."""

from __future__ import annotations

from typing import Any

import pytest

from node.crossings.extension import NodeServerWithLocal
from node.followup.handler import FileFollowUpHandler
from node.matching.mrz import check_digit
from tests.web.conftest import Setup
from tests.web.test_console import STOLEN, check_document, officer

pytestmark = pytest.mark.integration


def _cd(field: str) -> str:
    return str(check_digit(field))


def _file_followup(duty: Any, case_ref: str, *, purpose: str, legal_basis: str) -> str:
    f = duty.locator("#check-document")
    f.locator("select[name=purpose]").select_option(purpose)
    f.locator("input[name=legal_basis]").fill(legal_basis)
    check_document(duty, *STOLEN, case_ref=case_ref)
    with duty.expect_navigation():
        duty.locator("#peer-KGZ-BS button.follow-up").click()
    assert duty.locator("#flash").inner_text() == "The follow-up was filed."
    return str(duty.locator("tbody tr td").first.inner_text())


def test_the_desk_shows_overdue_requests_first_with_purpose_basis_and_case(web: Setup
                                                                             ) -> None:
    # KGZ-BS's peer-facing FileFollowUp handler's desk: its deadline setting ([followup]
    # deadline_hours) is moved for one filing, so that one is overdue the moment it is filed
    server = web.nodes["KGZ-BS"].node.server
    assert isinstance(server, NodeServerWithLocal), server  # the node serves crossings
    handler = next(m.handler for m in server.crossings.signed_methods
                   if m.method == "FileFollowUp")
    assert isinstance(handler, FileFollowUpHandler), handler
    desk = handler._desk
    duty = officer(web, "KAZ-BS", "kz-duty")
    on_time = _file_followup(duty, "CASE-WEB-ONTIME", purpose="border_check",
                             legal_basis="bilateral agreement")
    saved = desk.deadline_ms
    desk.deadline_ms = -3_600_000  # the deadline setting: filed an hour past its deadline
    try:
        duty.goto(web.nodes["KAZ-BS"].url + "check")
        late = _file_followup(duty, "CASE-WEB-LATE", purpose="migration_control",
                              legal_basis="KAZ-KGZ readmission agreement art. 7")
    finally:
        desk.deadline_ms = saved
    page = officer(web, "KGZ-BS", "kg-desk-1")
    cards = page.locator("section.desk")
    states = [c.locator(".state").inner_text() for c in cards.all()]
    ids = [str(c.get_attribute("id")) for c in cards.all()]
    assert states[0] == "Overdue" and ids[0] == f"desk-{late}"  # filed last, shown first
    rank = {"Overdue": 0, "Pending": 1}
    assert [rank.get(s, 2) for s in states] == sorted(rank.get(s, 2) for s in states)
    assert ids.index(f"desk-{late}") < ids.index(f"desk-{on_time}")
    assert states[ids.index(f"desk-{on_time}")] == "Pending"

    def facts(fid: str) -> dict[str, str]:
        card = page.locator(f"#desk-{fid}")
        dts = [d.inner_text() for d in card.locator("dt").all()]
        dds = [d.inner_text() for d in card.locator("dd").all()]
        return {k: v for k, v in zip(dts, dds, strict=True)
                if k in ("Purpose", "Legal basis", "Case reference", "Their officer")}

    assert facts(late) == {"Purpose": "Migration control",
                           "Legal basis": "KAZ-KGZ readmission agreement art. 7",
                           "Case reference": "CASE-WEB-LATE", "Their officer": "kz-duty"}
    assert facts(on_time) == {"Purpose": "Border check", "Legal basis": "bilateral agreement",
                              "Case reference": "CASE-WEB-ONTIME", "Their officer": "kz-duty"}
    overdue = [e for e in web.fed.audit("KGZ-BS") if e.get("event") == "followup_overdue"
               and e.get("followup_id") in (late, on_time)]
    assert [e["followup_id"] for e in overdue] == [late]


def _td1(number: str, state: str, dob: str, sex: str, exp: str, names: str) -> str:
    l1 = f"ID{state}{number.ljust(9, '<')}{_cd(number.ljust(9, '<'))}".ljust(30, "<")
    l2 = f"{dob}{_cd(dob)}{sex}{exp}{_cd(exp)}{state}".ljust(29, "<")
    l2 += _cd(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29])
    return f"{l1}\n{l2}\n{names.ljust(30, '<')}"


def _zone2(width: int, l1: str, number: str, nat: str, dob: str, sex: str, exp: str, *,
           composite: bool) -> str:
    head = f"{number.ljust(9, '<')}{_cd(number.ljust(9, '<'))}{nat}{dob}{_cd(dob)}{sex}"
    body = f"{head}{exp}{_cd(exp)}".ljust(width - (1 if composite else 0), "<")
    if composite:
        body += _cd(body[0:10] + body[13:20] + body[21:35])
    return f"{l1.ljust(width, '<')}\n{body}"


@pytest.mark.parametrize(("fmt", "zone"), [
    ("TD1", _td1("AC7654321", "KGZ", "791102", "M", "360228", "ASANOV<<BAKYT")),
    ("TD2", _zone2(36, "I<KGZASANOV<<BAKYT", "AC7654321", "KGZ", "791102", "M", "360228",
                   composite=True)),
    ("MRV-A", _zone2(44, "V<KAZASANOV<<BAKYT", "VK0012345", "KGZ", "791102", "M", "270101",
                     composite=False)),
])
def test_td1_td2_and_a_visa_zone_become_the_right_queries(web: Setup, fmt: str, zone: str
                                                         ) -> None:
    page = officer(web, "KAZ-BS", "kz-duty")
    f = page.locator("#check-mrz")
    f.locator("textarea[name=mrz]").fill(zone)
    f.locator("select[name=peer]").select_option("KGZ-BS")
    f.locator("input[name=case_ref]").fill(f"CASE-WEB-{fmt}")
    with page.expect_navigation():
        f.locator("button[type=submit]").click()
    assert f"MRZ {fmt}" in page.locator(".meta").inner_text()
    rows = page.locator("#peer-KGZ-BS tbody tr")
    got = [(r.locator("td").nth(0).inner_text(), r.locator("td").nth(1).inner_text(),
            r.locator(".result").inner_text(), r.locator(".reference").inner_text())
           for r in rows.all()]
    # the holder (name, birth, nationality from the zone) is KGZ's wanted person; the
    # document is an ID card or a visa, not the stolen passport AC7654321 (type P): no hit
    assert got == [("1", "Document in the MRZ", "no hit", ""),
                   ("2", "Holder in the MRZ", "HIT", "KGZ-WNT-2026-0007")]
    call = web.audit("KAZ-BS", "LookupMrz")[-1]
    assert (call["operator"], call["outcome"], call["case_ref"]) == (
        "kz-duty", "ok", f"CASE-WEB-{fmt}")
    assert call["results"] == [{"peer": "KGZ-BS", "outcome": "answered", "items": 2,
                                "hits": 1}]


def test_watchlist_stats_after_an_add_and_a_withdraw(web: Setup) -> None:
    page = officer(web, "KAZ-BS", "kz-watch")

    def stats() -> list[tuple[str, ...]]:
        return [tuple(c.inner_text() for c in r.locator("td").all())
                for r in page.locator("#stats tbody tr").all()
                if r.locator("td").nth(1).inner_text() == "console-stats"]

    assert stats() == []
    f = page.locator("#watchlist-add")
    for name, value in (("owner_ref", "KAZ-SLTD-WEB-STATS"), ("action", "seize_document"),
                        ("expires", "2030-01-01"), ("number", "N7700999"),
                        ("issuing_state", "KAZ"), ("doc_type", "P"), ("loss_type", "stolen"),
                        ("source", "console-stats"), ("reason", "reported stolen")):
        f.locator(f"input[name={name}]").fill(value)
    with page.expect_navigation():
        f.locator("button[type=submit]").click()
    assert stats() == [("document", "console-stats", "live", "1")]
    w = page.locator("#watchlist-withdraw")
    w.locator("input[name=owner_ref]").fill("KAZ-SLTD-WEB-STATS")
    w.locator("input[name=reason]").fill("found")
    with page.expect_navigation():
        w.locator("button[type=submit]").click()
    assert stats() == [("document", "console-stats", "withdrawn", "1")]
