"""Bad input between real nodes: every refusal has a precise status, a reason and an audit entry."""

from __future__ import annotations

import base64
import dataclasses
import os
from pathlib import Path

import grpc
import nacl.signing
import pytest

from node.core import envelope as env_mod
from node.core.errors import RemoteError
from node.core.model import DocumentQuery, LookupRequest, QueryKind, RequestHeader
from node.wire import convert
from node.wire.convert import pb
from node.wire.trailers import trailers
from tests.federation import CTX, ROOT, Federation, make_federation, sample_policy

pytestmark = pytest.mark.integration

DOC = DocumentQuery(number="N0481516", issuing_state="KAZ")


def _header(node: str, key: nacl.signing.SigningKey, **over: object) -> RequestHeader:
    from node.app import now_ms

    fields: dict[str, object] = dict(
        requester=node, key_id=env_mod.key_id_for(bytes(key.verify_key)), operator="officer-7",
        purpose="border_check", legal_basis="art. 7", case_ref="CASE-1",
        issued_at_ms=now_ms(), nonce=os.urandom(24))
    fields.update(over)
    return RequestHeader(**fields)  # type: ignore[arg-type]


def _signed(node: str, key: nacl.signing.SigningKey, *, items: int = 1,
            **over: object) -> env_mod.Envelope:
    req = LookupRequest(header=_header(node, key, **over),
                        kind=QueryKind.DOCUMENT if items == 1 else QueryKind.BATCH,
                        items=(DOC,) * items)
    return env_mod.sign(payload_type=env_mod.REQUEST_TYPE, payload=convert.encode_request(req),
                        signer=node, key=key)


def _wire(env: env_mod.Envelope) -> bytes:
    return bytes(pb.LookupRequest(envelope=convert.envelope_to_pb(env)).SerializeToString())


def _key(fed: Federation, node: str) -> nacl.signing.SigningKey:
    seed = (fed.dirs[node] / "signing.key").read_text().strip()
    return nacl.signing.SigningKey(bytes.fromhex(seed))


def _last(fed: Federation, node: str) -> dict[str, object]:
    return fed.audit(node)[-1]


def test_bad_signature(fed: Federation) -> None:
    env = _signed("KGZ-BS", _key(fed, "KGZ-BS"))
    forged = dataclasses.replace(env, signature=bytes(64))
    assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(forged)) == (
        grpc.StatusCode.UNAUTHENTICATED, "bad_signature")
    e = _last(fed, "KAZ-BS")
    assert (e["outcome"], e["reason"], e["verified"], e["requester"]) == (
        "rejected", "bad_signature", False, "KGZ-BS")


def test_payload_changed_after_signing(fed: Federation) -> None:
    env = _signed("KGZ-BS", _key(fed, "KGZ-BS"))
    other = _signed("KGZ-BS", _key(fed, "KGZ-BS"), purpose="counter_terrorism")
    spliced = dataclasses.replace(env, payload=other.payload)
    assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(spliced)) == (
        grpc.StatusCode.UNAUTHENTICATED, "bad_signature")


def test_signed_by_a_key_the_federation_does_not_list(fed: Federation) -> None:
    rogue = nacl.signing.SigningKey.generate()
    env = _signed("KGZ-BS", rogue)
    assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(env)) == (
        grpc.StatusCode.UNAUTHENTICATED, "unknown_key")
    # a rogue key claiming the real key id fails the signature check
    claimed = dataclasses.replace(env, key_id=env_mod.key_id_for(
        bytes(_key(fed, "KGZ-BS").verify_key)))
    assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(claimed)) == (
        grpc.StatusCode.UNAUTHENTICATED, "bad_signature")


def test_unknown_node(fed: Federation) -> None:
    env = _signed("TJK-BS", nacl.signing.SigningKey.generate())
    assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(env)) == (
        grpc.StatusCode.UNAUTHENTICATED, "unknown_node")
    assert _last(fed, "KAZ-BS")["reason"] == "unknown_node"


def test_tls_certificate_of_another_node(fed: Federation) -> None:
    client = fed.client("KGZ-BS", tls_of="UZB-BS")
    with pytest.raises(RemoteError) as err:
        client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT, [DOC])
    client.close()
    assert (err.value.status, err.value.reason) == ("UNAUTHENTICATED", "tls_identity_mismatch")


