"""OpenID Connect sign-in to the console, in Chromium, through the stand-in provider.

The authorization-code flow with PKCE (OpenID Connect Core 1.0 section 3.1, RFC 7636) end to
end: Chromium follows KAZ-BS's console to :class:`tests.web.idp.StandInIdentityProvider`
(another site: ``localhost`` against the console's ``127.0.0.1``), the officer types their
user name there, the provider sends the browser back with a code, the node exchanges it over
TLS and checks the ID token with the LocalService's TokenVerifier.  Then the refusals, each
with its reason in the page and the ``bxnode-reason`` header, one audit entry, and no
session: a state that is not the session's, a code replayed, an ID token with another
nonce, another audience, expired, signed by a key the node does not know.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from node.web.sessions import COOKIE
from tests.web.conftest import Setup

pytestmark = pytest.mark.integration

KAZ = "KAZ-BS"


def through_idp(web: Setup, page: Any, login: str) -> Any:
    """From the console's sign-in page through the provider's form, back to the console;
    the response to the callback."""
    page.goto(web.nodes[KAZ].url + "signin")
    page.click("#signin-oidc")
    expect(page).to_have_url(re.compile(r"^https://localhost:\d+/authorize\?"))
    page.fill("#idp-login", login)
    with page.expect_response(re.compile(r"/signin/oidc/callback\?")) as callback:
        page.click("#idp-sign-in")
    page.wait_for_load_state()
    return callback.value


def signed_in_sessions(web: Setup, identity: str) -> int:
    n = web.nodes[KAZ]
    return int(asyncio.run_coroutine_threadsafe(
        n.console.sessions.count(identity=identity), n.node.loop).result(10))


def test_an_officer_signs_in_through_the_identity_provider(web: Setup) -> None:
    page = web.page(KAZ, None)
    before, sessions = len(web.idp.token_requests), signed_in_sessions(web, "kz-oidc-duty")
    callback = through_idp(web, page, "kz-oidc-duty")
    assert callback.status == 200
    expect(page).to_have_url(re.compile(r"/check$"))  # the duty officer's first page
    assert page.locator("#officer").inner_text() == "kz-oidc-duty"
    nav = [a.inner_text() for a in page.locator("nav a").all()]
    assert nav == ["Check", "My follow-ups"]  # what duty_officer may do, nothing more
    asked = web.idp.authorize_requests[-1]
    assert (asked["response_type"], asked["scope"], asked["code_challenge_method"]) == (
        "code", "openid", "S256")
    assert [outcome for _code, outcome in web.idp.token_requests[before:]] == ["ok"]
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert (cookies[COOKIE]["httpOnly"], cookies[COOKIE]["secure"],
            cookies[COOKIE]["sameSite"]) == (True, True, "Strict")
    assert "__Host-bxnode-oidc" not in cookies  # the transaction is over
    assert signed_in_sessions(web, "kz-oidc-duty") == sessions + 1

    r = page.context.request.get(web.nodes[KAZ].url + "desk")  # not this role's page
    assert (r.status, r.headers["bxnode-reason"]) == (403, "role_required")
    f = page.locator("#check-document")
    f.locator("input[name=number]").fill("AC7654321")
    f.locator("input[name=issuing_state]").fill("KGZ")
    f.locator("select[name=peer]").select_option("KGZ-BS")
    f.locator("input[name=case_ref]").fill("CASE-WEB-OIDC")
    f.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("#peer-KGZ-BS tr.hit .reference").inner_text() == "KGZ-SLTD-2026-0031"

    signin = web.audit(KAZ, "SignIn")[-1]
    assert (signin["caller"], signin["auth"], signin["outcome"], signin["roles"]) == (
        "kz-oidc-duty", "token", "ok", ["duty_officer"])
    lookup = next(e for e in reversed(web.audit(KAZ, "LookupDocument"))
                  if e.get("case_ref") == "CASE-WEB-OIDC")
    assert (lookup["operator"], lookup["auth"], lookup["via"], lookup["outcome"]) == (
        "kz-oidc-duty", "token", "console", "ok")
    received = next(e for e in reversed(web.fed.audit("KGZ-BS"))
                    if e.get("case_ref") == "CASE-WEB-OIDC")
    assert received["operator"] == "kz-oidc-duty"  # the neighbour sees who asked


def test_an_identity_without_a_role_is_refused_after_the_provider(web: Setup) -> None:
    page = web.page(KAZ, None)
    callback = through_idp(web, page, "kz-oidc-nobody")
    assert (callback.status, callback.headers["bxnode-reason"]) == (403, "role_required")
    entry = web.audit(KAZ, "SignIn")[-1]
    assert (entry["caller"], entry["outcome"], entry["reason"]) == (
        "kz-oidc-nobody", "refused", "role_required")
    assert signed_in_sessions(web, "kz-oidc-nobody") == 0


def _refused_sign_in(web: Setup, page: Any, callback: Any, reason: str, *, login: str,
                     sessions_before: int) -> None:
    assert (callback.status, callback.headers["bxnode-reason"]) == (401, reason)
    assert page.locator("#refusal-reason").inner_text() == reason
    entry = web.audit(KAZ, "SignIn")[-1]
    assert (entry["caller"], entry["outcome"], entry["status"], entry["reason"],
            entry["via_sign_in"]) == ("anonymous", "refused", "UNAUTHENTICATED", reason, "oidc")
    assert signed_in_sessions(web, login) == sessions_before
    page.goto(web.nodes[KAZ].url + "check")
    expect(page).to_have_url(re.compile(r"/signin$"))  # no session was created


def test_a_state_that_is_not_the_sessions_is_refused_before_any_code_is_exchanged(
        web: Setup) -> None:
    page = web.page(KAZ, None)
    before, sessions = len(web.idp.token_requests), signed_in_sessions(web, "kz-oidc-duty")
    web.idp.wrong_state = True
    callback = through_idp(web, page, "kz-oidc-duty")
    _refused_sign_in(web, page, callback, "oidc_state_mismatch", login="kz-oidc-duty",
                     sessions_before=sessions)
    assert len(web.idp.token_requests) == before  # the code never left the node


def test_a_replayed_code_is_refused(web: Setup) -> None:
    first = web.page(KAZ, None)
    sessions = signed_in_sessions(web, "kz-oidc-duty")
    callback = through_idp(web, first, "kz-oidc-duty")
    assert callback.status == 200
    used = callback.url
    code = re.search(r"code=([^&]+)", used)
    assert code is not None
    # The same answer again: its transaction was used up with the first sign-in.
    replay = web.page(KAZ, None)
    response = replay.goto(used)
    assert (response.status, response.headers["bxnode-reason"]) == (401, "oidc_state_mismatch")
    # The code under a fresh transaction of this browser: the provider refuses it.
    replay.goto(web.nodes[KAZ].url + "signin")
    replay.click("#signin-oidc")
    expect(replay).to_have_url(re.compile(r"/authorize\?"))
    state = web.idp.authorize_requests[-1]["state"]
    before = len(web.idp.token_requests)
    response = replay.goto(web.nodes[KAZ].url + f"signin/oidc/callback?code={code.group(1)}"
                           f"&state={state}")
    assert web.idp.token_requests[before:] == [(code.group(1), "invalid_grant")]
    assert signed_in_sessions(web, "kz-oidc-duty") == sessions + 1  # the first one's only
    assert (response.status, response.headers["bxnode-reason"]) == (401, "oidc_code_refused")
    entry = web.audit(KAZ, "SignIn")[-1]
    assert (entry["caller"], entry["outcome"], entry["reason"]) == (
        "anonymous", "refused", "oidc_code_refused")


BAD_TOKENS = {
    "another nonce": ({"nonce": "not-this-sign-in"}, None, "oidc_nonce_mismatch"),
    "another audience": ({"aud": "bxnode-uzb-console"}, None, "token_wrong_audience"),
    "expired": ({"exp": "-3600", "iat": "-7200"}, None, "token_expired"),
    "another key, same kid": ({}, "stand-in-idp-1", "token_bad_signature"),
    "another key, unknown kid": ({}, "stranger-1", "token_unknown_key"),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_an_id_token_that_fails_a_check_is_refused(web: Setup, case: str) -> None:
    claims, stranger, reason = BAD_TOKENS[case]
    now = web.clock() // 1000
    web.idp.tamper(**{k: now + int(v) if k in ("exp", "iat") else v for k, v in claims.items()})
    if stranger is not None:
        web.idp.sign_with_stranger(kid=stranger)
    page = web.page(KAZ, None)
    before, sessions = len(web.idp.token_requests), signed_in_sessions(web, "kz-oidc-duty")
    callback = through_idp(web, page, "kz-oidc-duty")  # a role: only the token stops it
    assert [o for _c, o in web.idp.token_requests[before:]] == ["ok"]  # the provider gave it
    _refused_sign_in(web, page, callback, reason, login="kz-oidc-duty",
                     sessions_before=sessions)
