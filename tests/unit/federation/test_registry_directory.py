"""RegistryDirectory: the MemberDirectory over the trusted version; drafts and diffs."""

from __future__ import annotations

import nacl.signing
import pytest

from node.core import envelope as env_mod
from node.core.errors import EnvironmentFault, Unauthenticated
from node.core.members import signing_key
from node.federation.registry import format_time, verify_update
from node.federation.registry_directory import RegistryDirectory
from node.federation.registry_edit import (
    AddMember,
    RevokeNode,
    RotateKey,
    SetEndpoint,
    diff,
    draft_next,
)
from tests.unit.federation._support import DAY, NOW, World, b64


class Clock:
    def __init__(self, t: int = NOW) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def test_members_keys_and_tls_from_the_registry() -> None:
    w = World()
    d = RegistryDirectory(registry=w.sign(w.signed(), "KAZ", "KGZ", "UZB"), clock_ms=Clock())
    m = d.member("KGZ-BS")
    assert m.endpoint == ("127.0.0.1:50052",)
    assert signing_key(m, w.kid("KGZ-BS"), NOW) == bytes(w.node_keys["KGZ-BS"].verify_key)
    assert d.owner_of_tls_cert("01" * 32) == "KGZ-BS"
    assert {x.node_id for x in d.members()} == {"KAZ-BS", "KGZ-BS", "UZB-BS"}
    with pytest.raises(Unauthenticated) as err:
        d.member("TJK-BS")
    assert err.value.reason == "unknown_node"


def test_swap_in_place_and_revocation() -> None:
    w = World()
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    d = RegistryDirectory(registry=v1, clock_ms=Clock())
    v2 = w.sign(draft_next(v1, [RevokeNode("KGZ-BS", "key compromised")], now_ms=NOW),
                "KAZ", "UZB", "TJK")
    verify_update(v1, v2, now_ms=NOW)
    d.swap(v2)
    with pytest.raises(Unauthenticated) as err:
        d.member("KGZ-BS")
    assert err.value.reason == "node_revoked"
    assert d.owner_of_tls_cert("01" * 32) is None
    assert "KGZ-BS" not in {m.node_id for m in d.members()}
    assert diff(v1, v2) == ["~ version 1 -> 2", "+ REVOKED node_id KGZ-BS (key compromised)"]


def test_expired_registry_fails_closed_after_the_grace_period() -> None:
    w = World()
    clock = Clock()
    d = RegistryDirectory(registry=w.sign(w.signed(), "KAZ", "KGZ", "UZB"), clock_ms=clock,
                          expiry_grace_ms=DAY)
    assert d.status().state == "fresh"
    clock.t = d.current.expires_ms + 1
    assert d.status().state == "expired_in_grace" and d.status().serving
    d.member("KAZ-BS")  # still answering inside the grace period
    clock.t = d.current.expires_ms + DAY
    st = d.status()
    assert (st.state, st.serving) == ("expired", False)
    with pytest.raises(EnvironmentFault) as err:
        d.member("KAZ-BS")
    assert (err.value.status, err.value.reason) == ("UNAVAILABLE", "registry_expired")
    assert d.owner_of_tls_cert("00" * 32) is None


def test_key_rotation_overlap_and_old_receipts() -> None:
    w = World()
    clock = Clock()
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    d = RegistryDirectory(registry=v1, clock_ms=clock)
    old = w.node_keys["KGZ-BS"]
    receipt = env_mod.sign(payload_type=env_mod.RESPONSE_TYPE, payload=b"x", signer="KGZ-BS",
                           key=old)
    new = nacl.signing.SigningKey.generate()
    v2 = w.sign(draft_next(v1, [RotateKey("KGZ-BS", b64(new), NOW + DAY)], now_ms=NOW),
                "KAZ", "KGZ", "UZB")
    verify_update(v1, v2, now_ms=NOW)
    d.swap(v2)
    m = d.member("KGZ-BS")
    kid_old = env_mod.key_id_for(bytes(old.verify_key))
    kid_new = env_mod.key_id_for(bytes(new.verify_key))
    assert signing_key(m, kid_old, NOW + 1) and signing_key(m, kid_new, NOW + 1)  # overlap
    clock.t = NOW + 2 * DAY
    with pytest.raises(Unauthenticated) as err:
        signing_key(d.member("KGZ-BS"), kid_old, clock.t)
    assert err.value.reason == "key_expired"
    d.verify_signed_at(receipt, at_ms=NOW, expected_type=env_mod.RESPONSE_TYPE)  # still checks
    lines = diff(v1, v2)
    assert any(line.startswith(f"+ KGZ-BS signing key {kid_new}") for line in lines)
    assert any(line.startswith(f"~ KGZ-BS signing key {kid_old}") for line in lines)


def test_tls_certificate_outside_its_window_is_not_listed() -> None:
    w = World()
    signed = w.signed()
    signed["members"][0]["tls_certs"].append({"sha256": "ab" * 32,
                                              "not_before": format_time(NOW + DAY),
                                              "not_after": format_time(NOW + 9 * DAY)})
    d = RegistryDirectory(registry=w.sign(signed, "KAZ"), clock_ms=Clock())
    assert d.owner_of_tls_cert("ab" * 32) is None
    assert "ab" * 32 not in d.member("KAZ-BS").tls_cert_sha256


def test_draft_add_member_from_an_init_entry_and_endpoint_change() -> None:
    w = World()
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    tjk = nacl.signing.SigningKey.generate()
    entry = {"node_id": "TJK-BS", "country": "TJK", "agency": "Border Troops", "endpoint":
             "tjk.example:50051", "roles": ["node"], "contact": "desk",
             "signing_keys": [{"public_key": b64(tjk)}], "tls_cert_sha256": ["EE" * 32]}
    v2 = draft_next(v1, [AddMember(entry), SetEndpoint("KAZ-BS", "kaz.example:443")],
                    now_ms=NOW, expires_ms=NOW + 60 * DAY)
    assert v2.version == 2 and not v2.signatures
    tjk_entry = v2.node("TJK-BS")
    assert tjk_entry is not None and tjk_entry.tls_certs[0].sha256 == "ee" * 32
    lines = diff(v1, v2)
    assert "~ KAZ-BS endpoint: 127.0.0.1:50051 -> kaz.example:443" in lines
    assert any(line.startswith("+ member TJK-BS") for line in lines)
    assert any(line.startswith("~ expires") for line in lines)