def test_header_names_another_signer(fed: Federation) -> None:
    key = _key(fed, "KGZ-BS")
    env = _signed("KGZ-BS", key, requester="UZB-BS")
    assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(env)) == (
        grpc.StatusCode.UNAUTHENTICATED, "signer_mismatch")


def test_stale_and_future_timestamps(fed: Federation) -> None:
    from node.app import now_ms

    key = _key(fed, "KGZ-BS")
    for skew in (-10 * 60_000, +10 * 60_000):
        env = _signed("KGZ-BS", key, issued_at_ms=now_ms() + skew)
        assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(env)) == (
            grpc.StatusCode.UNAUTHENTICATED, "stale_request")


def test_replayed_request_is_refused(fed: Federation) -> None:
    env = _signed("KGZ-BS", _key(fed, "KGZ-BS"))
    assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(env)) == (grpc.StatusCode.OK, "")
    assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(env)) == (
        grpc.StatusCode.UNAUTHENTICATED, "replayed_nonce")
    e = _last(fed, "KAZ-BS")
    assert (e["reason"], e["verified"]) == ("replayed_nonce", True)


def test_malformed_protobuf_is_rejected_and_audited(fed: Federation) -> None:
    before = len(fed.audit("KAZ-BS"))
    assert fed.raw_call("KGZ-BS", "KAZ-BS", b"\xff\xff\xff\x0f") == (
        grpc.StatusCode.INVALID_ARGUMENT, "malformed_request")
    entries = fed.audit("KAZ-BS")
    assert len(entries) == before + 1
    assert (entries[-1]["reason"], entries[-1]["outcome"]) == ("malformed_request", "rejected")


def test_malformed_payload_under_a_valid_signature(fed: Federation) -> None:
    env = env_mod.sign(payload_type=env_mod.REQUEST_TYPE, payload=b"\x0a\xff\xff",
                       signer="KGZ-BS", key=_key(fed, "KGZ-BS"))
    assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(env)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "malformed_payload")


def test_empty_envelope_and_wrong_payload_type(fed: Federation) -> None:
    assert fed.raw_call("KGZ-BS", "KAZ-BS", b"") == (
        grpc.StatusCode.INVALID_ARGUMENT, "bad_envelope")
    env = _signed("KGZ-BS", _key(fed, "KGZ-BS"))
    retyped = env_mod.sign(payload_type=env_mod.RESPONSE_TYPE, payload=env.payload,
                           signer="KGZ-BS", key=_key(fed, "KGZ-BS"))
    assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(retyped)) == (
        grpc.StatusCode.UNAUTHENTICATED, "bad_payload_type")


def test_oversized_batch_is_rejected_never_truncated(fed: Federation) -> None:
    env = _signed("KGZ-BS", _key(fed, "KGZ-BS"), items=501)
    assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(env)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "batch_too_large")


def test_oversized_message_is_refused_by_the_transport(fed: Federation) -> None:
    code, _ = fed.raw_call("KGZ-BS", "KAZ-BS", b"\x0a" + b"\x80" * (5 * 1024 * 1024))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_response_must_be_bound_to_our_request(fed: Federation) -> None:
    """The client refuses an answer signed for another request (a replayed answer)."""
    client = fed.client("KGZ-BS", store=False)
    first = client.build(CTX, QueryKind.DOCUMENT, [DOC])
    answer = client.send("KAZ-BS", first, expected_items=1)
    from node.core.errors import Unauthenticated

    second = client.build(CTX, QueryKind.DOCUMENT, [DOC])
    signed_answer = env_mod.sign(payload_type=env_mod.RESPONSE_TYPE, payload=convert.encode_answer(
        answer), signer="KAZ-BS", key=_key(fed, "KAZ-BS"))
    with pytest.raises(Unauthenticated) as err:
        client._verify("KAZ-BS", signed_answer, env_mod.digest(second))
    assert err.value.reason == "response_not_bound"
    with pytest.raises(Unauthenticated) as err2:
        client._verify("UZB-BS", signed_answer, env_mod.digest(first))
    assert err2.value.reason == "bad_response"
    client.close()


# --- tests that need a federation of their own ------------------------------------------------


