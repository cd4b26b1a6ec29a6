"""Who is calling the LocalService, and may they?  No I/O: bytes and claims in, a verdict out.

Two kinds of credential, both issued by the agency itself:

* **Client certificates** (officer or workstation), issued by the agency's CA and checked
  in the TLS handshake (the listener requires one and verifies it against ``[local]
  client_ca``).  The identity is the subject's ``UID`` attribute (RFC 4519
  userid, OID 0.9.2342.19200300.100.1.1) when present, else its ``CN``.
* **OpenID Connect bearer tokens** (``authorization: Bearer <JWT>``; OpenID Connect Core
  1.0 section 2, RFC 7519), verified with joserfc against the configured JWKS file:
  signature (RFC 7515), an algorithm allow-list of asymmetric algorithms only (never
  ``none``, never HS*: a JWKS holding a symmetric key is refused when it is loaded, so no
  public key can ever be used as an HMAC secret), ``iss`` and ``aud`` exactly as
  configured, ``exp`` / ``nbf`` / ``iat`` against the node's injected clock with a small
  leeway (RFC 7519 4.1.4-4.1.6).  The identity is ``sub`` (section 2: "locally unique and
  never reassigned within the Issuer").

When a call carries both, the token names the officer and the certificate the client
system that forwarded it (as X-Road's client information systems do); both are audited.
Either way the identity must be a valid operator id (1-64 of ``A-Z a-z 0-9 . _ : @ -``):
it goes into signed request headers.

Roles come only from the node's role table (``[local.roles]`` or ``[local] roles_file``),
never from the token; the table is default deny: an identity it does not list has no role.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from joserfc import errors as jose_errors
from joserfc import jwt
from joserfc.jwk import KeySet

from node.core.errors import ConfigError, PeerError, Unauthenticated
from node.core.model import validate_id

__all__ = [
    "ALLOWED_ALGORITHMS",
    "MAX_TOKEN_BYTES",
    "METHOD_ROLES",
    "ROLES",
    "Forbidden",
    "Identity",
    "RoleTable",
    "TokenVerifier",
    "identity_from_certificate",
]

ROLES = frozenset({"duty_officer", "followup_desk", "watchlist_manager", "auditor", "admin"})
#: Asymmetric JWS algorithms only (RFC 7518 3.3-3.5, RFC 8037): no "none", no HS*.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                      "ES256", "ES384", "ES512", "EdDSA")
MAX_TOKEN_BYTES = 8192
MAX_LEEWAY_S = 300

_DUTY = frozenset({"duty_officer"})
#: Which roles may call which LocalService method; a method not listed is refused.
METHOD_ROLES: Mapping[str, frozenset[str]] = {
    "WhoAmI": frozenset(ROLES),
    "LookupDocument": _DUTY, "LookupPerson": _DUTY, "LookupMrz": _DUTY,
    "LookupManifest": _DUTY, "LookupPaxlst": _DUTY,
    "ConfirmCrossings": _DUTY, "ReconcileCrossings": _DUTY, "StoreCrossings": _DUTY,
    "SendFollowUp": _DUTY, "PollFollowUp": _DUTY, "AwaitFollowUp": _DUTY,
    "ListDeskFollowUps": frozenset({"followup_desk", "auditor"}),
    "ShowDeskFollowUp": frozenset({"followup_desk", "auditor"}),
    "ApproveFollowUp": frozenset({"followup_desk"}),
    "DenyFollowUp": frozenset({"followup_desk"}),
    # the alert lifecycle (issue 13, node/local/watchlist.py)
    **dict.fromkeys(("AddAlert", "UpdateAlert", "WithdrawAlert", "ShowAlert", "ListAlerts",
                     "AlertStats"), frozenset({"watchlist_manager"})),
    # retention holds (issue 13 §2, node/local/retention.py)
    **dict.fromkeys(("PlaceHold", "ReleaseHold"), frozenset({"watchlist_manager", "auditor"})),
}

_UID = x509.ObjectIdentifier("0.9.2342.19200300.100.1.1")


class Forbidden(PeerError):
    """An authenticated caller without a role that allows this method."""

    status = "PERMISSION_DENIED"
    default_reason = "role_required"


@dataclass(frozen=True, slots=True)
class Identity:
    """The authenticated caller: ``name`` is the operator everywhere downstream."""

    name: str
    method: str  # "certificate" | "token"
    roles: tuple[str, ...]
    client_system: str = ""  # the certificate's identity when a token named the officer

    def require(self, method: str) -> None:
        allowed = METHOD_ROLES.get(method, frozenset())
        if not allowed & set(self.roles):
            raise Forbidden(f"{method} needs the role {' or '.join(sorted(allowed))}; "
                            f"{self.name} has {', '.join(self.roles) or 'no role'}",
                            reason="role_required")


def identity_from_certificate(pem: bytes) -> str:
    """The subject's UID, else its CN, of a certificate the handshake verified."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise Unauthenticated("the client certificate does not parse",
                              reason="bad_certificate") from None
    for oid in (_UID, NameOID.COMMON_NAME):
        attrs = cert.subject.get_attributes_for_oid(oid)
        if attrs:
            value = attrs[0].value
            name = value if isinstance(value, str) else value.decode("utf-8", "replace")
            try:
                return validate_id(name, "certificate identity")
            except PeerError:
                raise Unauthenticated("the certificate's UID/CN is not a valid operator id",
                                      reason="bad_certificate_identity") from None
    raise Unauthenticated("the client certificate names no UID or CN",
                          reason="bad_certificate_identity")


