"""StandInIdentityProvider: a stand-in for the agency's OpenID Connect provider, tests only.

Not a real identity provider and never used outside tests: a small aiohttp app on 127.0.0.1,
over TLS (a certificate of its own test CA, for ``localhost`` and ``127.0.0.1``), on its own
thread and event loop, serving what OpenID Connect Core 1.0 and RFC 7636 ask of a provider
for the authorization-code flow with PKCE:

* ``/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 section 3) and
  ``/jwks`` (its public keys, read from the JWKS file it wrote: the node is configured from
  these two, as an operator would);
* ``/authorize`` (section 3.1.2): checks client, redirect URI, ``response_type=code``, a
  ``state``, a ``nonce`` and an S256 code challenge, shows a sign-in form (the officer's
  user name, no password: the stand-in trusts whoever types), and on submit sends the
  browser back to the redirect URI with a one-time code and the ``state``;
* ``/token`` (section 3.1.3): client_secret_basic, the code used once, within 60 s, for the
  same redirect URI, and ``SHA-256(code_verifier)`` equal to the challenge (RFC 7636 4.6);
  refusals answer 400/401 with the RFC 6749 5.2 ``error`` code; the ID token is an ES256
  JWT signed with joserfc.

Tests make it misbehave on purpose, for the next token only: :meth:`tamper` changes claims
(``nonce``, ``aud``, ``exp`` ...), :meth:`sign_with_stranger` signs with a key the node does
not know (same ``kid`` or another), :attr:`wrong_state` sends the browser back with a state
that is not the one it was given.  Its clock is the tests' injected clock.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import secrets
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.jwk import ECKey

from node.federation import pki

__all__ = ["StandInIdentityProvider"]

KID = "stand-in-idp-1"
CODE_TTL_MS = 60_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _pem(obj: Any) -> bytes:
    if hasattr(obj, "private_bytes"):
        return bytes(obj.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return bytes(obj.public_bytes(serialization.Encoding.PEM))


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str
    sub: str
    issued_ms: int
    used: bool = False


@dataclass
class _Tampering:
    claims: dict[str, Any] = field(default_factory=dict)
    stranger_kid: str | None = None  # sign with a key the JWKS does not hold, under this kid


class StandInIdentityProvider:
    """A stand-in OpenID Connect provider for tests (module docstring).  Keyword-only."""

    def __init__(self, *, root: Path, client_id: str, client_secret: str,
                 redirect_uri: str = "", clock_ms: Callable[[], int]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.client_id, self.client_secret = client_id, client_secret
        self.redirect_uri = redirect_uri  # set once the console's address is known
        self.clock_ms = clock_ms
        self.key = ECKey.generate_key("P-256", parameters={"kid": KID}, private=True)
        self.jwks_file = root / "idp-jwks.json"
        self.jwks_file.write_text(json.dumps({"keys": [self.key.as_dict(private=False)]}))
        ca = pki.new_ca("Stand-in IdP test CA", "Tests")
        tls_key = pki.new_tls_key()
        cert = pki.issue_cert(cn="localhost", org="Tests", key=tls_key,
                              hosts=["localhost", "127.0.0.1"], ca=ca)
        self.ca_file = root / "idp-ca.crt"
        self.ca_file.write_bytes(_pem(ca[1]))
        (root / "idp-tls.crt").write_bytes(_pem(cert))
        (root / "idp-tls.key").write_bytes(_pem(tls_key))
        (root / "idp-tls.key").chmod(0o600)
        self.codes: dict[str, _Code] = {}
        #: what came to /authorize and /token, in order (for the tests' assertions)
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[tuple[str, str]] = []  # (code, outcome: "ok" | error)
        self.wrong_state = False
        self._tamper = _Tampering()
        self._lock = threading.Lock()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # --- addresses ---------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        # The browser's address: "localhost", another site than the console's 127.0.0.1,
        # so the way back is a real cross-site navigation (SameSite rules apply).
        return f"https://localhost:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/.well-known/openid-configuration"

    # --- misbehaving on purpose (the next token only) ------------------------------------------

    def tamper(self, **claims: Any) -> None:
        with self._lock:
            self._tamper.claims.update(claims)

    def sign_with_stranger(self, *, kid: str = KID) -> None:
        with self._lock:
            self._tamper.stranger_kid = kid

    def _take_tampering(self) -> _Tampering:
        with self._lock:
            t, self._tamper = self._tamper, _Tampering()
            return t

    # --- the endpoints -----------------------------------------------------------------------

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"https://127.0.0.1:{self.port}/token",
            "jwks_uri": f"https://127.0.0.1:{self.port}/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"]})

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.Response(body=self.jwks_file.read_bytes(), content_type="application/json")

    def _authorization(self, q: Any) -> dict[str, str] | None:
        want = {k: str(q.get(k, "")) for k in ("response_type", "client_id", "redirect_uri",
                                                "scope", "state", "nonce", "code_challenge",
                                                "code_challenge_method")}
        ok = (want["response_type"] == "code" and want["client_id"] == self.client_id
              and want["redirect_uri"] == self.redirect_uri
              and "openid" in want["scope"].split() and want["state"] and want["nonce"]
              and want["code_challenge_method"] == "S256" and len(want["code_challenge"]) == 43)
        return want if ok else None

    async def _authorize_form(self, request: web.Request) -> web.Response:
        params = self._authorization(request.query)
        self.authorize_requests.append(dict(request.query))
        if params is None:
            return web.Response(status=400, text="invalid_request")
        hidden = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
                         for k, v in params.items())
        return web.Response(content_type="text/html", text=(
            "<!doctype html><html><head><title>Stand-in IdP</title></head><body>"
            "<h1>Stand-in identity provider (tests only)</h1>"
            f'<form method="post" action="/authorize">{hidden}'
            '<label>User <input name="login" id="idp-login"></label>'
            '<button type="submit" id="idp-sign-in">Sign in</button></form></body></html>'))

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        params = self._authorization(form)
        login = str(form.get("login", "")).strip()
        if params is None or not login:
            return web.Response(status=400, text="invalid_request")
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(client_id=params["client_id"],
                                 redirect_uri=params["redirect_uri"], nonce=params["nonce"],
                                 challenge=params["code_challenge"], sub=login,
                                 issued_ms=self.clock_ms())
        state = "forged-" + secrets.token_urlsafe(8) if self.wrong_state else params["state"]
        self.wrong_state = False
        query = urllib.parse.urlencode({"code": code, "state": state})
        raise web.HTTPSeeOther(f"{params['redirect_uri']}?{query}")

    def _token_error(self, code: str, error: str, status: int = 400) -> web.Response:
        self.token_requests.append((code, error))
        return web.json_response({"error": error}, status=status)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        code = str(form.get("code", ""))
        auth = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(
            f"{self.client_id}:{self.client_secret}".encode()).decode()
        if not secrets.compare_digest(auth.encode(), expected.encode()):
            return self._token_error(code, "invalid_client", 401)
        if form.get("grant_type") != "authorization_code":
            return self._token_error(code, "unsupported_grant_type")
        entry = self.codes.get(code)
        now = self.clock_ms()
        if entry is None or entry.used or now - entry.issued_ms > CODE_TTL_MS:
            return self._token_error(code, "invalid_grant")
        entry.used = True  # once, even when what follows refuses it
        verifier = str(form.get("code_verifier", ""))
        if (form.get("redirect_uri") != entry.redirect_uri
                or _b64(hashlib.sha256(verifier.encode()).digest()) != entry.challenge):
            return self._token_error(code, "invalid_grant")
        self.token_requests.append((code, "ok"))
        return web.json_response({"access_token": secrets.token_urlsafe(16),
                                  "token_type": "Bearer", "expires_in": 300,
                                  "id_token": self._id_token(entry, now)})

    def _id_token(self, entry: _Code, now_ms: int) -> str:
        t = self._take_tampering()
        now = now_ms // 1000
        claims: dict[str, Any] = {"iss": self.issuer, "sub": entry.sub,
                                  "aud": entry.client_id, "iat": now, "exp": now + 300,
                                  "nonce": entry.nonce, "auth_time": now}
        claims.update(t.claims)
        key, kid = self.key, KID
        if t.stranger_kid is not None:
            key = ECKey.generate_key("P-256", parameters={"kid": t.stranger_kid}, private=True)
            kid = t.stranger_kid
        return jwt.encode({"alg": "ES256", "kid": kid, "typ": "JWT"}, claims, key)

    # --- serving -----------------------------------------------------------------------------

    def start(self) -> StandInIdentityProvider:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start()
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, name="stand-in-idp", daemon=True)
        self._thread.start()
        ready.wait(20)
        if errors:
            raise errors[0]
        return self

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize_form)
        app.router.add_post("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.root / "idp-tls.crt"), str(self.root / "idp-tls.key"))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        server = site._server
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def discover(self) -> dict[str, Any]:
        """The discovery document and the JWKS, fetched over TLS as an operator would."""
        import urllib.request

        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(self.discovery_url, context=ctx, timeout=10) as r:
            doc: dict[str, Any] = json.loads(r.read())
        with urllib.request.urlopen(doc["jwks_uri"], context=ctx, timeout=10) as r:
            doc["jwks"] = json.loads(r.read())
        return doc

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