def test_revoked_key_is_refused(tmp_path: Path) -> None:
    old = nacl.signing.SigningKey.generate()

    def add_revoked(members: dict[str, object]) -> None:
        for m in members["members"]:  # type: ignore[attr-defined]
            if m["node_id"] == "KGZ-BS":
                m["signing_keys"].append({"public_key": base64.b64encode(
                    bytes(old.verify_key)).decode(), "revoked": True})

    f = make_federation(tmp_path, members_edit=add_revoked)
    f.start("KAZ-BS")
    try:
        assert f.raw_call("KGZ-BS", "KAZ-BS", _wire(_signed("KGZ-BS", old))) == (
            grpc.StatusCode.UNAUTHENTICATED, "key_revoked")
        assert f.raw_call("KGZ-BS", "KAZ-BS", _wire(_signed("KGZ-BS", _key(f, "KGZ-BS")))) == (
            grpc.StatusCode.OK, "")
    finally:
        f.stop_all()


def test_replay_after_restart_is_refused(tmp_path: Path) -> None:
    f = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"))
    f.start("KAZ-BS")
    try:
        env = _signed("KGZ-BS", _key(f, "KGZ-BS"))
        assert f.raw_call("KGZ-BS", "KAZ-BS", _wire(env)) == (grpc.StatusCode.OK, "")
        f.restart("KAZ-BS")
        assert f.raw_call("KGZ-BS", "KAZ-BS", _wire(env)) == (
            grpc.StatusCode.UNAUTHENTICATED, "replayed_nonce")
    finally:
        f.stop_all()


def test_quota_and_agreed_batch_size(tmp_path: Path) -> None:
    data = sample_policy()
    for a in data["bxnode"]["agreements"]:
        if (a["responder"], a["requester"]) == ("KAZ-BS", "KGZ-BS"):
            a["daily_quota"], a["max_batch"] = 5, 3
    f = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"), policy_data=data)
    f.start("KAZ-BS")
    client = f.client("KGZ-BS")
    try:
        with pytest.raises(RemoteError) as err:
            client.lookup("KAZ-BS", CTX, QueryKind.BATCH, [DOC] * 4)
        assert (err.value.status, err.value.reason) == ("PERMISSION_DENIED",
                                                        "batch_exceeds_agreement")
        client.lookup("KAZ-BS", CTX, QueryKind.BATCH, [DOC] * 3)
        client.lookup("KAZ-BS", CTX, QueryKind.BATCH, [DOC] * 2)  # exactly the quota: 5
        with pytest.raises(RemoteError) as err:
            client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT, [DOC])
        assert (err.value.status, err.value.reason) == ("RESOURCE_EXHAUSTED", "quota_exhausted")
        # a denied request does not consume quota: usage stays at 5
        e = f.audit("KAZ-BS")[-1]
        assert e["reasons"] == ["quota_exhausted"]
    finally:
        client.close()
        f.stop_all()


def test_a_peer_over_its_rate_is_refused_and_audited_while_others_go_on(
        tmp_path: Path) -> None:
    """KGZ-BS's agreement allows a burst of 3 and next to no refill: its 4th and 5th calls
    are refused with rate_limited (audited in an aggregated entry; refused before the
    request is even parsed, so there is no signed refusal), UZB-BS is answered all
    along."""
    data = sample_policy()
    for a in data["bxnode"]["agreements"]:
        if (a["responder"], a["requester"]) == ("KAZ-BS", "KGZ-BS"):
            a.update(rate_per_s=0.0001, burst=3, max_in_flight=8)
    f = make_federation(tmp_path, policy_data=data)
    f.start("KAZ-BS")
    try:
        kgz = [f.raw_call("KGZ-BS", "KAZ-BS", _wire(_signed("KGZ-BS", _key(f, "KGZ-BS"))))
               for _ in range(5)]
        uzb = [f.raw_call("UZB-BS", "KAZ-BS", _wire(_signed("UZB-BS", _key(f, "UZB-BS"))))
               for _ in range(5)]
    finally:
        f.stop_all()
    ok, limited = (grpc.StatusCode.OK, ""), (grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")
    assert kgz == [ok, ok, ok, limited, limited] and uzb == [ok] * 5
    # counted into one aggregated entry per peer and flush interval (node/server/limits.py)
    refused = [e for e in f.audit("KAZ-BS") if e.get("reason") == "rate_limited"]
    assert {(e["requester"], e["status"], e["outcome"], e["aggregated"])
            for e in refused} == {("KGZ-BS", "RESOURCE_EXHAUSTED", "rejected", True)}
    assert sum(e["refused"] for e in refused) == 2


def test_no_plaintext_in_the_database_files(fed: Federation) -> None:
    needles = ["N0481516", "AB1234567", "KAZ-SLTD-2026-000117", "Юсупов", "Сейткали",
               "Тимур", "officer-7"]
    d = fed.dirs["KAZ-BS"]
    files = [p for p in d.iterdir() if p.name.startswith("node.db")]
    assert files, "database files exist"
    for p in files:
        raw = p.read_bytes()
        for n in needles:
            assert n.encode("utf-8") not in raw, f"{n} found in {p.name}"
    assert b"SQLite format 3" not in files[0].read_bytes()[:16]


def test_refusal_details_never_leak_the_watchlist(fed: Federation) -> None:
    env = _signed("KGZ-BS", _key(fed, "KGZ-BS"), purpose="criminal_investigation")
    code, reason = fed.raw_call("UZB-BS", "KAZ-BS", _wire(env))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "tls_identity_mismatch")
    env = _signed("UZB-BS", _key(fed, "UZB-BS"), purpose="criminal_investigation")
    client = fed.client("UZB-BS", store=False)
    with pytest.raises(RemoteError) as err:
        client.send("KAZ-BS", env, expected_items=1)
    client.close()
    assert err.value.reason == "purpose_not_agreed"
    assert "KAZ-SLTD" not in str(err.value) and "N0481516" not in str(err.value)


