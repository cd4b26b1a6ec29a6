"""LocalService identities: certificates, OpenID Connect tokens (joserfc), the role table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from node.core.errors import ConfigError, Unauthenticated
from node.federation import pki
from node.local.auth import Forbidden, Identity, RoleTable, TokenVerifier, identity_from_certificate

NOW_S = 1_790_000_000
ISS, AUD = "https://idp.border.example", "bxnode-kaz"


def signing_key(kid: str = "k1") -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)


def verifier(tmp_path: Path, key: ECKey, *, now_s: int = NOW_S) -> TokenVerifier:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    return TokenVerifier(issuer=ISS, audience=AUD, jwks=TokenVerifier.load_jwks(jwks),
                         clock_ms=lambda: now_s * 1000, leeway_s=30)


def token(key: ECKey, **claims: object) -> str:
    body = {"iss": ISS, "aud": AUD, "sub": "kz-0193", "iat": NOW_S - 60, "exp": NOW_S + 600}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": "ES256", "kid": key.kid}, body, key)


def test_a_good_token_names_its_subject(tmp_path: Path) -> None:
    key = signing_key()
    assert verifier(tmp_path, key).verify(token(key)) == "kz-0193"


@pytest.mark.parametrize(("claims", "reason"), [
    ({"exp": NOW_S - 31}, "token_expired"),
    ({"nbf": NOW_S + 31}, "token_not_yet_valid"),
    ({"iat": NOW_S + 31}, "token_not_yet_valid"),
    ({"aud": "someone-else"}, "token_wrong_audience"),
    ({"iss": "https://evil.example"}, "token_wrong_issuer"),
    ({"exp": None}, "bad_token"),
    ({"sub": "kz 0193; drop"}, "bad_token_subject"),
])
def test_claims_are_checked_against_the_injected_clock(tmp_path: Path, claims: dict[str, object],
                                                      reason: str) -> None:
    key = signing_key()
    with pytest.raises(Unauthenticated) as err:
        verifier(tmp_path, key).verify(token(key, **claims))
    assert err.value.reason == reason


def test_the_leeway_is_small_and_exact(tmp_path: Path) -> None:
    key = signing_key()
    assert verifier(tmp_path, key).verify(token(key, exp=NOW_S - 30)) == "kz-0193"


def test_wrongly_signed_unknown_key_none_and_hmac_tokens_are_refused(tmp_path: Path) -> None:
    key = signing_key()
    v = verifier(tmp_path, key)
    with pytest.raises(Unauthenticated) as err:
        v.verify(token(signing_key("k1")))  # same kid, another key
    assert err.value.reason == "token_bad_signature"
    with pytest.raises(Unauthenticated) as err:
        v.verify(token(signing_key("k9")))
    assert err.value.reason == "token_unknown_key"
    _header, body, _ = token(key).split(".")
    import base64

    none_header = base64.urlsafe_b64encode(b'{"alg":"none","kid":"k1"}').rstrip(b"=").decode()
    with pytest.raises(Unauthenticated) as err:
        v.verify(f"{none_header}.{body}.")
    assert err.value.reason in ("token_bad_algorithm", "bad_token")
    hs = jwt.encode({"alg": "HS256", "kid": "k1"}, {"sub": "x"}, OctKey.import_key(b"k" * 32))
    with pytest.raises(Unauthenticated) as err:
        v.verify(hs)
    assert err.value.reason == "token_bad_algorithm"
    with pytest.raises(Unauthenticated) as err:
        v.verify("x" * 9000)
    assert err.value.reason == "token_too_large"
    with pytest.raises(Unauthenticated) as err:
        v.verify("not-a-jwt")
    assert err.value.reason == "bad_token"


def test_a_jwks_with_a_symmetric_or_private_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))
    with pytest.raises(ConfigError):
        TokenVerifier.load_jwks(path)
    path.write_text(json.dumps({"keys": [signing_key().as_dict(private=True)]}))
    with pytest.raises(ConfigError):
        TokenVerifier.load_jwks(path)


def test_certificate_identity_is_uid_else_cn() -> None:
    key = pki.new_tls_key()
    cert = pki.issue_cert(cn="kz-0193", org="Border Service", key=key, hosts=["ws-12"], ca=None)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    assert identity_from_certificate(pem) == "kz-0193"


def test_roles_default_deny_and_unknown_roles_refused() -> None:
    table = RoleTable({"kz-0193": ["duty_officer"]})
    assert table.roles_for("kz-0193") == ("duty_officer",)
    assert table.roles_for("kz-0194") == ()
    with pytest.raises(ConfigError):
        RoleTable({"kz-0193": ["superuser"]})
    ident = Identity(name="kz-0193", method="certificate", roles=("duty_officer",))
    ident.require("LookupDocument")
    with pytest.raises(Forbidden) as err:
        ident.require("ApproveFollowUp")
    assert err.value.reason == "role_required"
    with pytest.raises(Forbidden):
        Identity(name="x", method="certificate", roles=()).require("NoSuchMethod")
