"""The operator console end to end: real nodes, real mTLS, real SQLCipher and Rego, and Debian's
headless Chromium presenting officers' certificates (tests/web/conftest.py).

The officer's journey (sign in, check a document that hits in KGZ-BS, follow the HIT up in
one click, two different desk officers at KGZ-BS release narrowed fields under four eyes,
the released fields arrive at KAZ-BS), and the guards around it: roles, CSRF, cross-site
posts, idle sessions on the injected clock, the sign-in limit, no personal data in URLs or
logs.  Screenshots of the main pages go to docs/screenshots/ (the README shows them) when
``BXNODE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from node.web.sessions import COOKIE, SignInLimiter
from tests.web.conftest import ROOT, SCREENSHOTS, Setup

pytestmark = pytest.mark.integration

STOLEN = ("AC7654321", "KGZ")  # KGZ-SLTD-2026-0031 in KGZ's watchlist


def goto(page: Any, url: str) -> Any:
    """``page.goto``, once more if Chromium dropped it as net::ERR_NETWORK_CHANGED (the
    shared test machine's interfaces change under it; nothing of ours is involved)."""
    from playwright.sync_api import Error

    try:
        return page.goto(url)
    except Error as exc:
        if "ERR_NETWORK_CHANGED" not in str(exc):
            raise
        return page.goto(url)


def sign_in(web: Setup, node_id: str, officer: str | None, *, locale: str = "en-GB") -> Any:
    page = web.page(node_id, officer, locale=locale)
    goto(page, web.nodes[node_id].url)
    expect(page).to_have_url(re.compile(r"/signin$"))
    with page.expect_navigation():
        page.click("#signin-certificate")
    return page


def officer(web: Setup, node_id: str, name: str) -> Any:
    """``name``'s signed-in page on ``node_id``, shared by the tests that need one (a new
    browser context with a client certificate costs seconds): back at the start page, signed
    in again if the session ended (an idle test moves the clock)."""
    page = web.signed_in.get((node_id, name))
    if page is None:
        page = web.signed_in[(node_id, name)] = sign_in(web, node_id, name)
        return page
    goto(page, web.nodes[node_id].url)
    if re.search(r"/signin(\?expired=1)?$", page.url):
        with page.expect_navigation():
            page.click("#signin-certificate")
    return page


def shot(page: Any, name: str) -> None:
    """The page's screenshot; written to docs/screenshots/ (the README's) only when
    ``BXNODE_SCREENSHOTS=1``, so a plain test run leaves the tree as it found it."""
    png = page.screenshot(full_page=True)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000  # a rendered page, not a blank
    if os.environ.get("BXNODE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / f"{name}.png").write_bytes(png)


def csrf(page: Any) -> str:
    return str(page.locator("input[name=csrf]").first.get_attribute("value"))


def check_document(page: Any, number: str, state: str, *, peer: str = "KGZ-BS",
                   case_ref: str = "CASE-WEB-1") -> None:
    f = page.locator("#check-document")
    f.locator("input[name=number]").fill(number)
    f.locator("input[name=issuing_state]").fill(state)
    f.locator("select[name=peer]").select_option(peer)
    f.locator("input[name=case_ref]").fill(case_ref)
    with page.expect_navigation():
        f.locator("button[type=submit]").click()


def sent_count(web: Setup, node_id: str) -> int:
    return sum(1 for e in web.fed.audit(node_id) if e.get("event") in (
        "lookup_sent", "request_sent", "followup_sent"))


# --- sign-in ----------------------------------------------------------------------------------


def test_sign_in_needs_an_agency_certificate_and_a_role(web: Setup) -> None:
    page = sign_in(web, "KAZ-BS", None)
    assert page.locator("#refusal-reason").inner_text() == "no_identity"
    page = sign_in(web, "KAZ-BS", "kz-nobody")
    assert page.locator("#refusal-reason").inner_text() == "role_required"
    page = sign_in(web, "KAZ-BS", "kz-duty")
    expect(page).to_have_url(re.compile(r"/check$"))
    assert page.locator("#officer").inner_text() == "kz-duty"
    cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE)
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"], cookie["path"]) == (
        True, True, "Strict", "/")
    attempts = [(e["caller"], e["outcome"], e["reason"]) for e in web.audit("KAZ-BS", "SignIn")]
    assert attempts[-3:] == [("anonymous", "refused", "no_identity"),
                             ("kz-nobody", "refused", "role_required"), ("kz-duty", "ok", "")]


