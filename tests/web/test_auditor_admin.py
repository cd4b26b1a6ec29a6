"""The auditor's proof bundles and the administrator's quotas, in Chromium.

An auditor downloads ``bxnode audit prove``'s bundle for an entry and it verifies offline
against the members file (``bxnode audit verify-bundle``'s function); a bad number, an
entry that does not exist and a role without audit rights are refused and audited.  The
Node page shows each neighbour's items asked today against its agreement's daily quota
(the usage ledger the policy's quota check reads), moving when a neighbour asks, and the
digest of the policy that decides, as the audit records name it.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from node.audit.bundle import verify_bundle
from node.federation.members_file import load_members
from tests.web.conftest import Setup
from tests.web.test_console import STOLEN, check_document, csrf, officer, sign_in

pytestmark = pytest.mark.integration


def test_an_auditor_downloads_a_proof_bundle_that_verifies_offline(web: Setup) -> None:
    page = officer(web, "KAZ-BS", "kz-auditor")
    page.goto(web.nodes["KAZ-BS"].url + "audit")
    seq = int(page.locator("#entries tbody tr td").first.inner_text())  # the newest entry
    page.locator("#audit-prove input[name=seq]").fill(str(seq))
    with page.expect_download() as download:
        page.locator("#audit-prove button[type=submit]").click()
    assert download.value.suggested_filename == f"audit-proof-{seq}.json"
    data = download.value.path().read_bytes()
    report = verify_bundle(data, directory=load_members(web.fed.root / "members.json"),
                           quorum=0, expect_log="KAZ-BS")
    assert report.seq == seq and report.entry is not None
    assert (report.entry["event"], report.entry["operator"]) == ("console_call", "kz-auditor")
    proved = web.audit("KAZ-BS", "AuditProof")[-1]
    assert (proved["operator"], proved["entry_seq"], proved["outcome"]) == ("kz-auditor", seq, "ok")

    url = web.nodes["KAZ-BS"].url + "audit/prove"
    for given, status, reason in (("abc", 400, "invalid_argument"), ("0", 400, "invalid_argument"),
                                  (str(10**9), 403, "no_such_entry")):
        r = page.context.request.post(url, form={"csrf": csrf(page), "seq": given})
        assert (r.status, r.headers["bxnode-reason"]) == (status, reason), given
    duty = officer(web, "KAZ-BS", "kz-duty")
    r = duty.context.request.post(url, form={"csrf": csrf(duty), "seq": str(seq)})
    assert (r.status, r.headers["bxnode-reason"]) == (403, "role_required")
    assert [(e["operator"], e["reason"]) for e in web.audit("KAZ-BS", "AuditProof")][-4:] == [
        ("kz-auditor", "invalid_argument"), ("kz-auditor", "invalid_argument"),
        ("kz-auditor", "no_such_entry"), ("kz-duty", "role_required")]


def test_the_node_page_shows_quotas_used_today_and_the_deciding_policy(web: Setup) -> None:
    admin = officer(web, "KGZ-BS", "kg-admin")
    admin.goto(web.nodes["KGZ-BS"].url + "node")
    row = admin.locator("#quota-KAZ-BS")
    assert row.locator(".quota").inner_text() == "100000"
    assert "not in force" not in row.inner_text()
    used = int(row.locator(".used").inner_text())
    duty = officer(web, "KAZ-BS", "kz-duty")
    check_document(duty, *STOLEN, case_ref="CASE-WEB-QUOTA")  # one item, KAZ asks KGZ
    expect(duty.locator("#peer-KGZ-BS .outcome")).to_have_text("Answered")
    admin.reload()
    assert int(admin.locator("#quota-KAZ-BS .used").inner_text()) == used + 1
    digest = admin.locator("#policy-digest").inner_text()
    answered = next(e for e in reversed(web.fed.audit("KGZ-BS"))
                    if e.get("case_ref") == "CASE-WEB-QUOTA" and e.get("policy_digest"))
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and digest == answered["policy_digest"]


def test_the_doctor_checks_on_the_node_page_are_in_the_officers_language(web: Setup) -> None:
    admin = sign_in(web, "KAZ-BS", "kz-admin", locale="ru-RU")
    admin.goto(web.nodes["KAZ-BS"].url + "node")
    rows = {r.locator("td").first.inner_text(): r.locator(".message").inner_text()
            for r in admin.locator("#checks tbody tr").all()}
    assert rows["config"].endswith("node.toml корректен (KAZ-BS)")
    assert rows["database"] == "база данных sqlcipher открывается своим ключом"
    assert rows["signing key"].endswith(
        "только в dev_mode, никогда в эксплуатации")  # dev keys, translated piece by piece
    assert "общедоступный ключ разработки из keys/dev" in rows["signing key"]
    assert rows["peer KGZ-BS"].startswith("доступен по адресу 127.0.0.1:")
