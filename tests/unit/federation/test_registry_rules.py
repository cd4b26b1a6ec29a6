"""The registry document rules: TUF root rules (5.3.4, 5.3.5, 5.3.10), bounds, shape."""

from __future__ import annotations

import base64
import copy
import json

import nacl.signing
import pytest

from node.federation import registry
from node.federation.registry import (
    MAX_REGISTRY_BYTES,
    RegistryError,
    format_time,
    merge_signatures,
    parse_registry,
    signature_report,
    verify_chain,
    verify_self_signed,
    verify_update,
)
from tests.unit.federation._support import DAY, NOW, World, b64, doc_bytes, raw


@pytest.fixture
def w() -> World:
    return World()


def _reason(fn: object, *args: object, **kw: object) -> str:
    with pytest.raises(RegistryError) as err:
        fn(*args, **kw)  # type: ignore[operator]
    return err.value.reason


# --- signatures and thresholds -------------------------------------------------------------


def test_three_of_five_verifies_and_round_trips(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    verify_self_signed(v1)
    again = parse_registry(raw(v1))
    assert again.digest == v1.digest and again.signatures == v1.signatures
    verify_self_signed(again)


def test_unsigned_and_under_signed_are_refused(w: World) -> None:
    assert _reason(verify_self_signed, w.sign(w.signed())) == "unsigned"
    assert _reason(verify_self_signed, w.sign(w.signed(), "KAZ", "KGZ")) == "under_signed"


def test_update_needs_a_threshold_of_the_trusted_keys(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    v2 = w.sign(w.signed(2), "TJK", "TKM", "KAZ")
    verify_update(v1, v2, now_ms=NOW)
    assert _reason(verify_update, v1, w.sign(w.signed(2), "TJK", "TKM"),
                   now_ms=NOW) == "under_signed"


def test_the_same_key_counts_once(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    v2 = w.sign(w.signed(2), "KAZ", "KGZ")
    twice = parse_registry(doc_bytes({**v2.document(), "signatures": [
        *v2.document()["signatures"], v2.document()["signatures"][0]]}))
    assert _reason(verify_update, v1, twice, now_ms=NOW) == "duplicate_signature"


def test_two_keys_of_one_state_cast_one_vote(w: World) -> None:
    second = nacl.signing.SigningKey.generate()
    signed = w.signed()
    signed["states"][0]["governance_keys"].append(b64(second))  # KAZ holds two keys
    reg = w.sign(signed, "KAZ", "KGZ", keys=(second,))
    assert signature_report(reg, reg).votes(reg) == 2
    assert _reason(verify_self_signed, reg) == "under_signed"
    verify_self_signed(w.sign(reg, "UZB"))


def test_a_governance_key_belongs_to_one_state_only(w: World) -> None:
    signed = w.signed()
    signed["states"][1]["governance_keys"] = signed["states"][0]["governance_keys"]
    assert _reason(w.sign, signed) == "malformed"


def test_signature_from_a_key_not_in_the_registry(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    rogue = nacl.signing.SigningKey.generate()
    v2 = w.sign(w.signed(2), "KAZ", "KGZ", "UZB", keys=(rogue,))
    assert _reason(verify_update, v1, v2, now_ms=NOW) == "unknown_signer"


def test_signature_over_other_contents(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    v2 = w.sign(w.signed(2), "KAZ", "KGZ", "UZB")
    doc = v2.document()
    doc["signed"]["members"][0]["endpoint"] = "evil.example:443"  # changed after signing
    assert _reason(verify_update, v1, parse_registry(doc_bytes(doc)),
                   now_ms=NOW) == "bad_signature"


def test_signatures_merge(w: World) -> None:
    draft = w.sign(w.signed())
    a, b = w.sign(draft, "KAZ"), w.sign(draft, "KGZ", "UZB")
    merged = merge_signatures(a, b)
    assert len(merged.signatures) == 3
    verify_self_signed(merged)
    assert _reason(merge_signatures, a, w.sign(w.signed(2), "KAZ")) == "mismatch"


def test_governance_key_change_needs_both_thresholds(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    new = {c: nacl.signing.SigningKey.generate() for c in ("KAZ", "KGZ", "UZB")}
    signed = w.signed(2)
    for s in signed["states"]:
        if s["country"] in new:
            s["governance_keys"] = [b64(new[s["country"]])]
    old_only = w.sign(signed, "KAZ", "KGZ", "UZB")  # the old KAZ/KGZ/UZB keys
    # the old keys are trusted, but the new version's own threshold is not met by them:
    assert _reason(verify_update, v1, old_only, now_ms=NOW) == "under_signed_new_keys"
    new_only = w.sign(signed, keys=tuple(new.values()))
    assert _reason(verify_update, v1, new_only, now_ms=NOW) == "under_signed"
    both = w.sign(old_only, keys=tuple(new.values()))
    verify_update(v1, both, now_ms=NOW)
    # and v3 is then governed by the new keys: the old KAZ key no longer counts
    v3 = w.sign(w.signed(3, states=signed["states"]), "KAZ", "TJK", "TKM")
    assert _reason(verify_update, both, v3, now_ms=NOW) == "unknown_signer"


# --- versions and expiry --------------------------------------------------------------------


def test_rollback_and_replay_are_refused(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    v2 = w.sign(w.signed(2), "KAZ", "KGZ", "UZB")
    verify_update(v1, v2, now_ms=NOW)
    assert _reason(verify_update, v2, v1, now_ms=NOW) == "rollback"
    assert _reason(verify_update, v2, v2, now_ms=NOW) == "rollback"


def test_skipped_versions_are_walked_one_by_one(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    v2 = w.sign(w.signed(2), "KAZ", "KGZ", "UZB")
    v3 = w.sign(w.signed(3), "KAZ", "KGZ", "UZB")
    assert _reason(verify_update, v1, v3, now_ms=NOW) == "version_gap"
    assert verify_chain(v1, [v2, v3], now_ms=NOW) is v3


def test_expired_registry_is_refused_but_intermediate_versions_may_be_expired(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    old = w.sign(w.signed(2, expires=format_time(NOW - DAY)), "KAZ", "KGZ", "UZB")
    assert _reason(verify_update, v1, old, now_ms=NOW) == "expired"
    v3 = w.sign(w.signed(3), "KAZ", "KGZ", "UZB")
    assert verify_chain(v1, [old, v3], now_ms=NOW) is v3  # TUF 5.3.10: only the final one
    assert _reason(verify_chain, v1, [], now_ms=NOW) == "empty"


# --- shape and bounds ------------------------------------------------------------------------


def test_oversized_document(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    big = raw(v1)[:-2] + b" " * MAX_REGISTRY_BYTES + b"}\n"
    assert _reason(parse_registry, big) == "oversized"
    assert parse_registry(raw(v1) + b" " * (MAX_REGISTRY_BYTES - len(raw(v1)))).version == 1


@pytest.mark.parametrize("mutate", [
    lambda d: d["signed"].pop("threshold"),
    lambda d: d["signed"].update(extra=1),
    lambda d: d["signed"].update(threshold=6),
    lambda d: d["signed"].update(threshold=0),
    lambda d: d["signed"].update(version=True),
    lambda d: d["signed"].update(version=2**60),
    lambda d: d["signed"].update(expires="2027-01-01"),
    lambda d: d["signed"].update(expires="2027-02-30T00:00:00Z"),
    lambda d: d["signed"]["members"][0].update(country="FRA"),
    lambda d: d["signed"]["members"][0].update(roles=["admin"]),
    lambda d: d["signed"]["members"][0].update(roles=[]),
    lambda d: d["signed"]["members"][0].update(node_id="bad id!"),
    lambda d: d["signed"]["members"][1].update(node_id="KAZ-BS"),
    lambda d: d["signed"]["members"][0]["signing_keys"][0].update(public_key="AAAA"),
    lambda d: d["signed"]["members"][0]["tls_certs"][0].update(sha256="XYZ"),
    lambda d: d["signed"]["members"][0]["tls_certs"][0].update(
        not_before="2030-01-01T00:00:00Z", not_after="2029-01-01T00:00:00Z"),
    lambda d: d["signed"]["revoked"].append({"node_id": "X", "key_id": "00" * 8}),
    lambda d: d["signed"]["revoked"].append({"key_id": "short"}),
    lambda d: d["signatures"].append({"keyid": "00" * 8, "sig": "AAAA"}),
    lambda d: d["signatures"].append({"keyid": "zz", "sig": base64.b64encode(bytes(64)).decode()}),
    lambda d: d.update(extra=[]),
    lambda d: d.pop("signatures"),
    lambda d: d["signed"]["states"].append(d["signed"]["states"][0]),
    lambda d: d["signed"]["members"][0].update(agency="x" * 257),
])
def test_malformed_documents(w: World, mutate: object) -> None:
    doc = copy.deepcopy(w.sign(w.signed(), "KAZ", "KGZ", "UZB").document())
    mutate(doc)  # type: ignore[operator]
    assert _reason(parse_registry, doc_bytes(doc)) == "malformed"


@pytest.mark.parametrize("data", [
    b"", b"not json", b"[]", b"\xff\xfe", b'{"signed": {}, "signatures": []',
    b'{"signed": 1.5, "signatures": []}', b'{"signed": NaN, "signatures": []}',
    b'{"signatures": [], "signatures": [], "signed": {}}',
    b"[" * 100_000,
])
def test_not_a_document(data: bytes) -> None:
    assert _reason(parse_registry, data) == "malformed"


def test_wrong_type(w: World) -> None:
    doc = w.sign(w.signed(), "KAZ").document()
    doc["signed"]["type"] = "root"
    assert _reason(parse_registry, doc_bytes(doc)) == "wrong_type"


def test_signatures_cover_the_canonical_form_not_the_file_layout(w: World) -> None:
    v1 = w.sign(w.signed(), "KAZ", "KGZ", "UZB")
    doc = v1.document()
    # the same document, keys reordered and re-indented: still the same signed bytes
    shuffled = {"signatures": doc["signatures"],
                "signed": dict(reversed(list(doc["signed"].items())))}
    again = parse_registry(json.dumps(shuffled, indent=7).encode())
    assert again.canonical_signed == v1.canonical_signed
    verify_self_signed(again)
    assert signature_report(again, again).states(again) == {"KAZ", "KGZ", "UZB"}
    assert "Signature" in registry.__all__  # exported