def test_every_page_has_a_strict_content_security_policy(web: Setup) -> None:
    page = web.page("KAZ-BS", "kz-duty")
    response = page.goto(web.nodes["KAZ-BS"].url + "signin")
    headers = response.headers
    assert headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert (headers["x-frame-options"], headers["cache-control"]) == ("DENY", "no-store")
    assert "<script" not in page.content()


# --- the officer's journey ------------------------------------------------------------------------


def test_hit_follow_up_four_eyes_release_arrives(web: Setup, capfd: pytest.CaptureFixture[str]
                                                 ) -> None:
    duty = officer(web, "KAZ-BS", "kz-duty")
    shot(duty, "check")
    check_document(duty, *STOLEN, case_ref="CASE-WEB-FU")
    expect(duty).to_have_url(re.compile(r"/check$"))  # a POST: no document number in the URL
    kgz = duty.locator("#peer-KGZ-BS")
    assert kgz.locator(".outcome").inner_text() == "Answered"
    assert kgz.locator(".signature").inner_text().startswith("✔ The answer's signature verified")
    row = kgz.locator("tr.hit")
    assert row.locator(".reference").inner_text() == "KGZ-SLTD-2026-0031"
    assert row.locator(".result").inner_text() == "HIT"
    shot(duty, "results")
    row.locator("button.follow-up").click()  # one click: all fields the record kind has
    duty.wait_for_load_state()
    expect(duty).to_have_url(re.compile(r"/followups$"))
    assert duty.locator("#flash").inner_text() == "The follow-up was filed."
    fid = duty.locator("tbody tr td").first.inner_text()
    assert fid.startswith("FU-")

    desk1 = officer(web, "KGZ-BS", "kg-desk-1")
    expect(desk1).to_have_url(re.compile(r"/desk$"))
    card = desk1.locator(f"#desk-{fid}")
    assert card.locator(".state").inner_text() == "Pending"
    assert "CASE-WEB-FU" in card.inner_text() and "kz-duty" in card.inner_text()
    shot(desk1, "desk")
    for narrowed in ("issuing_state", "document_type"):  # approve less than was asked
        card.locator(f"form.approve input[value={narrowed}]").uncheck()
    card.locator("button.approve-button").click()
    desk1.wait_for_load_state()
    assert desk1.locator("#flash").inner_text() == (
        "Your approval is recorded; a second officer must confirm it.")
    card = desk1.locator(f"#desk-{fid}")
    assert "First approval by kg-desk-1" in card.locator(f"#first-approval-{fid}").inner_text()
    card.locator("button.approve-button").click()  # the same officer again
    desk1.wait_for_load_state()
    assert desk1.locator("#refusal-reason").inner_text() == "same_officer"

    duty.locator(f"#sent-{fid} button.poll").click()  # nothing has left KGZ yet
    duty.wait_for_load_state()
    assert duty.locator("#answer .state").inner_text() == "Pending"
    assert duty.locator("#released").count() == 0

    desk2 = officer(web, "KGZ-BS", "kg-desk-2")
    card = desk2.locator(f"#desk-{fid}")
    assert card.locator(f"#first-approval-{fid}").inner_text().startswith(
        "First approval by kg-desk-1, releasing: document_number, loss_type.")
    assert card.locator("button.approve-button").inner_text() == "Confirm the release"
    card.locator("button.approve-button").click()
    desk2.wait_for_load_state()
    assert desk2.locator("#flash").inner_text() == "Approved: the fields were released."
    assert desk2.locator(f"#desk-{fid} .state").inner_text() == "Approved"

    duty.locator(f"#sent-{fid} button.poll").click()
    duty.wait_for_load_state()
    released = {c.get_attribute("data-field"): c.inner_text()
                for c in duty.locator("#released td.value").all()}
    assert released == {"document_number": "AC7654321", "loss_type": "stolen"}
    shot(duty, "followups")

    kgz_log = [e for e in web.fed.audit("KGZ-BS") if e.get("followup_id") == fid]
    events = [(e["event"], e.get("operator")) for e in kgz_log
              if e["event"].startswith("followup_app")]
    assert events == [("followup_approval_pending", "kg-desk-1"),
                      ("followup_approve_refused", "kg-desk-1"),
                      ("followup_approved", "kg-desk-2")]
    approved = next(e for e in kgz_log if e["event"] == "followup_approved")
    assert approved["first_operator"] == "kg-desk-1"
    calls = [(e["operator"], e["outcome"], e["reason"])
             for e in web.audit("KGZ-BS", "ApproveFollowUp")]
    assert calls == [("kg-desk-1", "ok", ""), ("kg-desk-1", "refused", "same_officer"),
                     ("kg-desk-2", "ok", "")]
    lookup = next(e for e in web.fed.audit("KAZ-BS") if e.get("event") == "console_call"
                  and e.get("case_ref") == "CASE-WEB-FU" and e["action"] == "LookupDocument")
    assert (lookup["operator"], lookup["via"], lookup["outcome"], lookup["results"]) == (
        "kz-duty", "console", "ok", [{"peer": "KGZ-BS", "outcome": "answered", "items": 1,
                                      "hits": 1}])
    out, err = capfd.readouterr()
    assert "AC7654321" not in out + err and "stolen" not in out + err  # nothing personal logged


