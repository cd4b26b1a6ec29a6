"""The console's HTTP edge: sessions, CSRF, origin and role checks, audit, rendering.

Thin by design (ARCHITECTURE.md): a handler in :mod:`node.web.pages` parses the form,
calls the LocalService's own service layer through :meth:`Console.call` and renders a
template.  Everything that guards a request lives here, in the order it runs:

1. every response: a Content-Security-Policy without inline scripts, ``no-store``, no
   framing, no referrer to other sites (:func:`_secure`);
2. a ``POST`` whose ``Origin`` is not the console's own, or whose ``Sec-Fetch-Site`` says
   another site sent it: ``403 cross_site_request``;
3. the session (cookie ``__Host-bxnode-console``: HttpOnly, Secure, SameSite=Strict), idle
   timeout on the injected clock: none or expired is ``401 not_signed_in`` /
   ``session_expired`` (a page redirects to the sign-in page instead);
4. a ``POST`` without this session's CSRF token: ``403 csrf_failed``;
5. a session signed in by certificate must come with the same certificate:
   ``401 session_certificate_mismatch``;
6. the officer's role for the action, read from the node's role table on every request:
   ``403 role_required``.

Refusals carry the reason in the ``bxnode-reason`` header and in the page; every action
and every refusal after step 1 leaves one audit entry ``console_call`` naming the officer
(or ``anonymous``), committed before the reply, as the LocalService's ``local_call``.
No personal data goes into URLs (searches are POSTs) or into log lines.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import structlog
from aiohttp import web
from multidict import MultiDictProxy

from node.core.errors import BxError, PeerError, Unauthenticated
from node.local.auth import METHOD_ROLES, Forbidden, Identity, RoleTable, identity_from_certificate
from node.store.console_sessions import ConsoleTables
from node.web import i18n
from node.web.sessions import COOKIE, Session, SessionStore, SignInLimiter, csrf_ok
from node.web.settings import LANGUAGES, ConsoleSettings

if TYPE_CHECKING:
    from node.local.server import LocalApiServer
    from node.web.oidc import OidcSignIn

__all__ = ["ACTION_ROLES", "AUDIT_SEQ", "FORM", "OFFICER", "SESSION", "Console", "Refusal",
           "http_status"]

log = structlog.get_logger("bxnode.console")
HERE = Path(__file__).resolve().parent
REASON_HEADER = "bxnode-reason"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

#: Console actions that are not LocalService methods, and the roles that may take them
#: (the LocalService's own methods keep their METHOD_ROLES entries).
ACTION_ROLES: Mapping[str, frozenset[str]] = {
    "ViewAudit": frozenset({"auditor", "admin"}),
    "ViewNode": frozenset({"admin"}),
    "AuditProof": frozenset({"auditor", "admin"}),  # bxnode audit prove, downloaded
    "SyncAlerts": frozenset({"watchlist_manager"}),  # bxnode watchlist sync, dry run first
}

_HTTP = {"INVALID_ARGUMENT": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
         "NOT_FOUND": 404, "FAILED_PRECONDITION": 409, "ABORTED": 409,
         "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
         "UNIMPLEMENTED": 501}


def http_status(grpc_status: str) -> int:
    return _HTTP.get(grpc_status, 500)


def allowed(roles: tuple[str, ...], action: str) -> bool:
    table = ACTION_ROLES.get(action) or METHOD_ROLES.get(action, frozenset())
    return bool(table & set(roles))


class Refusal(Exception):
    """A request the console refuses before (or instead of) the service layer."""

    def __init__(self, status: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


@dataclass(frozen=True, slots=True)
class Officer:
    identity: Identity
    session: Session
    cookie: str


SESSION = web.RequestKey("bxnode_session", Session)
OFFICER = web.RequestKey("bxnode_officer", Officer)
FORM: web.RequestKey[MultiDictProxy[Any]] = web.RequestKey("bxnode_form", MultiDictProxy)
AUDIT_SEQ = web.RequestKey("bxnode_audit_seq", int)  # the entry the last call() committed

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Paths served without a signed-in session.
PUBLIC = ("/signin", "/signin/certificate", "/signin/oidc", "/signin/oidc/callback",
          "/language", "/static/console.css", "/healthz")


class Console:
    """The console for one node.  Keyword-only; ``clock_ms`` drives sessions and limits."""

    def __init__(self, *, settings: ConsoleSettings, api: LocalApiServer, roles: RoleTable,
                 clock_ms: Callable[[], int], oidc: OidcSignIn | None = None,
                 node_status: Callable[[], Awaitable[dict[str, Any]]] | None = None,
                 extras: Any = None) -> None:
        self.settings = settings
        self.api = api
        self.ops = api.ops
        self.roles = roles
        self.clock_ms = clock_ms
        self.oidc = oidc
        self.node_status = node_status
        self.extras = extras  # node.web.pages.Extras: watchlist, audit, node helpers
        # In the node's database: every replica and worker knows every session.
        self.sessions = SessionStore(
            tables=ConsoleTables(self.ops.audit_log.store), read=self.ops.writer.call,
            write=self.ops.writer.run_in_batch, idle_timeout_s=settings.idle_timeout_s,
            clock_ms=clock_ms)
        self.limiter = SignInLimiter(per_minute=settings.sign_in_attempts_per_minute,
                                     clock_ms=clock_ms)
        self._envs = {lang: self._env(lang) for lang in LANGUAGES}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- rendering ------------------------------------------------------------------------

    def _env(self, lang: str) -> jinja2.Environment:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                 autoescape=True, extensions=["jinja2.ext.i18n"],
                                 undefined=jinja2.StrictUndefined)
        env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
        return env

    def language(self, request: web.Request, session: Session | None) -> str:
        if session is not None and session.language:
            return session.language
        header = request.headers.get("Accept-Language", "")
        for part in header.split(","):
            code = part.split(";")[0].strip().lower()[:2]
            if code in LANGUAGES:
                return code
        return self.settings.default_language

    def render(self, request: web.Request, template: str, *, status: int = 200,
               reason: str = "", **ctx: Any) -> web.Response:
        officer: Officer | None = request.get(OFFICER)
        session: Session | None = request.get(SESSION)
        lang = self.language(request, session)
        tz = (session.timezone if session is not None and session.timezone
              else self.settings.timezone)
        env = self._envs[lang]
        roles = officer.identity.roles if officer else ()
        ctx.setdefault("flash", "")
        ctx.setdefault("refusal", None)
        page = env.get_template(template).render(
            lang=lang, tz=tz, officer=officer, csrf=session.csrf if session else "",
            can=lambda action: allowed(roles, action), languages=i18n.language_names(),
            when=lambda ms: i18n.format_time(ms, lang=lang, tz=tz), path=request.path,
            zones=ZONES, **ctx)
        resp = web.Response(text=page, content_type="text/html", charset="utf-8",
                            status=status)
        if reason:
            resp.headers[REASON_HEADER] = reason
        return resp

    def gettext(self, request: web.Request, text: str) -> str:
        lang = self.language(request, request.get(SESSION))
        return i18n.translations(lang).gettext(text)

    # --- audit ----------------------------------------------------------------------------

    async def audit(self, request: web.Request, action: str, *, outcome: str, status: str,
                    reason: str = "", facts: Mapping[str, Any] | None = None,
                    identity: Identity | None = None) -> int:
        officer: Officer | None = request.get(OFFICER)
        ident = identity or (officer.identity if officer else None)
        entry: dict[str, Any] = {
            "event": "console_call", "action": action,
            "caller": ident.name if ident else "anonymous",
            "operator": ident.name if ident else "", "auth": ident.method if ident else "none",
            "client_system": ident.client_system if ident else "", "via": "console",
            "roles": list(ident.roles) if ident else [], **(facts or {}),
            "outcome": outcome, "status": status, "reason": reason}
        now = self.ops.clock_ms()  # the node's clock, as every other audit entry
        seq: int = await self.ops.writer.run_in_batch(
            lambda: self.ops.audit_log.append(entry, time_ms=now))
        return seq

    async def call(self, request: web.Request, action: str, fn: Callable[[dict[str, Any]],
                   Awaitable[Any]], *, method: str = "") -> Any:
        """Authorise ``action`` for the signed-in officer, run ``fn(facts)`` (the service
        layer), audit the outcome, and return its value; a refusal is audited and raised."""
        officer: Officer = request[OFFICER]
        facts: dict[str, Any] = {"method": method} if method else {}
        try:
            if not allowed(officer.identity.roles, action):
                need = ACTION_ROLES.get(action) or METHOD_ROLES.get(action, frozenset())
                raise Forbidden(f"{action} needs the role {' or '.join(sorted(need))}",
                                reason="role_required")
            result = await fn(facts)
        except BaseException as exc:
            status, reason, message = refusal_of(exc)
            await self.audit(request, action, outcome="refused", status=status, reason=reason,
                             facts=facts)
            raise Refusal(status, reason, message) from exc
        request[AUDIT_SEQ] = await self.audit(request, action, outcome="ok", status="OK",
                                              facts=facts)
        return result

    async def invoke(self, request: web.Request, method: str, msg: Any) -> Any:
        """A LocalService method, exactly as the LocalService runs it, for this officer."""
        officer: Officer = request[OFFICER]

        async def run(facts: dict[str, Any]) -> Any:
            return await self.api.invoke(officer.identity, method, msg, facts)

        return await self.call(request, method, run, method=method)

    # --- the guards (module docstring, steps 1-6) ---------------------------------------------

    def app(self) -> web.Application:
        from node.web import pages

        app = web.Application(middlewares=[self._headers, self._guard],
                              client_max_size=self.settings.max_upload_bytes + 64 * 1024)
        pages.routes(app, self)
        app.router.add_static("/static/", HERE / "static", show_index=False,
                              follow_symlinks=False)
        return app

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            _secure(exc.headers)
            raise
        _secure(resp.headers)
        return resp

    def refuse(self, request: web.Request, status: str, reason: str, message: str
               ) -> web.Response:
        return self.render(request, "refused.html", status=http_status(status), reason=reason,
                           refusal=Refusal(status, reason, message),
                           explain=self.gettext(request, explain(reason)))

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        post = request.method == "POST"
        if request.method not in ("GET", "HEAD", "POST"):
            return await self._refused(request, "malformed_request", "INVALID_ARGUMENT",
                                       "the console answers GET and POST only")
        if post:
            origin = request.headers.get("Origin")
            site = request.headers.get("Sec-Fetch-Site")
            if (origin is not None and origin != self.settings.origin) or (
                    site is not None and site not in ("same-origin", "none")):
                return await self._refused(request, "cross_site_request", "PERMISSION_DENIED",
                                           "a form of another site posted to the console")
        cookie = request.cookies.get(COOKIE)
        # Read from the connection before anything is awaited: the browser may give up on
        # the request (a favicon when the officer clicks on) and close it meanwhile.
        presented = self.certificate_identity(request)
        static = request.path.startswith("/static/")  # no session read for a style sheet
        try:
            session = None if static else await self.sessions.get(cookie)
        except BxError as exc:  # the database does not answer: nobody is signed in or out
            log.error("console_sessions_unavailable", reason=exc.reason)
            return self.refuse(request, exc.status, exc.reason,
                               "the node's database does not answer; try again shortly")
        if session is not None:
            request[SESSION] = session
        public = request.path in PUBLIC or static
        if session is not None and session.signed_in:
            ident = Identity(name=session.identity, method=session.auth,
                             roles=self.roles.roles_for(session.identity),
                             client_system=session.client_system)
            request[OFFICER] = Officer(identity=ident, session=session, cookie=cookie or "")
        if not public and (session is None or not session.signed_in):
            expired = await self.sessions.expired(cookie)
            reason = "session_expired" if expired else "not_signed_in"
            if not post:
                raise web.HTTPSeeOther("/signin" + ("?expired=1" if expired else ""))
            return await self._refused(request, reason, "UNAUTHENTICATED",
                                       "sign in first" if not expired else
                                       "the session ended after a period without use")
        if post:
            form = await request.post()
            request[FORM] = form
            token = form.get("csrf")
            if session is None or not csrf_ok(session.csrf, token if isinstance(
                    token, str) else None):
                return await self._refused(request, "csrf_failed", "PERMISSION_DENIED",
                                           "the form's security token is missing or stale; "
                                           "reload the page")
        officer: Officer | None = request.get(OFFICER)
        if officer is not None and officer.identity.method == "certificate":
            if presented != officer.identity.name:
                if request.transport is None:  # gone, not another certificate: no answer
                    raise web.HTTPServiceUnavailable()  # and the session lives on
                await self.sessions.drop(cookie)
                request.pop(OFFICER, None)  # nobody is signed in: the entry says whose it was
                return await self._refused(request, "session_certificate_mismatch",
                                           "UNAUTHENTICATED", "this session belongs to "
                                           "another certificate; sign in again",
                                           facts={"session_of": officer.identity.name,
                                                  "certificate_of": presented})
        before = session.record() if session is not None else None
        try:
            return await handler(request)
        except Refusal as r:
            return self.refuse(request, r.status, r.reason, r.message)
        except BxError as exc:  # a session step of the page's own (signing in or out)
            log.error("console_step_failed", route=route_name(request), reason=exc.reason)
            return self.refuse(request, exc.status, exc.reason, exc.message)
        finally:  # what the page changed (a flash message, the language), for the next one
            if session is not None and cookie and session.record() != before:
                try:
                    await self.sessions.save(cookie, session)
                except BxError as exc:  # the page is done; only its flash message is lost
                    log.error("console_session_not_saved", reason=exc.reason)

    async def _refused(self, request: web.Request, reason: str, status: str, message: str,
                       facts: Mapping[str, Any] | None = None) -> web.Response:
        await self.audit(request, f"{request.method} {route_name(request)}", outcome="refused",
                         status=status, reason=reason, facts=facts)
        log.info("console_refused", route=route_name(request), reason=reason)
        return self.refuse(request, status, reason, message)

    # --- identity from the TLS connection ------------------------------------------------------

    def certificate_identity(self, request: web.Request) -> str:
        """The officer's id in the client certificate this connection presented, or ""."""
        transport = request.transport
        ssl_obj = transport.get_extra_info("ssl_object") if transport is not None else None
        der = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
        if not der:
            return ""
        try:
            return identity_from_certificate(ssl.DER_cert_to_PEM_cert(der).encode())
        except Unauthenticated:
            return ""

    async def sign_in(self, request: web.Request, response: web.StreamResponse, *,
                      identity: str, auth: str, client_system: str = "") -> Session:
        """A fresh session for ``identity`` (the anonymous one is dropped)."""
        old: Session | None = request.get(SESSION)
        await self.sessions.drop(request.cookies.get(COOKIE))
        lang, tz = await self.sessions.prefs(identity) or (
            old.language if old and old.language else self.language(request, None),
            old.timezone if old and old.timezone else self.settings.timezone)
        cookie, session = await self.sessions.new(identity=identity, auth=auth,
                                                  client_system=client_system, language=lang,
                                                  timezone=tz)
        set_cookie(response, cookie)
        return session

    # --- serving -------------------------------------------------------------------------------

    def ssl_context(self, *, cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        if client_ca is not None:
            ctx.load_verify_locations(cafile=str(client_ca))
            ctx.verify_mode = ssl.CERT_OPTIONAL  # officers signing in by OIDC bring none
        return ctx

    async def start(self, *, cert: Path, key: Path, client_ca: Path | None) -> int:
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        host, _, port = self.settings.listen.rpartition(":")
        site = web.TCPSite(runner, host, int(port), ssl_context=self.ssl_context(
            cert=cert, key=key, client_ca=client_ca), reuse_port=False)
        await site.start()
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else int(port)
        log.info("console_listener", port=self.port, certificates=client_ca is not None,
                 oidc=self.oidc is not None)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _secure(h: Any) -> None:
    h["Content-Security-Policy"] = CSP
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "same-origin"  # "no-referrer" makes Chromium send Origin: null
    h["Cache-Control"] = "no-store"
    h["Strict-Transport-Security"] = "max-age=31536000"
    h["Cross-Origin-Opener-Policy"] = "same-origin"


def set_cookie(response: web.StreamResponse, value: str) -> None:
    response.set_cookie(COOKIE, value, path="/", secure=True, httponly=True, samesite="Strict")


def route_name(request: web.Request) -> str:
    """The route's pattern, never the concrete URL (no identifiers in log lines)."""
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unknown"


def refusal_of(exc: BaseException) -> tuple[str, str, str]:
    if isinstance(exc, Refusal):
        return exc.status, exc.reason, exc.message
    if isinstance(exc, BxError):
        return exc.status, exc.reason, exc.message
    if isinstance(exc, PeerError):  # pragma: no cover - PeerError is a BxError
        return "INVALID_ARGUMENT", "invalid_argument", str(exc)
    log.error("console_call_failed", error=type(exc).__name__)
    return "INTERNAL", "internal_error", "internal error (see the node's error log)"


#: The zones offered in the officer's settings (any IANA zone works in node.toml).
ZONES = ("Asia/Almaty", "Asia/Bishkek", "Asia/Tashkent", "Asia/Dushanbe", "Asia/Ashgabat",
         "Asia/Aqtobe", "Europe/Moscow", "UTC")


def explain(code: str) -> str:
    """A sentence for the officer (translated where shown); the code is shown too."""
    from node.web.pages import EXPLAIN

    return EXPLAIN.get(code, EXPLAIN["_default"])
