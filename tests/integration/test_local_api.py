"""The LocalService on a real federation, over its unix socket, with officer certificates.

Four nodes (KAZ, KGZ, UZB, TJK): KAZ and KGZ serve the LocalService to officers whose
certificates a test CA (the agency's own) issued; TJK is listed but never started (down).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from node.local.client import LocalCallError, LocalClient
from node.local.server import LocalApiServer
from node.wire.local import lpb
from tests.federation import Federation, make_federation, sample_policy
from tests.integration.local_federation import Officers, start_api, stop_api

pytestmark = pytest.mark.integration

KGZ_STOLEN = ("AC7654321", "KGZ", "P")  # KGZ-SLTD-2026-0031 in KGZ's watchlist
ISS, AUD = "https://idp.kaz.example", "bxnode-kaz"
ROLES = {
    "KAZ-BS": {"kz-duty": ["duty_officer"], "kz-nobody": [], "kz-gate-1": ["duty_officer"],
               "kz-idp-officer": ["duty_officer"]},
    "KGZ-BS": {"kg-desk-1": ["followup_desk"], "kg-desk-2": ["followup_desk"],
               "kg-duty": ["duty_officer"]},
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("local")
    data = sample_policy()
    for a in data["bxnode"]["followup_agreements"]:
        if a["responder"] == "KGZ-BS" and a["requester"] == "KAZ-BS":
            a["four_eyes"] = True
    fed = make_federation(root, ("KAZ-BS", "KGZ-BS", "UZB-BS", "TJK-BS"), policy_data=data)
    officers = {n: Officers(root / f"officers-{n}", n) for n in ("KAZ-BS", "KGZ-BS")}
    other_ca = Officers(root / "officers-other", "OTHER")
    idp_key = ECKey.generate_key("P-256", parameters={"kid": "idp-1"}, private=True)
    (root / "jwks.json").write_text(json.dumps({"keys": [idp_key.as_dict(private=False)]}))
    for node_id, off in officers.items():
        d = fed.dirs[node_id]
        roles = "\n".join(f'"{k}" = {json.dumps(v)}' for k, v in ROLES[node_id].items())
        oidc = (f'oidc_issuer = "{ISS}"\noidc_audience = "{AUD}"\n'
                f'oidc_jwks = "{root / "jwks.json"}"\n' if node_id == "KAZ-BS" else "")
        with (d / "node.toml").open("a") as f:
            f.write(f'\n[local]\napi_socket = "unix:officers.sock"\n'
                    f'client_ca = "{off.root / "ca.crt"}"\nfanout_deadline_ms = 8000\n{oidc}'
                    f"\n[local.roles]\n{roles}\n")
    apis: dict[str, LocalApiServer] = {}
    for node_id in ("KAZ-BS", "KGZ-BS", "UZB-BS"):
        node = fed.start(node_id)
        if node_id in officers:
            apis[node_id] = start_api(node)
    try:
        yield {"fed": fed, "officers": officers, "other": other_ca, "apis": apis,
               "idp": idp_key}
    finally:
        for node_id, api in apis.items():
            stop_api(fed.nodes[node_id], api)
        fed.stop_all()


def client(s: dict[str, Any], node_id: str, officer: str, *, token: str | None = None,
           ca_of: str | None = None) -> LocalClient:
    fed: Federation = s["fed"]
    off = s["other"] if ca_of == "other" else s["officers"][ca_of or node_id]
    cert, key = off.issue(officer)
    return LocalClient.over_socket(fed.dirs[node_id] / "officers.sock", cert=cert, key=key,
                                   ca=fed.dirs[node_id] / "ca.crt", token=token)


def audit_tail(s: dict[str, Any], node_id: str, n: int = 20) -> list[dict[str, Any]]:
    fed: Federation = s["fed"]
    return fed.audit(node_id)[-n:]


def local_calls(s: dict[str, Any], node_id: str) -> list[dict[str, Any]]:
    return [e for e in s["fed"].audit(node_id) if e.get("event") == "local_call"]


def sent_count(s: dict[str, Any], node_id: str) -> int:
    return sum(1 for e in s["fed"].audit(node_id) if e.get("event") in (
        "lookup_sent", "request_sent", "crossing_sent", "followup_sent"))


def test_fan_out_with_a_peer_down_and_one_refusing_shows_each_peer(setup: dict[str, Any]) -> None:
    with client(setup, "KAZ-BS", "kz-duty") as node:
        assert node.whoami().identity == "kz-duty"
        # criminal_investigation: KGZ agreed to answer KAZ for it, UZB did not; TJK is down.
        r = node.lookup_document(*KGZ_STOLEN, peers=["KGZ-BS", "UZB-BS", "TJK-BS"],
                                 purpose="criminal_investigation", case_ref="CASE-FAN-1")
    kgz, uzb, tjk = r.peer("KGZ-BS"), r.peer("UZB-BS"), r.peer("TJK-BS")
    assert (kgz.outcome, [x.outcome.value for x in kgz.results], kgz.results[0].reference) == (
        "answered", ["hit"], "KGZ-SLTD-2026-0031")
    assert (uzb.outcome, uzb.status, uzb.reason, uzb.refusal_verified) == (
        "refused", "PERMISSION_DENIED", "purpose_not_agreed", True)
    assert (tjk.outcome, tjk.reason) == ("unreachable", "peer_unavailable")
    # Both sides audit the authenticated officer.
    kaz = audit_tail(setup, "KAZ-BS", 30)
    call = [e for e in kaz if e.get("event") == "local_call"][-1]
    assert (call["caller"], call["operator"], call["auth"], call["outcome"]) == (
        "kz-duty", "kz-duty", "certificate", "ok")
    assert {x["peer"]: x["outcome"] for x in call["results"]} == {
        "KGZ-BS": "answered", "UZB-BS": "refused", "TJK-BS": "unreachable"}
    sent = [e for e in kaz if e.get("event") == "lookup_sent" and e["case_ref"] == "CASE-FAN-1"]
    assert sent and {e["operator"] for e in sent} == {"kz-duty"}
    kgz_side = [e for e in audit_tail(setup, "KGZ-BS", 30) if e.get("case_ref") == "CASE-FAN-1"]
    assert kgz_side and {e["operator"] for e in kgz_side} == {"kz-duty"}
    uzb_side = [e for e in audit_tail(setup, "UZB-BS", 30) if e.get("case_ref") == "CASE-FAN-1"]
    assert uzb_side and uzb_side[-1]["operator"] == "kz-duty"


def test_all_asks_only_peers_our_agreements_cover(setup: dict[str, Any]) -> None:
    with client(setup, "KAZ-BS", "kz-duty") as node:
        r = node.lookup_document(*KGZ_STOLEN, peers=["all"], purpose="border_check",
                                 case_ref="CASE-ALL-1")
    assert [(p.peer, p.outcome) for p in r.peers] == [
        ("KGZ-BS", "answered"), ("TJK-BS", "not_asked"), ("UZB-BS", "answered")]
    assert r.peer("TJK-BS").reason == "no_agreement_on_file"
    assert [x.outcome.value for x in r.peer("UZB-BS").results] == ["no_hit"]


def test_mrz_lookup_checks_document_and_holder(setup: dict[str, Any]) -> None:
    from node.matching.mrz import check_digit

    def cd(f: str) -> str:
        return str(check_digit(f))

    number, dob, exp = "AC7654321", "791102", "360228"
    l2 = (number + cd(number) + "KGZ" + dob + cd(dob) + "M" + exp + cd(exp) + "<" * 14 + "0")
    l2 += cd(l2[0:10] + l2[13:20] + l2[21:43])
    mrz = "P<KGZASANOV<<BAKYT".ljust(44, "<") + "\n" + l2
    with client(setup, "KAZ-BS", "kz-duty") as node:
        fmt, r = node.lookup_mrz(mrz, peers=["KGZ-BS"], purpose="border_check",
                                 case_ref="CASE-MRZ-1")
    assert fmt == "TD3"
    # the document is stolen and its holder wanted (Асанов Бакыт, KGZ-WNT-2026-0007)
    assert [(x.outcome.value, x.reference) for x in r.peer("KGZ-BS").results] == [
        ("hit", "KGZ-SLTD-2026-0031"), ("hit", "KGZ-WNT-2026-0007")]


def test_four_eyes_release_needs_two_different_desk_officers(setup: dict[str, Any]) -> None:
    with client(setup, "KAZ-BS", "kz-duty") as node:
        r = node.lookup_document(*KGZ_STOLEN, peers=["KGZ-BS"], purpose="border_check",
                                 case_ref="CASE-FU-1")
        assert r.peer("KGZ-BS").hits == 1
        filed = node.send_followup("KGZ-BS", "KGZ-SLTD-2026-0031",
                                   ["document_number", "loss_type"], purpose="border_check",
                                   case_ref="CASE-FU-1")
    fid = filed.followup_id
    with client(setup, "KGZ-BS", "kg-desk-1") as desk1:
        row, pending = desk1.approve_followup(fid)
        assert (pending, row.state, row.approval_pending_by) == (True, "pending", "kg-desk-1")
        with pytest.raises(LocalCallError) as err:
            desk1.approve_followup(fid)
        assert (err.value.status, err.value.reason) == ("FAILED_PRECONDITION", "same_officer")
    with client(setup, "KAZ-BS", "kz-duty") as node:  # nothing has left KGZ yet
        polled = node.poll_followup("KGZ-BS", fid, purpose="border_check", case_ref="CASE-FU-1")
        assert (polled.state, polled.fields) == ("pending", {})
    with client(setup, "KGZ-BS", "kg-desk-2") as desk2:
        row, pending = desk2.approve_followup(fid)
        assert (pending, row.state, row.decided_by) == (False, "approved", "kg-desk-2")
    with client(setup, "KAZ-BS", "kz-duty") as node:
        polled = node.poll_followup("KGZ-BS", fid, purpose="border_check", case_ref="CASE-FU-1")
    assert (polled.state, polled.fields) == (
        "approved", {"document_number": "AC7654321", "loss_type": "stolen"})
    kgz = [e for e in setup["fed"].audit("KGZ-BS") if e.get("followup_id") == fid]
    events = [(e["event"], e.get("operator")) for e in kgz
              if e["event"].startswith("followup_app")]
    assert events == [("followup_approval_pending", "kg-desk-1"),
                      ("followup_approve_refused", "kg-desk-1"),
                      ("followup_approved", "kg-desk-2")]
    approved = next(e for e in kgz if e["event"] == "followup_approved")
    assert approved["first_operator"] == "kg-desk-1"
    filed_entry = next(e for e in kgz if e["event"] == "followup_filed")
    assert filed_entry.get("operator") == "kz-duty"


def _refused(fn: Any) -> tuple[str, str]:
    with pytest.raises(LocalCallError) as err:
        fn()
    return err.value.status, err.value.reason


def test_bad_input_is_refused_precisely_audited_and_sends_nothing(setup: dict[str, Any]) -> None:
    before = sent_count(setup, "KAZ-BS")
    calls_before = len(local_calls(setup, "KAZ-BS"))
    with client(setup, "KAZ-BS", "kz-nobody") as nobody:
        assert _refused(lambda: nobody.lookup_document(
            *KGZ_STOLEN, peers=["KGZ-BS"], purpose="border_check", case_ref="C")) == (
            "PERMISSION_DENIED", "role_required")
    with client(setup, "KAZ-BS", "kz-duty") as node:
        assert _refused(lambda: node.lookup_document(
            *KGZ_STOLEN, peers=["XXX-BS"], purpose="border_check", case_ref="C")) == (
            "INVALID_ARGUMENT", "unknown_peer")
        assert _refused(lambda: node.lookup_document(
            *KGZ_STOLEN, peers=["all", "KGZ-BS"], purpose="border_check", case_ref="C")) == (
            "INVALID_ARGUMENT", "bad_peer_list")
        assert _refused(lambda: node.lookup_document(
            "AC765 4321", "KGZ", peers=["KGZ-BS"], purpose="border_check", case_ref="C")) == (
            "INVALID_ARGUMENT", "bad_document_number")
        assert _refused(lambda: node.lookup_document(
            *KGZ_STOLEN, peers=["KGZ-BS"], purpose="sightseeing", case_ref="C")) == (
            "INVALID_ARGUMENT", "unknown_purpose")
        assert _refused(lambda: node.lookup_mrz(
            "P" * 201, peers=["KGZ-BS"], purpose="border_check", case_ref="C")) == (
            "INVALID_ARGUMENT", "bad_mrz")
        assert _refused(lambda: node.lookup_manifest(
            [], peers=["KGZ-BS"], purpose="border_check", case_ref="C")) == (
            "INVALID_ARGUMENT", "empty_request")
        big = lpb.LookupManifestRequest()
        for _ in range(501):
            big.items.add().document.number = "AC7654321"
        assert _refused(lambda: node.raw("LookupManifest", big)) == (
            "INVALID_ARGUMENT", "batch_too_large")
        huge = lpb.LookupPaxlstRequest(message="U" * (8 * 1024 * 1024 + 512 * 1024))
        assert _refused(lambda: node.raw("LookupPaxlst", huge)) == (
            "RESOURCE_EXHAUSTED", "message_too_large")
        lookup: grpc.UnaryUnaryMultiCallable[bytes, bytes] = node._channel.unary_unary(
            "/bxnode.v1.LocalService/LookupDocument")
        with pytest.raises(grpc.RpcError) as rpc:
            lookup(b"\xff\xff\xff", timeout=10)
        assert rpc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _refused(lambda: node.approve_followup("FU-0000")) == (
            "PERMISSION_DENIED", "role_required")
    calls = local_calls(setup, "KAZ-BS")[calls_before:]
    assert [(c["caller"], c["status"], c["reason"]) for c in calls] == [
        ("kz-nobody", "PERMISSION_DENIED", "role_required"),
        ("kz-duty", "INVALID_ARGUMENT", "unknown_peer"),
        ("kz-duty", "INVALID_ARGUMENT", "bad_peer_list"),
        ("kz-duty", "INVALID_ARGUMENT", "bad_document_number"),
        ("kz-duty", "INVALID_ARGUMENT", "unknown_purpose"),
        ("kz-duty", "INVALID_ARGUMENT", "bad_mrz"),
        ("kz-duty", "INVALID_ARGUMENT", "empty_request"),
        ("kz-duty", "INVALID_ARGUMENT", "batch_too_large"),
        ("kz-duty", "RESOURCE_EXHAUSTED", "message_too_large"),
        ("kz-duty", "INVALID_ARGUMENT", "malformed_request"),
        ("kz-duty", "PERMISSION_DENIED", "role_required"),
    ]
    assert sent_count(setup, "KAZ-BS") == before  # no request to any peer


def test_tokens_expired_wrongly_signed_wrong_audience(setup: dict[str, Any]) -> None:
    import time

    key: ECKey = setup["idp"]
    now = int(time.time())

    def tok(k: ECKey = key, **claims: Any) -> str:
        body = {"iss": ISS, "aud": AUD, "sub": "kz-idp-officer", "iat": now - 10,
                "exp": now + 300, **claims}
        return jwt.encode({"alg": "ES256", "kid": "idp-1"}, body, k)

    with client(setup, "KAZ-BS", "kz-gate-1", token=tok()) as node:
        who = node.whoami()
        assert (who.identity, who.method, who.roles) == ("kz-idp-officer", "token",
                                                          ("duty_officer",))
    forged = ECKey.generate_key("P-256", parameters={"kid": "idp-1"}, private=True)
    for token, reason in ((tok(exp=now - 3600), "token_expired"),
                          (tok(forged), "token_bad_signature"),
                          (tok(aud="another-node"), "token_wrong_audience")):
        with client(setup, "KAZ-BS", "kz-gate-1", token=token) as node:
            assert _refused(lambda node=node: node.lookup_document(
                *KGZ_STOLEN, peers=["KGZ-BS"], purpose="border_check", case_ref="C")) == (
                "UNAUTHENTICATED", reason)
    last = local_calls(setup, "KAZ-BS")[-3:]
    assert [(c["caller"], c["reason"]) for c in last] == [
        ("kz-gate-1", "token_expired"), ("kz-gate-1", "token_bad_signature"),
        ("kz-gate-1", "token_wrong_audience")]


def test_certificate_from_another_ca_never_reaches_the_service(setup: dict[str, Any]) -> None:
    calls_before = len(local_calls(setup, "KAZ-BS"))
    with client(setup, "KAZ-BS", "kz-duty", ca_of="other") as node:
        with pytest.raises(LocalCallError) as err:
            node.whoami()
    assert err.value.status == "UNAVAILABLE"
    assert len(local_calls(setup, "KAZ-BS")) == calls_before


def test_local_service_is_not_on_the_peer_port(setup: dict[str, Any]) -> None:
    fed: Federation = setup["fed"]
    d = fed.dirs["KGZ-BS"]
    creds = grpc.ssl_channel_credentials(root_certificates=(d / "ca.crt").read_bytes(),
                                         private_key=(d / "tls.key").read_bytes(),
                                         certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{fed.ports['KAZ-BS']}", creds) as ch:
        who_am_i: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(
            "/bxnode.v1.LocalService/WhoAmI")
        with pytest.raises(grpc.RpcError) as err:
            who_am_i(b"", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_paxlst_flight_through_the_client_catches_the_wanted_man_by_his_person_item(
        setup: dict[str, Any]) -> None:
    """Flight KC109: IUSUPOV TIMUR travels on a new Uzbek passport (FA7777777) that no
    watchlist holds; KAZ-BS wants the person (Юсупов Тимур, KAZ-WNT-2026-000311)."""
    from tests.federation import DEMO

    message = (DEMO / "flight-KC109-paxlst.edi").read_text(encoding="ascii")
    with client(setup, "KGZ-BS", "kg-duty") as node:
        r = node.lookup_paxlst(message, peers=["KAZ-BS", "TJK-BS"], purpose="border_check",
                               case_ref="CASE-PAX-LOCAL-1")
    kaz = r.peer("KAZ-BS")
    assert (kaz.outcome, r.peer("TJK-BS").outcome) == ("answered", "unreachable")
    # item 0 is IUSUPOV TIMUR's person, item 1 his new passport (flight_queries order)
    assert [(x.index, x.outcome.value, x.reference) for x in kaz.results[:2]] == [
        (0, "hit", "KAZ-WNT-2026-000311"), (1, "no_hit", "")]
    assert kaz.hits == 2  # and NURLANOV ARMAN's stolen passport N0481516
    call = [e for e in setup["fed"].audit("KGZ-BS") if e.get("event") == "local_call"][-1]
    assert (call["method"], call["operator"], call["travellers"]) == (
        "LookupPaxlst", "kg-duty", 4)
    asked = [e for e in setup["fed"].audit("KAZ-BS") if e.get("case_ref") == "CASE-PAX-LOCAL-1"]
    assert asked and {e["operator"] for e in asked} == {"kg-duty"}