def test_person_in_cyrillic_and_the_russian_pages(web: Setup) -> None:
    page = sign_in(web, "KAZ-BS", "kz-duty-ru", locale="ru-RU")  # its own: prefs persist
    assert page.locator("nav a").first.inner_text() == "Проверка"  # from Accept-Language
    page.locator("select[name=lang]").select_option("en")
    page.locator("#apply-language").click()
    page.wait_for_load_state()
    assert page.locator("nav a").first.inner_text() == "Check"
    page.locator("select[name=lang]").select_option("ru")
    page.locator("select[name=tz]").select_option("Asia/Bishkek")
    page.locator("#apply-language").click()
    page.wait_for_load_state()
    f = page.locator("#check-person")
    f.locator("input[name=family_name]").fill("Асанов")
    f.locator("input[name=given_names]").fill("Бакыт")
    f.locator("input[name=birth]").fill("1979-11-02")
    f.locator("input[name=nationality]").fill("KGZ")
    f.locator("select[name=peer]").select_option("KGZ-BS")
    f.locator("input[name=case_ref]").fill("CASE-WEB-RU")
    f.locator("button[type=submit]").click()
    page.wait_for_load_state()
    kgz = page.locator("#peer-KGZ-BS")
    assert kgz.locator(".outcome").inner_text() == "Ответил"
    row = kgz.locator("tr.hit")
    assert row.locator("td").nth(1).inner_text() == "Асанов Бакыт"  # as written
    assert (row.locator(".result").inner_text(), row.locator(".reference").inner_text()) == (
        "СОВПАДЕНИЕ", "KGZ-WNT-2026-0007")
    assert row.locator("button.follow-up").inner_text() == "Запросить данные по совпадению"
    shot(page, "results-ru")
    page.goto(web.nodes["KAZ-BS"].url + "followups")
    assert re.search(r"\d{1,2} \w+\.? 20\d\d\u202fг\., \d\d:\d\d:\d\d \+06 \(Asia/Bishkek\)",
                     page.content())  # dates in Russian, times in the officer's zone