class RoleTable:
    """identity -> roles; default deny."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        roles: dict[str, tuple[str, ...]] = {}
        for ident, given in table.items():
            if not isinstance(ident, str) or not isinstance(given, list | tuple) or not all(
                    isinstance(r, str) for r in given):
                raise ConfigError("config: [local] roles maps an identity to a list of roles",
                                  reason="bad_config")
            unknown = sorted(set(given) - ROLES)
            if unknown:
                raise ConfigError(f"config: [local] roles: {ident}: unknown role "
                                  f"{unknown[0]!r} (known: {', '.join(sorted(ROLES))})",
                                  reason="bad_config")
            roles[ident] = tuple(sorted(set(given)))
        self._roles = roles

    @classmethod
    def from_file(cls, path: Path) -> RoleTable:
        """A policy data file: ``{"roles": {"kz-0193": ["duty_officer"], ...}}``."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"config: [local] roles_file {path} is not readable JSON: {exc}",
                              reason="bad_config") from None
        if not isinstance(doc, dict) or set(doc) != {"roles"} or not isinstance(
                doc["roles"], dict):
            raise ConfigError(f'config: [local] roles_file {path} must be {{"roles": {{...}}}}',
                              reason="bad_config")
        return cls(doc["roles"])

    def roles_for(self, identity: str) -> tuple[str, ...]:
        return self._roles.get(identity, ())


