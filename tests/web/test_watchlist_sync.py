"""Watchlist import and sync in the console, in Chromium: ``bxnode watchlist sync``'s own
logic (AlertDesk.sync) behind a form, the difference shown before anything changes, the
``max_withdraw`` guard, the confirmation re-checked, each step audited (the console's
``console_call`` SyncAlerts and the desk's ``watchlist_sync``) with the officer's identity.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import Setup
from tests.web.test_console import csrf, officer, shot

pytestmark = pytest.mark.integration

KAZ = "KAZ-BS"
SOURCE = "MVD-WEB"
HEADER = ("kind,owner_ref,action,expires,contact,number,issuing_state,doc_type,loss_type,"
          "family_name,given_names,patronymic,dob,nationality,sex")


def row(i: int, action: str = "seize_document") -> str:
    return f"document,MVD-WEB-{i:03d},{action},2036-01-01,,MW{i:07d},KAZ,P,stolen,,,,,,"


def csv(rows: list[str]) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def preview(page: Any, name: str, data: bytes, *, max_withdraw: str | None = None) -> None:
    page.goto(page.url.split("/watchlist")[0] + "/watchlist")
    f = page.locator("#watchlist-sync")
    f.locator("input[name=file]").set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": data}])
    f.locator("input[name=source]").fill(SOURCE)
    if max_withdraw is not None:
        f.locator("input[name=max_withdraw]").fill(max_withdraw)
    submit(page, "#watchlist-sync button[type=submit]")


def submit(page: Any, selector: str) -> None:
    """Click and wait for the page it loads (never read the previous page's figures)."""
    with page.expect_navigation():
        page.locator(selector).click()


def counts(page: Any) -> tuple[int, int, int, int]:
    return tuple(int(page.locator(f"#count-{k}").inner_text())  # type: ignore[return-value]
                 for k in ("added", "changed", "withdrawn", "unchanged"))


def syncs(web: Setup) -> list[dict[str, Any]]:
    return [e for e in web.fed.audit(KAZ) if e.get("event") == "watchlist_sync"
            and e.get("source") == SOURCE]


def console_syncs(web: Setup) -> list[tuple[Any, ...]]:
    return [(e["operator"], e["dry_run"], e["outcome"], e["reason"])
            for e in web.audit(KAZ, "SyncAlerts")]


def test_sync_shows_the_difference_first_and_guards_a_truncated_file(web: Setup) -> None:
    page = officer(web, KAZ, "kz-watch")
    full = [row(i) for i in range(1, 121)]
    before = len(console_syncs(web))

    preview(page, "mvd-v1.csv", csv(full))  # the first sync of a source is its import
    assert counts(page) == (120, 0, 0, 0)
    assert syncs(web) == []  # a preview changes nothing
    submit(page, "#sync-apply button")
    assert page.locator("#flash").inner_text() == "The sync was applied."
    assert counts(page) == (120, 0, 0, 0)
    assert [(e["operator"], e["added"]) for e in syncs(web)] == [("kz-watch", 120)]

    v2 = [row(1), row(2, "arrest"), *full[2:119], row(121)]  # 120 dropped, 121 new
    preview(page, "mvd-v2.csv", csv(v2))
    diff = [(li.get_attribute("class"), li.get_attribute("data-ref"))
            for li in page.locator("#diff li").all()]
    assert diff == [("added", "MVD-WEB-121"), ("changed", "MVD-WEB-002"),
                    ("withdrawn", "MVD-WEB-120")]
    assert counts(page) == (1, 1, 1, 118)
    shot(page, "watchlist-sync")
    token = page.locator("input[name=sync_token]").get_attribute("value")
    submit(page, "#sync-apply button")
    assert page.locator("#flash").inner_text() == "The sync was applied."
    assert [(e["added"], e["changed"], e["withdrawn"], e["unchanged"])
            for e in syncs(web)][-1] == (1, 1, 1, 118)
    r = page.context.request.post(web.nodes[KAZ].url + "watchlist/sync/apply",
                                  form={"csrf": csrf(page), "sync_token": str(token)})
    assert (r.status, r.headers["bxnode-reason"]) == (409, "sync_not_pending")  # once only

    truncated = csv(v2[:10])  # the export was cut short: 110 alerts would go
    preview(page, "mvd-cut.csv", truncated)
    assert page.locator("#refusal-reason").inner_text() == "too_many_withdrawals"
    assert "would withdraw 110 alerts of MVD-WEB" in page.locator("#refusal-message").inner_text()
    assert page.locator("#sync-apply").count() == 0  # nothing to confirm
    preview(page, "mvd-cut.csv", truncated, max_withdraw="110")  # the officer's own limit
    assert counts(page) == (0, 0, 110, 10)
    assert len(syncs(web)) == 2  # neither preview applied anything

    w = page.context.request.post(web.nodes[KAZ].url + "watchlist/withdraw", form={
        "csrf": csrf(page), "owner_ref": "MVD-WEB-050", "reason": "found"})
    assert w.status == 200
    submit(page, "#sync-apply button")  # the difference shown is no longer true
    assert page.locator("#refusal-reason").inner_text() == "sync_plan_changed"
    assert len(syncs(web)) == 2

    assert console_syncs(web)[before:] == [
        ("kz-watch", True, "ok", ""), ("kz-watch", False, "ok", ""),
        ("kz-watch", True, "ok", ""), ("kz-watch", False, "ok", ""),
        ("kz-watch", False, "refused", "sync_not_pending"),
        ("kz-watch", True, "refused", "too_many_withdrawals"), ("kz-watch", True, "ok", ""),
        ("kz-watch", False, "refused", "sync_plan_changed")]
    applied = web.audit(KAZ, "SyncAlerts")[before + 1]
    assert (applied["source"], applied["added"], applied["max_withdraw"]) == (SOURCE, 120, 100)
    assert re.fullmatch(r"[0-9a-f]{64}", applied["file_sha256"])


def test_a_file_with_bad_lines_is_refused_line_by_line_and_other_roles_may_not_sync(
        web: Setup) -> None:
    page = officer(web, KAZ, "kz-watch")
    bad = csv([row(1), "document,MVD-WEB-002,seize_document,2036-13-40,,X,KAZ,P,stolen"])
    preview(page, "bad.csv", bad)
    assert page.locator("#refusal-reason").inner_text() == "bad_sync_file"
    assert page.locator("#file-errors tbody tr").count() >= 1
    duty = officer(web, KAZ, "kz-duty")
    expect(duty.locator("nav a", has_text="Watchlist")).to_have_count(0)
    r = duty.context.request.post(web.nodes[KAZ].url + "watchlist/sync", multipart={
        "csrf": csrf(duty), "source": SOURCE,
        "file": {"name": "x.csv", "mimeType": "text/csv", "buffer": csv([row(1)])}})
    assert (r.status, r.headers["bxnode-reason"]) == (403, "role_required")
    refused = web.audit(KAZ, "SyncAlerts")[-1]
    assert (refused["operator"], refused["outcome"], refused["reason"]) == (
        "kz-duty", "refused", "role_required")