def _unlisted_creds(fed: Federation) -> grpc.ChannelCredentials:
    """A certificate the federation CA signed (so TLS accepts it) that no member lists."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from node.federation.pki import issue_cert, new_tls_key

    dev = ROOT / "keys" / "dev"
    ca = (serialization.load_pem_private_key((dev / "ca.key").read_bytes(), None),
          x509.load_pem_x509_certificate((dev / "ca.crt").read_bytes()))
    key = new_tls_key()
    cert = issue_cert(cn="TJK-BS", org="bxnode DEVELOPMENT ONLY", key=key, hosts=["127.0.0.1"],
                      ca=ca)  # type: ignore[arg-type]
    return grpc.ssl_channel_credentials(
        root_certificates=(fed.dirs["KGZ-BS"] / "ca.crt").read_bytes(),
        private_key=key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()),
        certificate_chain=cert.public_bytes(serialization.Encoding.PEM))


@pytest.mark.parametrize("signer", ["KGZ-BS", "TJK-BS", "NOPE-XX"])
def test_a_certificate_no_member_lists_cannot_probe_membership(fed: Federation,
                                                               signer: str) -> None:
    """Whatever it sends (a member's name, a non-member's, garbage) it gets one reason."""
    key = _key(fed, "KGZ-BS") if signer == "KGZ-BS" else nacl.signing.SigningKey.generate()
    payload = _wire(_signed(signer, key)) if signer != "NOPE-XX" else b"\x0a\x03abc"
    with grpc.secure_channel(f"127.0.0.1:{fed.ports['KAZ-BS']}", _unlisted_creds(fed)) as ch:
        lookup: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(
            "/bxnode.v1.NodeService/Lookup")
        with pytest.raises(grpc.RpcError) as err:
            lookup(payload, timeout=10)
    md = trailers(err.value)
    assert (err.value.code(), md.get("bxnode-reason")) == (
        grpc.StatusCode.UNAUTHENTICATED, "unlisted_certificate")
    assert "bxnode-refusal-bin" not in md
    e = _last(fed, "KAZ-BS")
    assert (e["reason"], e["requester"], e["verified"]) == ("unlisted_certificate", "", False)
    assert "claimed_signer" not in e


def test_a_forgery_is_filed_under_its_real_sender(fed: Federation) -> None:
    """KGZ-BS's certificate, a request claiming to be UZB-BS's: an auditor filtering by
    UZB-BS does not see it; it is filed under KGZ-BS with the claim beside it."""
    env = _signed("UZB-BS", nacl.signing.SigningKey.generate())
    assert fed.raw_call("KGZ-BS", "KAZ-BS", _wire(env)) == (
        grpc.StatusCode.UNAUTHENTICATED, "unknown_key")
    e = _last(fed, "KAZ-BS")
    assert (e["requester"], e["claimed_signer"], e["reason"]) == (
        "KGZ-BS", "UZB-BS", "unknown_key")