def test_mrz_to_all_neighbours_the_agreements_allow(web: Setup) -> None:
    from node.matching.mrz import check_digit

    def cd(f: str) -> str:
        return str(check_digit(f))

    number, dob, exp = "AC7654321", "791102", "360228"
    l2 = number + cd(number) + "KGZ" + dob + cd(dob) + "M" + exp + cd(exp) + "<" * 14 + "0"
    l2 += cd(l2[0:10] + l2[13:20] + l2[21:43])
    page = officer(web, "KAZ-BS", "kz-duty")
    f = page.locator("#check-mrz")
    f.locator("textarea[name=mrz]").fill("P<KGZASANOV<<BAKYT".ljust(44, "<") + "\n" + l2)
    f.locator("input[name=case_ref]").fill("CASE-WEB-MRZ")
    f.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert "MRZ TD3" in page.locator(".meta").inner_text()
    refs = [r.inner_text() for r in page.locator("#peer-KGZ-BS tr.hit .reference").all()]
    assert refs == ["KGZ-SLTD-2026-0031", "KGZ-WNT-2026-0007"]


def test_an_uploaded_manifest_is_checked_item_by_item(web: Setup) -> None:
    page = officer(web, "KAZ-BS", "kz-duty")
    manifest = ("number,issuing_state,doc_type,family_name,given_names,patronymic,dob,"
                "nationality,sex\nAC7654321,KGZ,P,,,,,,\nAC1000001,KGZ,P,,,,,,\n")
    f = page.locator("#check-manifest")
    f.locator("select[name=kind]").select_option("manifest")
    f.locator("input[type=file]").set_input_files(
        files=[{"name": "flight.csv", "mimeType": "text/csv", "buffer": manifest.encode()}])
    f.locator("select[name=peer]").select_option("KGZ-BS")
    f.locator("input[name=case_ref]").fill("CASE-WEB-MANIFEST")
    with page.expect_navigation():
        f.locator("button[type=submit]").click()
    rows = page.locator("#peer-KGZ-BS tbody tr")
    assert [(r.locator("td").nth(0).inner_text(), r.locator(".result").inner_text(),
             r.locator(".reference").inner_text()) for r in rows.all()] == [
        ("1", "HIT", "KGZ-SLTD-2026-0031"), ("2", "no hit", "")]
    call = web.audit("KAZ-BS")[-1]
    assert (call["action"], call["status"], call["caller"]) == ("LookupManifest", "OK", "kz-duty")
    assert "AC7654321" not in page.url


def test_bad_input_is_refused_with_its_reason_and_sends_nothing(web: Setup) -> None:
    page = officer(web, "KAZ-BS", "kz-duty")
    before = sent_count(web, "KAZ-BS")
    check_document(page, "AC765 4321", "KGZ", case_ref="CASE-WEB-BAD")
    assert page.locator("#refusal-reason").inner_text() == "bad_document_number"
    assert page.locator("#check-document input[name=number]").input_value() == "AC765 4321"
    f = page.locator("#check-person")
    f.locator("input[name=family_name]").fill("Асанов")
    f.locator("input[name=birth]").fill("02.11.1979")
    f.locator("input[name=nationality]").fill("KGZ")
    f.locator("input[name=case_ref]").fill("CASE-WEB-BAD")
    f.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("#refusal-reason").inner_text() == "bad_date"
    assert sent_count(web, "KAZ-BS") == before
    calls = [(e["action"], e["status"], e["reason"]) for e in web.audit("KAZ-BS")][-2:]
    assert calls == [("LookupDocument", "INVALID_ARGUMENT", "bad_document_number"),
                     ("LookupPerson", "INVALID_ARGUMENT", "bad_date")]


# --- roles ------------------------------------------------------------------------------------


