"""Signing in and out: the officer's certificate, or the agency's identity provider.

Each attempt counts against the per-address limit (``sign_in_rate_limited`` past it) and
leaves an audit entry ``console_call`` (action ``SignIn``) with the identity tried and the
outcome; an identity the role table gives no role is refused (``role_required``): default
deny.  Signing in replaces the anonymous session with a new one (new id, new CSRF token).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.core.errors import BxError
from node.local.auth import Identity
from node.web.app import SESSION, Refusal
from node.web.sessions import COOKIE

if TYPE_CHECKING:
    from node.web.app import Console

__all__ = ["routes"]


def routes(app: web.Application, c: Console) -> None:
    r = app.router
    r.add_get("/signin", partial(page, c))
    r.add_post("/signin/certificate", partial(certificate, c))
    r.add_get("/signin/oidc", partial(oidc_begin, c))
    r.add_get("/signin/oidc/callback", partial(oidc_callback, c))
    r.add_post("/signout", partial(sign_out, c))


async def page(c: Console, request: web.Request) -> web.StreamResponse:
    session = request.get(SESSION)
    cookie = None
    if session is None:
        cookie, session = await c.sessions.new()
        request[SESSION] = session
    resp = c.render(request, "signin.html", oidc=c.oidc is not None,
                    expired=request.query.get("expired") == "1",
                    has_certificate=bool(c.certificate_identity(request)))
    if cookie is not None:
        from node.web.app import set_cookie

        set_cookie(resp, cookie)
    return resp


async def _limit(c: Console, request: web.Request, how: str) -> None:
    if not c.limiter.allow(request.remote or "unknown"):
        await c.audit(request, "SignIn", outcome="refused", status="RESOURCE_EXHAUSTED",
                      reason="sign_in_rate_limited", facts={"via_sign_in": how})
        raise Refusal("RESOURCE_EXHAUSTED", "sign_in_rate_limited",
                      "too many sign-in attempts from this address; wait a minute")


async def _signed_in(c: Console, request: web.Request, *, name: str, auth: str,
                     client_system: str = "") -> web.StreamResponse:
    ident = Identity(name=name, method=auth, roles=c.roles.roles_for(name),
                     client_system=client_system)
    if not ident.roles:
        await c.audit(request, "SignIn", outcome="refused", status="PERMISSION_DENIED",
                      reason="role_required", identity=ident)
        raise Refusal("PERMISSION_DENIED", "role_required",
                      "the node's role table gives this identity no role")
    resp = web.HTTPSeeOther("/")
    await c.sign_in(request, resp, identity=name, auth=auth, client_system=client_system)
    await c.audit(request, "SignIn", outcome="ok", status="OK", identity=ident)
    raise resp


async def certificate(c: Console, request: web.Request) -> web.StreamResponse:
    await _limit(c, request, "certificate")
    name = c.certificate_identity(request)
    if not name:
        await c.audit(request, "SignIn", outcome="refused", status="UNAUTHENTICATED",
                      reason="no_identity", facts={"via_sign_in": "certificate"})
        raise Refusal("UNAUTHENTICATED", "no_identity",
                      "the browser presented no certificate of the agency CA")
    return await _signed_in(c, request, name=name, auth="certificate")


#: The OpenID Connect transaction's cookie: SameSite=Lax, because the provider sends the
#: browser back from another site (a Strict cookie would not come with it); it names only
#: the pending state, nonce and PKCE verifier, kept here for 10 minutes, used once.
OIDC_COOKIE = "__Host-bxnode-oidc"
OIDC_PENDING_MS = 600_000


async def oidc_begin(c: Console, request: web.Request) -> web.StreamResponse:
    await _limit(c, request, "oidc")
    if c.oidc is None:
        raise Refusal("FAILED_PRECONDITION", "oidc_not_configured",
                      "this node signs officers in by certificate only")
    url, saved = c.oidc.begin()
    key = await c.sessions.begin_oidc(saved, ttl_ms=OIDC_PENDING_MS)
    resp = web.HTTPFound(url)
    resp.set_cookie(OIDC_COOKIE, key, path="/", secure=True, httponly=True, samesite="Lax",
                    max_age=OIDC_PENDING_MS // 1000)
    raise resp


async def oidc_callback(c: Console, request: web.Request) -> web.StreamResponse:
    await _limit(c, request, "oidc")
    if c.oidc is None:
        raise Refusal("FAILED_PRECONDITION", "oidc_not_configured",
                      "this node signs officers in by certificate only")
    saved: dict[str, Any] = await c.sessions.take_oidc(
        request.cookies.get(OIDC_COOKIE, "")[:64], ttl_ms=OIDC_PENDING_MS)
    try:
        sub = await c.oidc.finish(code=request.query.get("code", ""),
                                  state=request.query.get("state", ""), saved=saved)
    except BxError as exc:
        await c.audit(request, "SignIn", outcome="refused", status=exc.status,
                      reason=exc.reason, facts={"via_sign_in": "oidc"})
        raise Refusal(exc.status, exc.reason, exc.message) from None
    ident = Identity(name=sub, method="token", roles=c.roles.roles_for(sub),
                     client_system=c.certificate_identity(request))
    if not ident.roles:
        await c.audit(request, "SignIn", outcome="refused", status="PERMISSION_DENIED",
                      reason="role_required", identity=ident)
        raise Refusal("PERMISSION_DENIED", "role_required",
                      "the node's role table gives this identity no role")
    # The browser came from the provider's site: the Strict session cookie set here is
    # sent from the next same-site navigation on, which this page starts.
    resp = c.render(request, "signed_in.html")
    await c.sign_in(request, resp, identity=sub, auth="token",
                    client_system=ident.client_system)
    resp.del_cookie(OIDC_COOKIE, path="/", secure=True, httponly=True, samesite="Lax")
    await c.audit(request, "SignIn", outcome="ok", status="OK", identity=ident)
    return resp


async def sign_out(c: Console, request: web.Request) -> web.StreamResponse:
    await c.audit(request, "SignOut", outcome="ok", status="OK")
    await c.sessions.drop(request.cookies.get(COOKIE))
    resp = web.HTTPSeeOther("/signin")
    resp.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    raise resp
