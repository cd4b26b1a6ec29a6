"""OpenID Connect sign-in for the console: the authorization-code flow with PKCE.

OpenID Connect Core 1.0 section 3.1 with RFC 7636 (S256): the browser is sent to the
agency's identity provider with ``state``, ``nonce`` and a code challenge kept in the
anonymous session; the provider sends it back with a code; the node exchanges the code at
the token endpoint (client_secret_basic, TLS verified against ``[console] oidc_ca``) and
checks the ID token with the LocalService's :class:`~node.local.auth.TokenVerifier`
(signature against the JWKS, asymmetric algorithms only, ``iss``, ``aud``, ``exp``,
``nbf``, ``iat``), then the ``nonce`` (section 3.1.3.7 step 11).  The identity is ``sub``;
roles come from the node's role table, never from the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from joserfc import errors as jose_errors
from joserfc import jwt
from joserfc.jwk import KeySet

from node.core.errors import Unauthenticated
from node.local.auth import TokenVerifier

__all__ = ["MAX_TOKEN_RESPONSE", "OidcSignIn"]

MAX_TOKEN_RESPONSE = 64 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _error_code(body: bytes) -> str:
    """The ``error`` of an RFC 6749 5.2 error response, or ""."""
    try:
        doc = json.loads(body[:MAX_TOKEN_RESPONSE])
    except ValueError:
        return ""
    error = doc.get("error") if isinstance(doc, dict) else None
    return error if isinstance(error, str) else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OidcSignIn:
    authorize_url: str
    token_url: str
    client_id: str
    client_secret: str
    redirect_uri: str
    verifier: TokenVerifier
    jwks: KeySet
    ca_file: Path | None = None
    timeout_s: float = 10.0

    def begin(self) -> tuple[str, dict[str, str]]:
        """The provider's URL to send the browser to, and what the session keeps."""
        saved = {"state": secrets.token_urlsafe(24), "nonce": secrets.token_urlsafe(24),
                 "verifier": secrets.token_urlsafe(48)}
        challenge = _b64(hashlib.sha256(saved["verifier"].encode("ascii")).digest())
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": self.client_id,
            "redirect_uri": self.redirect_uri, "scope": "openid", "state": saved["state"],
            "nonce": saved["nonce"], "code_challenge": challenge,
            "code_challenge_method": "S256"})
        sep = "&" if "?" in self.authorize_url else "?"
        return f"{self.authorize_url}{sep}{query}", saved

    async def finish(self, *, code: str, state: str, saved: dict[str, str]) -> str:
        """The officer's identity (``sub``) once the code is exchanged and every check passed."""
        if not saved or not hmac.compare_digest(saved.get("state", "").encode(),
                                                state.encode("utf-8", "replace")):
            raise Unauthenticated("the sign-in answer's state is not this session's",
                                  reason="oidc_state_mismatch")
        if not code or len(code) > 2048:
            raise Unauthenticated("the sign-in answer carries no code",
                                  reason="oidc_unavailable")
        id_token = await self._exchange(code, saved["verifier"])
        sub = self.verifier.verify(id_token)
        try:
            claims = jwt.decode(id_token, self.jwks).claims
        except (jose_errors.JoseError, ValueError):  # verified just above; defensive
            raise Unauthenticated("the ID token does not verify", reason="bad_token") from None
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(
                nonce.encode(), saved.get("nonce", "").encode()):
            raise Unauthenticated("the ID token's nonce is not this sign-in's",
                                  reason="oidc_nonce_mismatch")
        return sub

    async def _exchange(self, code: str, verifier: str) -> str:
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        # client_secret_basic (OIDC Core 9; RFC 6749 2.3.1: each half form-urlencoded first)
        pair = (f"{urllib.parse.quote_plus(self.client_id)}:"
                f"{urllib.parse.quote_plus(self.client_secret)}")
        headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": self.redirect_uri, "code_verifier": verifier}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
                    total=self.timeout_s)) as http, http.post(
                    self.token_url, data=form, headers=headers, ssl=ctx,
                    allow_redirects=False) as resp:
                body = await resp.content.read(MAX_TOKEN_RESPONSE + 1)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            raise Unauthenticated("the identity provider's token endpoint is unreachable",
                                  reason="oidc_unavailable") from None
        if status == 400 and _error_code(body) == "invalid_grant":
            # RFC 6749 5.2: the code is used, expired, another client's or the PKCE
            # verifier does not match its challenge (RFC 7636 4.6)
            raise Unauthenticated("the identity provider refused the authorization code",
                                  reason="oidc_code_refused")
        if status != 200 or len(body) > MAX_TOKEN_RESPONSE:
            raise Unauthenticated(f"the token endpoint answered HTTP {status}",
                                  reason="oidc_unavailable")
        try:
            doc = json.loads(body)
        except ValueError:
            raise Unauthenticated("the token endpoint's answer is not JSON",
                                  reason="oidc_unavailable") from None
        token = doc.get("id_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise Unauthenticated("the token endpoint returned no ID token",
                                  reason="oidc_unavailable")
        return token