def test_a_role_that_may_not_approve_sees_no_button_and_is_refused_if_it_posts(web: Setup
                                                                               ) -> None:
    duty = officer(web, "KAZ-BS", "kz-duty")
    check_document(duty, *STOLEN, case_ref="CASE-WEB-ROLE")
    duty.locator("#peer-KGZ-BS button.follow-up").click()
    duty.wait_for_load_state()
    fid = duty.locator("tbody tr td").first.inner_text()
    auditor = officer(web, "KGZ-BS", "kg-auditor")
    expect(auditor).to_have_url(re.compile(r"/desk$"))  # auditors may see the queue
    card = auditor.locator(f"#desk-{fid}")
    assert card.count() == 1
    assert card.locator("form.approve, form.deny, button.approve-button").count() == 0
    nav = [a.inner_text() for a in auditor.locator("nav a").all()]
    assert nav == ["Follow-up desk", "Audit"]
    r = auditor.context.request.post(web.nodes["KGZ-BS"].url + "desk/approve", form={
        "csrf": csrf(auditor), "followup_id": fid, "fields": "document_number"})
    assert (r.status, r.headers["bxnode-reason"]) == (403, "role_required")
    refused = web.audit("KGZ-BS", "ApproveFollowUp")[-1]
    assert (refused["operator"], refused["outcome"], refused["status"], refused["reason"]) == (
        "kg-auditor", "refused", "PERMISSION_DENIED", "role_required")
    auditor.reload()
    assert auditor.locator(f"#desk-{fid} .state").inner_text() == "Pending"  # nothing decided
    r = duty.context.request.get(web.nodes["KAZ-BS"].url + "desk")
    assert (r.status, r.headers["bxnode-reason"]) == (403, "role_required")


# --- CSRF, cross-site posts, sessions, the sign-in limit --------------------------------------