class TokenVerifier:
    """OpenID Connect ID/access tokens of the agency's identity provider."""

    def __init__(self, *, issuer: str, audience: str, jwks: KeySet,
                 clock_ms: Callable[[], int], leeway_s: int = 30,
                 algorithms: Sequence[str] = ALLOWED_ALGORITHMS) -> None:
        bad = sorted(set(algorithms) - set(ALLOWED_ALGORITHMS))
        if bad or not algorithms:
            raise ConfigError(f"config: [local] oidc_algorithms: {bad[0] if bad else 'none'} "
                              "is not allowed (asymmetric algorithms only)",
                              reason="bad_config")
        if not issuer or not audience:
            raise ConfigError("config: [local] oidc_issuer and oidc_audience are required",
                              reason="bad_config")
        if not 0 <= leeway_s <= MAX_LEEWAY_S:
            raise ConfigError(f"config: [local] token_leeway_s must be 0..{MAX_LEEWAY_S}",
                              reason="bad_config")
        self.issuer = issuer
        self.audience = audience
        self._jwks = jwks
        self._clock_ms = clock_ms
        self._leeway = leeway_s
        self._algorithms = tuple(algorithms)

    @staticmethod
    def load_jwks(path: Path) -> KeySet:
        """A JWKS file of public signing keys; a symmetric or private key is refused."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"config: [local] oidc_jwks {path} is not readable JSON: {exc}",
                              reason="bad_config") from None
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list) or not keys:
            raise ConfigError(f"config: [local] oidc_jwks {path} holds no keys",
                              reason="bad_config")
        for k in keys:
            if not isinstance(k, dict) or k.get("kty") not in ("RSA", "EC", "OKP"):
                raise ConfigError(f"config: [local] oidc_jwks {path}: only RSA, EC and OKP "
                                  "public keys are accepted", reason="bad_config")
            if any(p in k for p in ("d", "p", "q")):
                raise ConfigError(f"config: [local] oidc_jwks {path} holds a private key",
                                  reason="bad_config")
        try:
            return KeySet.import_key_set({"keys": keys})
        except jose_errors.JoseError as exc:
            raise ConfigError(f"config: [local] oidc_jwks {path}: {exc}",
                              reason="bad_config") from None

    def verify(self, token: str) -> str:
        """The token's subject, once every check passed; raises Unauthenticated naming
        the first that failed."""
        if len(token.encode()) > MAX_TOKEN_BYTES:
            raise Unauthenticated(f"bearer token longer than {MAX_TOKEN_BYTES} bytes",
                                  reason="token_too_large")
        try:
            decoded = jwt.decode(token, self._jwks, algorithms=self._algorithms)
        except jose_errors.BadSignatureError:
            raise Unauthenticated("the token's signature does not verify",
                                  reason="token_bad_signature") from None
        except (jose_errors.UnsupportedAlgorithmError, jose_errors.MissingAlgorithmError):
            raise Unauthenticated("the token's algorithm is not allowed",
                                  reason="token_bad_algorithm") from None
        except (jose_errors.InvalidKeyIdError, jose_errors.MissingKeyError):
            raise Unauthenticated("the token is signed by a key the JWKS does not hold",
                                  reason="token_unknown_key") from None
        except (jose_errors.JoseError, ValueError, TypeError):
            raise Unauthenticated("the bearer token is not a signed JWT",
                                  reason="bad_token") from None
        return self._check_claims(decoded.claims)

    def _check_claims(self, claims: dict[str, Any]) -> str:
        now = self._clock_ms() / 1000
        leeway = self._leeway

        def number(name: str, required: bool) -> float | None:
            v = claims.get(name)
            if v is None and not required:
                return None
            if not isinstance(v, int | float) or isinstance(v, bool):
                raise Unauthenticated(f"the token's {name} claim is missing or not a number",
                                      reason="bad_token")
            return float(v)

        if claims.get("iss") != self.issuer:
            raise Unauthenticated("the token is from another issuer", reason="token_wrong_issuer")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if self.audience not in auds:
            raise Unauthenticated("the token is for another audience",
                                  reason="token_wrong_audience")
        exp = number("exp", True)
        assert exp is not None
        if now > exp + leeway:
            raise Unauthenticated("the token has expired", reason="token_expired")
        nbf = number("nbf", False)
        if nbf is not None and now + leeway < nbf:
            raise Unauthenticated("the token is not valid yet", reason="token_not_yet_valid")
        iat = number("iat", True)
        assert iat is not None
        if now + leeway < iat:
            raise Unauthenticated("the token was issued in the future",
                                  reason="token_not_yet_valid")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthenticated("the token names no subject", reason="bad_token")
        try:
            return validate_id(sub, "token subject")
        except PeerError:
            raise Unauthenticated("the token's subject is not a valid operator id",
                                  reason="bad_token_subject") from None