def test_posts_without_the_csrf_token_or_from_another_site_are_refused(web: Setup) -> None:
    page = officer(web, "KAZ-BS", "kz-duty")
    url = web.nodes["KAZ-BS"].url
    before = sent_count(web, "KAZ-BS")
    form = {"kind": "document", "number": STOLEN[0], "issuing_state": STOLEN[1],
            "peer": "KGZ-BS", "purpose": "border_check", "case_ref": "CASE-WEB-CSRF"}
    r = page.context.request.post(url + "check", form=form)
    assert (r.status, r.headers["bxnode-reason"]) == (403, "csrf_failed")
    r = page.context.request.post(url + "check", form={**form, "csrf": "x" * 43})
    assert (r.status, r.headers["bxnode-reason"]) == (403, "csrf_failed")
    evil = ("<form method=post action='" + url + "check'>" + "".join(
        f"<input name={k} value={v}>" for k, v in {**form, "csrf": csrf(page)}.items())
        + "<button id=go>go</button></form>")
    page.route("https://evil.example/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body=evil))
    page.goto("https://evil.example/")
    with page.expect_response(url + "check") as resp:
        page.click("#go")
    assert (resp.value.status, resp.value.headers["bxnode-reason"]) == (
        403, "cross_site_request")
    assert sent_count(web, "KAZ-BS") == before
    reasons = [e["reason"] for e in web.audit("KAZ-BS")][-3:]
    assert reasons == ["csrf_failed", "csrf_failed", "cross_site_request"]


def test_an_idle_session_ends_on_the_injected_clock(web: Setup) -> None:
    page = sign_in(web, "KAZ-BS", "kz-duty")
    token = csrf(page)
    web.clock.advance(web.nodes["KAZ-BS"].console.settings.idle_timeout_s - 5)
    page.goto(web.nodes["KAZ-BS"].url + "check")  # used in time: the idle time restarts
    expect(page).to_have_url(re.compile(r"/check$"))
    web.clock.advance(web.nodes["KAZ-BS"].console.settings.idle_timeout_s + 1)
    r = page.context.request.post(web.nodes["KAZ-BS"].url + "check", form={"csrf": token})
    assert (r.status, r.headers["bxnode-reason"]) == (401, "session_expired")
    page.goto(web.nodes["KAZ-BS"].url + "check")
    expect(page).to_have_url(re.compile(r"/signin\?expired=1$"))
    assert page.locator("#expired").count() == 1


def test_sign_in_attempts_are_rate_limited(web: Setup) -> None:
    console = web.nodes["KAZ-BS"].console
    saved = console.limiter
    console.limiter = SignInLimiter(per_minute=3, clock_ms=web.clock)
    try:
        page = web.page("KAZ-BS", "kz-duty")  # one browser, attempt after attempt

        def attempt() -> str:
            page.goto(web.nodes["KAZ-BS"].url + "signin")
            with page.expect_navigation():
                page.click("#signin-certificate")
            return str(page.url)

        assert [attempt().endswith("/check") for _ in range(3)] == [True, True, True]
        attempt()
        assert page.locator("#refusal-reason").inner_text() == "sign_in_rate_limited"
        web.clock.advance(61)
        assert attempt().endswith("/check")
    finally:
        console.limiter = saved
    refused = [e for e in web.audit("KAZ-BS", "SignIn") if e["reason"] == "sign_in_rate_limited"]
    assert len(refused) == 1 and refused[0]["status"] == "RESOURCE_EXHAUSTED"


# --- the watchlist manager, the auditor, the administrator ------------------------------------


def test_watchlist_add_search_withdraw(web: Setup) -> None:
    page = officer(web, "KAZ-BS", "kz-watch")
    expect(page).to_have_url(re.compile(r"/watchlist$"))
    f = page.locator("#watchlist-add")
    for name, value in (("owner_ref", "KAZ-SLTD-WEB-1"), ("action", "seize_document"),
                        ("expires", "2030-01-01"), ("number", "N7700123"),
                        ("issuing_state", "KAZ"), ("doc_type", "P"), ("loss_type", "stolen"),
                        ("source", "console-test"), ("reason", "reported stolen at CASE-W")):
        f.locator(f"input[name={name}]").fill(value)
    f.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("#flash").inner_text() == "The alert was added."
    s = page.locator("#watchlist-search")
    s.locator("input[name=owner_ref]").fill("KAZ-SLTD-WEB-1")
    s.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("#alert-KAZ-SLTD-WEB-1 .state").inner_text() == "live"
    w = page.locator("#watchlist-withdraw")
    w.locator("input[name=owner_ref]").fill("KAZ-SLTD-WEB-1")
    w.locator("input[name=reason]").fill("found by its owner")
    w.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("#flash").inner_text() == "The alert was withdrawn."
    shot(page, "watchlist")
    acts = [(e["action"], e["outcome"]) for e in web.audit("KAZ-BS")
            if e["action"] in ("AddAlert", "ShowAlert", "WithdrawAlert")]
    assert acts == [("AddAlert", "ok"), ("ShowAlert", "ok"), ("WithdrawAlert", "ok")]
    duty = officer(web, "KAZ-BS", "kz-duty")
    r = duty.context.request.post(web.nodes["KAZ-BS"].url + "watchlist/withdraw", form={
        "csrf": csrf(duty), "owner_ref": "KAZ-SLTD-0001", "reason": "x"})
    assert (r.status, r.headers["bxnode-reason"]) == (403, "role_required")


def test_audit_search_report_and_the_node_page(web: Setup) -> None:
    page = officer(web, "KAZ-BS", "kz-auditor")
    page.locator("nav a", has_text="Audit").click()
    expect(page).to_have_url(re.compile(r"/audit$"))
    assert int(page.locator("#checkpoint-size").inner_text()) > 0
    s = page.locator("#audit-search")
    s.locator("input[name=case_ref]").fill("CASE-WEB-FU")
    s.locator("button[type=submit]").click()
    page.wait_for_load_state()
    refs = {c.inner_text() for c in page.locator("#entries td.case-ref").all()}
    assert refs == {"CASE-WEB-FU"}
    shot(page, "audit")
    with page.expect_download() as download:
        page.click("#report")
    assert download.value.suggested_filename == "audit-report.html"
    assert "KAZ-BS" in download.value.path().read_text(encoding="utf-8")
    admin = officer(web, "KAZ-BS", "kz-admin")
    admin.locator("nav a", has_text="Node").click()
    expect(admin).to_have_url(re.compile(r"/node$"))
    assert re.fullmatch(r"[0-9a-f]{64}", admin.locator("#policy-digest").inner_text())
    checks = {r.locator("td").first.inner_text(): r.locator(".status").inner_text()
              for r in admin.locator("#checks tbody tr").all()}
    assert checks["config"] == "OK" and checks["database"] == "OK"
    assert admin.locator("#peer-KGZ-BS .outcome").inner_text().startswith("answered")
    assert "Development keys are in use" in admin.locator("main").inner_text()
    shot(admin, "node")
    r = page.context.request.get(web.nodes["KAZ-BS"].url + "node")
    assert (r.status, r.headers["bxnode-reason"]) == (403, "role_required")


def test_a_paxlst_upload_is_checked_traveller_by_traveller(web: Setup) -> None:
    edi = (ROOT / "tests" / "data" / "paxlst" / "d05b-passengers.edi").read_text("utf-8")
    first_doc = "FA2002001'DTM+36:20330501:102'LOC+91+UZB"
    assert first_doc in edi
    edi = edi.replace(first_doc, "AC7654321'DTM+36:20360228:102'LOC+91+KGZ")  # KGZ's stolen
    page = officer(web, "KAZ-BS", "kz-duty")
    f = page.locator("#check-manifest")
    f.locator("select[name=kind]").select_option("paxlst")
    f.locator("input[type=file]").set_input_files(
        files=[{"name": "hy771.edi", "mimeType": "text/plain", "buffer": edi.encode()}])
    f.locator("select[name=peer]").select_option("KGZ-BS")
    f.locator("input[name=case_ref]").fill("CASE-WEB-PAXLST")
    with page.expect_navigation():
        f.locator("button[type=submit]").click()
    kgz = page.locator("#peer-KGZ-BS")
    assert kgz.locator(".outcome").inner_text() == "Answered"
    assert [r.inner_text() for r in kgz.locator("tr.hit .reference").all()] == [
        "KGZ-SLTD-2026-0031"]
    assert kgz.locator("tr.no-hit").count() >= 4  # the other travellers' items, no hit
    call = web.audit("KAZ-BS", "LookupPaxlst")[-1]
    assert (call["operator"], call["outcome"], call["case_ref"]) == (
        "kz-duty", "ok", "CASE-WEB-PAXLST")
    assert "KARIMOVA" not in page.url and "AC7654321" not in page.url


def test_the_desk_denies_with_a_reason_and_the_requester_reads_it(web: Setup) -> None:
    duty = officer(web, "KAZ-BS", "kz-duty")
    check_document(duty, *STOLEN, case_ref="CASE-WEB-DENY")
    with duty.expect_navigation():
        duty.locator("#peer-KGZ-BS button.follow-up").click()
    fid = duty.locator("tbody tr td").first.inner_text()
    desk = officer(web, "KGZ-BS", "kg-desk-1")
    r = desk.context.request.post(web.nodes["KGZ-BS"].url + "desk/deny", form={
        "csrf": csrf(desk), "followup_id": fid, "deny_reason": ""})
    assert (r.status, r.headers["bxnode-reason"]) == (400, "bad_deny_reason")
    desk.reload()
    card = desk.locator(f"#desk-{fid}")
    card.locator("input[name=deny_reason]").fill("no legal basis for release was shown")
    with desk.expect_navigation():
        card.locator("button.deny-button").click()
    assert desk.locator("#flash").inner_text() == "Denied."
    assert desk.locator(f"#desk-{fid} .state").inner_text() == "Denied"
    assert desk.locator(f"#desk-{fid} form").count() == 0  # decided: nothing more to do
    duty.goto(web.nodes["KAZ-BS"].url + "followups")
    with duty.expect_navigation():
        duty.locator(f"#sent-{fid} button.poll").click()
    assert duty.locator("#answer .state").inner_text() == "Denied"
    assert "no legal basis for release was shown" in duty.locator("#answer").inner_text()
    assert duty.locator("#released").count() == 0
    calls = [(e["operator"], e["outcome"], e["reason"])
             for e in web.audit("KGZ-BS", "DenyFollowUp")]
    assert calls[-2:] == [("kg-desk-1", "refused", "bad_deny_reason"),
                          ("kg-desk-1", "ok", "")]
