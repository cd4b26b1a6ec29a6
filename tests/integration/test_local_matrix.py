"""Bad input for EVERY LocalService method, table-driven (issue 11 §4).

One federation for the module: KAZ, KGZ and UZB serve (demo keys), TJK is a member that
is never started (down).  KAZ serves the LocalService on its unix socket (mTLS against
the agency officers' CA, plus OpenID Connect tokens) and on a TCP listener (always mTLS);
KGZ serves it on a plain unix socket that takes bearer tokens only, which is the one
place a call can arrive with no identity at all.

For each method and each kind of bad input the test asserts the exact gRPC status and
``bxnode-reason``, the ``local_call`` audit entry naming the caller (``anonymous`` when
there is none), and that NO request reached any peer: the other nodes' audit logs gain
no entry and the calling node records no request sent.  A certificate from another CA
fails the TLS handshake, before gRPC has a call to hand the node; that case asserts the
client's UNAVAILABLE, that nothing at all was audited, and that the listener keeps
serving (README, "For the national system integrator": why it cannot be audited).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from joserfc.jwk import ECKey

from node.cli.main import main as cli
from node.core.model import PartialDate, PersonQuery, Sex
from node.crossings.importer import parse_utc
from node.local.client import LocalClient
from node.local.server import MAX_LOCAL_MESSAGE_BYTES, LocalApiServer
from node.matching.mrz import check_digit
from node.wire import convert
from node.wire.crossings import cpb
from node.wire.local import lpb
from node.wire.trailers import trailers
from tests.federation import DEMO, Federation, make_federation, sample_policy
from tests.integration.local_federation import (
    AUD,
    ISS,
    Officers,
    add_local_section,
    new_idp_key,
    start_api,
    stop_api,
    token,
)

pytestmark = pytest.mark.integration

SERVING = ("KAZ-BS", "KGZ-BS", "UZB-BS")
SENT_EVENTS = ("lookup_sent", "request_sent", "crossing_sent", "followup_sent")
KAZ_ROLES = {"kz-duty": ["duty_officer"], "kz-desk": ["followup_desk"],
             "kz-auditor": ["auditor"], "kz-wl": ["watchlist_manager"], "kz-nobody": [],
             "kz-gate-1": [], "kz-idp-officer": ["duty_officer"]}


@dataclass
class Env:
    fed: Federation
    officers: Officers
    other: Officers
    idp: ECKey
    apis: dict[str, LocalApiServer]
    tmp: Path
    channels: dict[str, grpc.Channel] = field(default_factory=dict)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("localmatrix")
    fed = make_federation(root, ("KAZ-BS", "KGZ-BS", "UZB-BS", "TJK-BS"),
                          policy_data=sample_policy())
    for node, name in (("KAZ-BS", "kaz-crossings.csv"), ("KGZ-BS", "kgz-crossings.csv"),
                       ("UZB-BS", "uzb-crossings.jsonl")):
        d = str(fed.dirs[node])
        assert cli(["crossings", "bcps", str(DEMO / "bcps.json"), "--node-dir", d]) == 0
        assert cli(["crossings", "import", str(DEMO / name), "--node-dir", d]) == 0
    officers = Officers(root / "officers-kaz", "KAZ-BS")
    idp, jwks = new_idp_key(root)
    add_local_section(fed.dirs["KAZ-BS"], officers, KAZ_ROLES, jwks=jwks,
                      api_tcp="127.0.0.1:0")
    with (fed.dirs["KGZ-BS"] / "node.toml").open("a") as f:  # tokens only: a plain socket
        f.write(f'\n[local]\napi_socket = "unix:officers.sock"\noidc_issuer = "{ISS}"\n'
                f'oidc_audience = "{AUD}"\noidc_jwks = "{jwks}"\n'
                '\n[local.roles]\n"kg-duty" = ["duty_officer"]\n')
    apis = {}
    for n in SERVING:
        running = fed.start(n)
        if n in ("KAZ-BS", "KGZ-BS"):
            apis[n] = start_api(running)
    e = Env(fed=fed, officers=officers, other=Officers(root / "other", "OTHER"), idp=idp,
            apis=apis, tmp=root)
    try:
        yield e
    finally:
        for ch in e.channels.values():
            ch.close()
        for n, api in apis.items():
            stop_api(fed.nodes[n], api)
        fed.stop_all()


# --- calling ---------------------------------------------------------------------------------


def channel(e: Env, officer: str | None, *, ca: str = "agency", tcp: bool = False,
            node: str = "KAZ-BS") -> grpc.Channel:
    """A channel as ``officer`` (certificate from the agency CA or ``ca="other"``), or
    with no certificate (KGZ's plain socket)."""
    key = f"{node}/{officer}/{ca}/{tcp}"
    if key not in e.channels:
        d = e.fed.dirs[node]
        if officer is None:
            client = LocalClient.over_socket(d / "officers.sock")
        else:
            cert, k = (e.other if ca == "other" else e.officers).issue(officer)
            client = (LocalClient.over_tcp(f"127.0.0.1:{e.apis[node].tcp_port}", cert=cert,
                                           key=k, ca=d / "ca.crt") if tcp else
                      LocalClient.over_socket(d / "officers.sock", cert=cert, key=k,
                                              ca=d / "ca.crt"))
        e.channels[key] = client._channel
    return e.channels[key]


STREAMING = {"AwaitFollowUp"}


def invoke(ch: grpc.Channel, method: str, raw: bytes, *, bearer: str | None = None
           ) -> tuple[str, str]:
    """(status name, bxnode-reason) of one call with raw request bytes."""
    status, reason, _ = invoke_md(ch, method, raw, bearer=bearer)
    return status, reason


def invoke_md(ch: grpc.Channel, method: str, raw: bytes, *, bearer: str | None = None
              ) -> tuple[str, str, dict[str, Any]]:
    """(status name, bxnode-reason, every trailer) of one call with raw request bytes."""
    md = (("authorization", f"Bearer {bearer}"),) if bearer else ()
    path = f"/bxnode.v1.LocalService/{method}"
    try:
        if method in STREAMING:
            stream: grpc.UnaryStreamMultiCallable[bytes, bytes] = ch.unary_stream(path)
            for _ in stream(raw, timeout=20, metadata=md):
                pass
        else:
            call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(path)
            call(raw, timeout=20, metadata=md)
    except grpc.RpcError as err:
        trailing = trailers(err)
        return err.code().name, str(trailing.get("bxnode-reason", "")), trailing
    return "OK", "", {}


def audit(e: Env, node: str) -> list[dict[str, Any]]:
    return e.fed.audit(node)


def snapshot(e: Env) -> dict[str, int]:
    return {n: len(audit(e, n)) for n in SERVING}


def sent(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [x for x in entries if x.get("event") in SENT_EVENTS]


# --- the methods -----------------------------------------------------------------------------


def ctx(purpose: str = "border_check") -> Any:
    return lpb.CaseContext(purpose=purpose, legal_basis="art. 7", case_ref="MATRIX-1")


def target(peers: list[str], purpose: str = "border_check") -> Any:
    return lpb.FanOut(peers=peers, context=ctx(purpose))


def doc(number: str = "AC7654321") -> Any:
    return convert.pb.DocumentQuery(number=number, issuing_state="KGZ", document_type="P")


PERSON = convert._person_to_pb(PersonQuery(family_name="Асанов", given_names="Бакыт",
                                           date_of_birth=PartialDate(1979, 11, 2),
                                           nationality="KGZ", sex=Sex.MALE))
BAD_PAXLST = "UNA:+.? 'UNB+UNOA:4+KC:ZZ+KAZBS:ZZ+260314:0545+1'UNH+1+PAXLST:D:02B:UN:IATA'BGM+745"
DIGEST = bytes(32)
DAY = 86_400_000
T0 = parse_utc("2026-11-20T00:00:00Z")


def _mrz() -> str:
    """A TD3 zone of the stolen KGZ passport AC7654321 and its wanted holder."""
    def cd(text: str) -> str:
        return str(check_digit(text))

    line = ("AC7654321" + cd("AC7654321") + "KGZ" + "791102" + cd("791102") + "M" + "360228"
            + cd("360228") + "<" * 14 + "0")
    return ("P<KGZASANOV<<BAKYT".ljust(44, "<") + "\n" + line
            + cd(line[0:10] + line[13:20] + line[21:43]))


MRZ = _mrz()


def _person(**over: Any) -> Any:
    p = convert.pb.PersonQuery()
    p.CopyFrom(PERSON)
    for k, v in over.items():
        setattr(p, k, v)
    return p


def _alert(**over: str) -> Any:
    fields = {"kind": "document", "owner_ref": "KAZ-MATRIX-1", "action": "seize_document",
              "expires": "2030-01-01", "number": "N9990001", "issuing_state": "KAZ",
              "doc_type": "P", "loss_type": "stolen", **over}
    return lpb.AlertRecord(**fields)


def question(**over: Any) -> Any:
    q = cpb.CrossingQuestion(document=doc("AC1111111"), bcp="KAZ-KORDAI",
                             direction=cpb.CROSSING_DIRECTION_EXIT, window_start_ms=T0,
                             window_end_ms=T0 + DAY // 2)
    for k, v in over.items():
        setattr(q, k, v)
    return q


@dataclass(frozen=True)
class Method:
    """A LocalService method: who may call it, and its bad requests with the status and
    reason each must get.  ``peer(p)`` builds a request that asks peer(s) ``p``."""

    name: str
    role_holder: str                  # an identity with a role that allows it
    wrong_role: str                   # an identity whose role does not
    bad: tuple[tuple[str, Any, str, str], ...] = ()   # (case, request, status, reason)
    peer: Callable[[list[str]], Any] | None = None    # None: the method names no peer


def _manifest(n: int) -> Any:
    m = lpb.LookupManifestRequest(target=target(["KGZ-BS"]))
    for _ in range(n):
        m.items.add(document=doc())
    return m


def _records(n: int, **over: Any) -> Any:
    m = lpb.StoreCrossingsRequest(source="matrix")
    for i in range(n):
        r = m.records.add(record_id=f"MX-{i}", event="exit", bcp="KAZ-KORDAI",
                          crossed_at_ms=T0, mode=cpb.TRAVEL_MODE_ROAD, document=doc("AC1111111"))
        for k, v in over.items():
            setattr(r, k, v)
    return m


IA, RE = "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"
METHODS: tuple[Method, ...] = (
    Method("WhoAmI", "kz-duty", "kz-nobody"),
    Method("LookupDocument", "kz-duty", "kz-desk", bad=(
        ("bad document number", lpb.LookupDocumentRequest(target=target(["KGZ-BS"]),
                                                          document=doc("AC765 4321")),
         IA, "bad_document_number"),
        ("unknown purpose", lpb.LookupDocumentRequest(target=target(["KGZ-BS"], "sightseeing"),
                                                      document=doc()), IA, "unknown_purpose"),
        ("65 peers", lpb.LookupDocumentRequest(target=target([f"P{i}" for i in range(65)]),
                                               document=doc()), IA, "bad_peer_list"),
        ("deadline over 60 s", lpb.LookupDocumentRequest(target=lpb.FanOut(
            peers=["KGZ-BS"], context=ctx(), deadline_ms=60_001), document=doc()),
         IA, "bad_deadline")),
        peer=lambda p: lpb.LookupDocumentRequest(target=target(p), document=doc())),
    Method("LookupPerson", "kz-duty", "kz-auditor", bad=(
        ("no family name", lpb.LookupPersonRequest(target=target(["KGZ-BS"]),
                                                   person=_person(family_name="")),
         IA, "bad_name"),
        ("birth month 13", lpb.LookupPersonRequest(target=target(["KGZ-BS"]),
                                                   person=_person(birth_month=13)),
         IA, "bad_date")),
        peer=lambda p: lpb.LookupPersonRequest(target=target(p), person=PERSON)),
    Method("LookupMrz", "kz-duty", "kz-wl", bad=(
        ("201-character MRZ", lpb.LookupMrzRequest(target=target(["KGZ-BS"]), mrz="P" * 201),
         IA, "bad_mrz"),
        ("wrong check digit", lpb.LookupMrzRequest(target=target(["KGZ-BS"]),
                                                   mrz=MRZ[:-1] + str((int(MRZ[-1]) + 1) % 10)),
         IA, "bad_check_digit")),
        peer=lambda p: lpb.LookupMrzRequest(target=target(p), mrz=MRZ)),
    Method("LookupManifest", "kz-duty", "kz-desk", bad=(
        ("no items", _manifest(0), IA, "empty_request"),
        ("501 items", _manifest(501), IA, "batch_too_large")),
        peer=lambda p: lpb.LookupManifestRequest(target=target(p), items=[
            convert.pb.QueryItem(document=doc())])),
    Method("LookupPaxlst", "kz-duty", "kz-auditor", bad=(
        ("truncated message", lpb.LookupPaxlstRequest(target=target(["KGZ-BS"]),
                                                      message=BAD_PAXLST), IA, "bad_paxlst"),),
        peer=lambda p: lpb.LookupPaxlstRequest(target=target(p), message=(
            DEMO / "flight-KC109-paxlst.edi").read_text())),
    Method("ConfirmCrossings", "kz-duty", "kz-desk", bad=(
        ("no questions", lpb.ConfirmCrossingsRequest(peer="KGZ-BS", context=ctx()),
         IA, "empty_request"),
        ("1001 questions", lpb.ConfirmCrossingsRequest(peer="KGZ-BS", context=ctx(),
                                                       questions=[question()] * 1001),
         IA, "batch_too_large"),
        ("no direction", lpb.ConfirmCrossingsRequest(peer="KGZ-BS", context=ctx(),
                                                     questions=[question(direction=0)]),
         IA, "bad_direction")),
        peer=lambda p: lpb.ConfirmCrossingsRequest(peer=p[0], context=ctx(),
                                                   questions=[question()])),
    Method("ReconcileCrossings", "kz-duty", "kz-wl", bad=(
        ("period ends first", lpb.ReconcileCrossingsRequest(peer="KGZ-BS", from_ms=T0,
                                                            to_ms=T0 - 1), IA, "bad_window"),
        ("32 days", lpb.ReconcileCrossingsRequest(peer="KGZ-BS", from_ms=T0,
                                                  to_ms=T0 + 32 * DAY), IA, "window_too_long"),
        ("batch of 1001", lpb.ReconcileCrossingsRequest(peer="KGZ-BS", from_ms=T0,
                                                        to_ms=T0 + DAY, batch_size=1001),
         IA, "invalid_argument"),
        ("transit over 744 h", lpb.ReconcileCrossingsRequest(
            peer="KGZ-BS", from_ms=T0, to_ms=T0 + DAY, transit_ms=744 * 3_600_000 + 1),
         IA, "invalid_argument"),
        ("transit in hours and ms", lpb.ReconcileCrossingsRequest(
            peer="KGZ-BS", from_ms=T0, to_ms=T0 + DAY, transit_hours=1, transit_ms=1_800_000),
         IA, "invalid_argument")),
        peer=lambda p: lpb.ReconcileCrossingsRequest(peer=p[0], from_ms=T0, to_ms=T0 + DAY)),
    Method("StoreCrossings", "kz-duty", "kz-auditor", bad=(
        ("no records", _records(0), IA, "empty_request"),
        ("no mode", _records(1, mode=0), IA, "bad_mode"),
        ("record sent twice", _records(2, record_id="MX-SAME"), IA, "duplicate_record"))),
    Method("SendFollowUp", "kz-duty", "kz-desk", bad=(
        ("no fields", lpb.SendFollowUpRequest(peer="KGZ-BS", context=ctx(),
                                              reference="KGZ-SLTD-2026-0031"),
         IA, "no_fields_requested"),
        ("5-byte digest", lpb.SendFollowUpRequest(peer="KGZ-BS", context=ctx(),
                                                  reference="R", lookup_digest=b"12345",
                                                  fields=["loss_type"]), IA, "bad_digest"),
        ("no such hit", lpb.SendFollowUpRequest(peer="KGZ-BS", context=ctx(),
                                                reference="KGZ-NEVER", fields=["loss_type"]),
         "NOT_FOUND", "unknown_hit_reference")),
        peer=lambda p: lpb.SendFollowUpRequest(peer=p[0], context=ctx(), reference="R",
                                               lookup_digest=DIGEST, fields=["loss_type"])),
    Method("PollFollowUp", "kz-duty", "kz-auditor", bad=(
        ("never filed", lpb.PollFollowUpRequest(peer="KGZ-BS", followup_id="FU-NEVER"),
         "NOT_FOUND", "unknown_followup"),),
        peer=lambda p: lpb.PollFollowUpRequest(peer=p[0], followup_id="FU-NEVER")),
    Method("AwaitFollowUp", "kz-duty", "kz-desk", bad=(
        ("601 s", lpb.AwaitFollowUpRequest(peer="KGZ-BS", followup_id="FU-1", timeout_s=601),
         IA, "bad_deadline"),
        ("never filed", lpb.AwaitFollowUpRequest(peer="KGZ-BS", followup_id="FU-NEVER"),
         "NOT_FOUND", "unknown_followup")),
        peer=lambda p: lpb.AwaitFollowUpRequest(peer=p[0], followup_id="FU-NEVER")),
    Method("ListDeskFollowUps", "kz-desk", "kz-duty", bad=(
        ("unknown state", lpb.ListDeskFollowUpsRequest(state="bogus"), IA, "bad_state"),)),
    Method("ShowDeskFollowUp", "kz-desk", "kz-wl", bad=(
        ("no such follow-up", lpb.ShowDeskFollowUpRequest(followup_id="FU-NEVER"),
         "NOT_FOUND", "unknown_followup"),
        ("an id with a space", lpb.ShowDeskFollowUpRequest(followup_id="FU 1"),
         IA, "bad_identifier"))),
    Method("ApproveFollowUp", "kz-desk", "kz-auditor", bad=(
        ("no such follow-up", lpb.ApproveFollowUpRequest(followup_id="FU-NEVER"),
         "NOT_FOUND", "unknown_followup"),)),
    Method("DenyFollowUp", "kz-desk", "kz-duty", bad=(
        ("no such follow-up", lpb.DenyFollowUpRequest(followup_id="FU-NEVER", reason="no"),
         "NOT_FOUND", "unknown_followup"),)),
    # the alert lifecycle (issue 13; node/local/watchlist.py)
    Method("AddAlert", "kz-wl", "kz-duty", bad=(
        ("a field of 257 characters", lpb.AddAlertRequest(alert=_alert(contact="x" * 257),
                                                          source="matrix", reason="test"),
         IA, "bad_field"),
        ("a reason too long", lpb.AddAlertRequest(alert=_alert(), source="matrix",
                                                  reason="r" * 1001), IA, "bad_reason"),
        ("an unknown kind", lpb.AddAlertRequest(alert=_alert(kind="vehicle"),
                                                source="matrix", reason="test"), IA, "bad_kind"),
        ("an alert that exists", lpb.AddAlertRequest(alert=_alert(
            owner_ref="KAZ-SLTD-2026-000117"), source="matrix", reason="test"),
         "FAILED_PRECONDITION", "alert_exists"))),
    Method("UpdateAlert", "kz-wl", "kz-desk", bad=(
        ("a reference with a space", lpb.UpdateAlertRequest(
            owner_ref="KAZ SLTD", changes={"action": "arrest"}, reason="test"),
         IA, "bad_identifier"),
        ("17 changes", lpb.UpdateAlertRequest(
            owner_ref="KAZ-SLTD-2026-000117", changes={f"f{i}": "x" for i in range(17)},
            reason="test"), IA, "bad_field"),
        ("no such alert", lpb.UpdateAlertRequest(
            owner_ref="KAZ-NEVER", changes={"action": "arrest"}, reason="test"),
         "NOT_FOUND", "unknown_alert"))),
    Method("WithdrawAlert", "kz-wl", "kz-auditor", bad=(
        ("no such alert", lpb.WithdrawAlertRequest(owner_ref="KAZ-NEVER", reason="test"),
         "NOT_FOUND", "unknown_alert"),
        ("no reason", lpb.WithdrawAlertRequest(owner_ref="KAZ-SLTD-2026-000117"),
         IA, "bad_reason"))),
    Method("ShowAlert", "kz-wl", "kz-duty", bad=(
        ("no such alert", lpb.ShowAlertRequest(owner_ref="KAZ-NEVER"), "NOT_FOUND",
         "unknown_alert"),)),
    Method("ListAlerts", "kz-wl", "kz-desk", bad=(
        ("an unknown kind", lpb.ListAlertsRequest(kind="vehicle"), IA, "bad_filter"),
        ("limit 1001", lpb.ListAlertsRequest(limit=1001), IA, "bad_filter"))),
    Method("AlertStats", "kz-wl", "kz-auditor"),
    # retention holds (issue 13 §2; node/local/retention.py)
    Method("PlaceHold", "kz-wl", "kz-duty", bad=(
        ("a case reference with a space", lpb.PlaceHoldRequest(case_ref="CASE 1",
                                                               reason="DPA complaint"),
         IA, "bad_identifier"),
        ("no reason", lpb.PlaceHoldRequest(case_ref="CASE-M1"), IA, "bad_reason"),
        ("a reason of 257 characters", lpb.PlaceHoldRequest(case_ref="CASE-M1",
                                                            reason="r" * 257),
         IA, "bad_reason"))),
    Method("ReleaseHold", "kz-auditor", "kz-desk", bad=(
        ("a case not on hold", lpb.ReleaseHoldRequest(case_ref="CASE-NEVER", reason="done"),
         "FAILED_PRECONDITION", "not_held"),
        ("no reason", lpb.ReleaseHoldRequest(case_ref="CASE-NEVER"), IA, "bad_reason"))),
)
NAMES = [m.name for m in METHODS]
#: Methods whose domain code keeps its own audit record of a refused change.
DOMAIN_REFUSALS = {"StoreCrossings": ["crossings_record_refused"],
                   "ApproveFollowUp": ["followup_approve_refused"],
                   "DenyFollowUp": ["followup_deny_refused"],
                   **{name: ["watchlist_change_refused"]
                      for name in ("AddAlert", "UpdateAlert", "WithdrawAlert")},
                   "PlaceHold": ["retention_hold_refused"],
                   "ReleaseHold": ["retention_release_refused"]}
BY_NAME = {m.name: m for m in METHODS}


def test_the_table_covers_every_method_the_service_serves(env: Env) -> None:
    assert sorted(NAMES) == sorted(env.apis["KAZ-BS"]._methods)
    from node.local.auth import METHOD_ROLES

    assert sorted(NAMES) == sorted(METHOD_ROLES)


def _cases(e: Env, m: Method) -> list[tuple[str, grpc.Channel, bytes, str | None, str, str, str]]:
    """(case, channel, request bytes, bearer token, status, reason, audited caller)."""
    now = int(time.time())
    forged = ECKey.generate_key("P-256", parameters={"kid": "idp-1"}, private=True)
    gate = channel(e, "kz-gate-1")
    empty = b""
    out = [
        ("no identity", channel(e, None, node="KGZ-BS"), empty, None, "UNAUTHENTICATED",
         "no_identity", "anonymous"),
        ("no role", channel(e, "kz-nobody"), empty, None, "PERMISSION_DENIED",
         "role_required", "kz-nobody"),
        ("expired token", gate, empty, token(e.idp, "kz-idp-officer", now=now - 3600),
         "UNAUTHENTICATED", "token_expired", "kz-gate-1"),
        ("wrongly signed token", gate, empty, token(forged, "kz-idp-officer", now=now),
         "UNAUTHENTICATED", "token_bad_signature", "kz-gate-1"),
        ("token for another audience", gate, empty,
         token(e.idp, "kz-idp-officer", now=now, aud="another-node"), "UNAUTHENTICATED",
         "token_wrong_audience", "kz-gate-1"),
        ("not a JWT", gate, empty, "not-a-jwt", "UNAUTHENTICATED", "bad_token", "kz-gate-1"),
        ("malformed bytes", channel(e, m.role_holder), b"\xff\xff\xff", None,
         "INVALID_ARGUMENT", "malformed_request", m.role_holder),
        ("oversized", channel(e, m.role_holder, tcp=True), b"\x0a" * (MAX_LOCAL_MESSAGE_BYTES + 1),
         None, "RESOURCE_EXHAUSTED", "message_too_large", m.role_holder),
    ]
    if m.wrong_role != "kz-nobody":
        out.append(("another role", channel(e, m.wrong_role), empty, None,
                    "PERMISSION_DENIED", "role_required", m.wrong_role))
    for case, msg, status, reason in m.bad:
        out.append((case, channel(e, m.role_holder), msg.SerializeToString(), None, status,
                    reason, m.role_holder))
    if m.peer is not None:
        out.append(("a non-member peer", channel(e, m.role_holder),
                    m.peer(["XXX-BS"]).SerializeToString(), None, IA, "unknown_peer",
                    m.role_holder))
        out.append(("this node as peer", channel(e, m.role_holder),
                    m.peer(["KAZ-BS"]).SerializeToString(), None, IA, "not_a_peer",
                    m.role_holder))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_matrix(env: Env, name: str) -> None:
    m = BY_NAME[name]
    cases = _cases(env, m)
    before = snapshot(env)
    got = [(case, *invoke(ch, m.name, raw, bearer=bearer))
           for case, ch, raw, bearer, _s, _r, _c in cases]
    assert got == [(case, status, reason) for case, _ch, _raw, _b, status, reason, _c in cases]
    after = snapshot(env)
    assert after["UZB-BS"] == before["UZB-BS"]  # no peer heard of any of it
    kaz_new = audit(env, "KAZ-BS")[before["KAZ-BS"]:]
    kgz_new = audit(env, "KGZ-BS")[before["KGZ-BS"]:]
    assert [x["event"] for x in kgz_new] == ["local_call"]  # the anonymous call, no request
    assert not sent(kaz_new)
    # besides one local_call per case, only the domain's own record of a refusal
    assert sorted({x["event"] for x in kaz_new} - {"local_call"}) == DOMAIN_REFUSALS.get(
        m.name, [])
    for x in kaz_new:
        if x["event"] != "local_call":  # the domain's record names the officer too
            assert x["operator"] == m.role_holder, x
    entries = iter(x for x in kaz_new if x["event"] == "local_call")
    for case, _ch, _raw, _b, status, reason, caller in cases:
        entry = kgz_new[0] if case == "no identity" else next(entries)
        assert (entry["event"], entry["method"], entry["caller"], entry["outcome"],
                entry["status"], entry["reason"]) == (
            "local_call", m.name, caller, "refused", status, reason), case
        if case.endswith("token") or case == "not a JWT":
            assert (entry["auth"], entry["operator"]) == ("none", "")  # never the token's sub
        if case == "oversized":
            assert entry["via"] == "tcp"


LOOKUPS = ("LookupDocument", "LookupPerson", "LookupMrz", "LookupManifest", "LookupPaxlst")


@pytest.mark.parametrize("name", LOOKUPS)
def test_fan_out_with_one_peer_down_and_one_refusing(env: Env, name: str) -> None:
    m = BY_NAME[name]
    assert m.peer is not None
    msg = m.peer(["KGZ-BS", "UZB-BS", "TJK-BS"])
    msg.target.context.purpose = "criminal_investigation"  # KGZ agreed to it, UZB did not
    msg.target.context.case_ref = f"FAN-{name}"
    before = snapshot(env)
    fan_out: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel(env, "kz-duty").unary_unary(
        f"/bxnode.v1.LocalService/{name}")
    raw = fan_out(msg.SerializeToString(), timeout=30)
    result = getattr(lpb, f"{name}Response").FromString(raw).result
    outcomes = {p.peer: (p.outcome, p.status, p.reason) for p in result.peers}
    assert outcomes["TJK-BS"] == (lpb.PEER_OUTCOME_UNREACHABLE, "UNAVAILABLE",
                                  "peer_unavailable")
    assert outcomes["UZB-BS"] == (lpb.PEER_OUTCOME_REFUSED, "PERMISSION_DENIED",
                                  "purpose_not_agreed")
    assert outcomes["KGZ-BS"][0] == lpb.PEER_OUTCOME_ANSWERED
    kgz = next(p for p in result.peers if p.peer == "KGZ-BS")
    assert len(kgz.results) >= 1 and all(r.outcome for r in kgz.results)
    call = audit(env, "KAZ-BS")[-1]
    assert (call["event"], call["method"], call["operator"], call["outcome"]) == (
        "local_call", name, "kz-duty", "ok")
    assert {r["peer"]: r["outcome"] for r in call["results"]} == {
        "KGZ-BS": "answered", "UZB-BS": "refused", "TJK-BS": "unreachable"}
    for peer in ("KGZ-BS", "UZB-BS"):  # each peer logged the officer's request once
        new = [x for x in audit(env, peer)[before[peer]:] if x.get("case_ref") == f"FAN-{name}"]
        assert new and {x["operator"] for x in new} == {"kz-duty"}, peer


def test_single_peer_methods_report_a_peer_down_or_refusing_as_the_call_status(env: Env
                                                                               ) -> None:
    duty = channel(env, "kz-duty")
    confirm = BY_NAME["ConfirmCrossings"].peer
    send = BY_NAME["SendFollowUp"].peer
    assert confirm is not None and send is not None
    cases = [
        ("ConfirmCrossings", confirm(["TJK-BS"]), "UNAVAILABLE", "peer_unavailable"),
        ("ConfirmCrossings", lpb.ConfirmCrossingsRequest(
            peer="KGZ-BS", context=ctx(), questions=[question(bcp="KGZ-NOWHERE")]),
         "INVALID_ARGUMENT", "unknown_bcp"),
        ("SendFollowUp", send(["TJK-BS"]), "UNAVAILABLE", "peer_unavailable"),
        ("SendFollowUp", send(["KGZ-BS"]), "NOT_FOUND", "unknown_hit_reference"),
    ]
    for name, msg, status, reason in cases:
        before = snapshot(env)
        got, why, trailers = invoke_md(duty, name, msg.SerializeToString())
        assert (got, why) == (status, reason), name
        call = audit(env, "KAZ-BS")[-1]
        assert (call["method"], call["caller"], call["status"], call["reason"]) == (
            name, "kz-duty", status, reason)
        if status == "UNAVAILABLE":  # not a refusal: nobody refused it
            assert "bxnode-refused-by" not in trailers and "refused_by" not in call
        else:  # the peer refused it, signed, and logged that it did
            assert (trailers["bxnode-refused-by"], trailers["bxnode-refusal-verified"]) == (
                "KGZ-BS", "true")
            assert (call["refused_by"], call["refusal_verified"]) == ("KGZ-BS", True)
            assert len(audit(env, "KGZ-BS")) > before["KGZ-BS"]


def test_a_certificate_from_another_ca_is_refused_in_the_handshake(env: Env) -> None:
    """gRPC Python verifies client certificates inside the TLS handshake and offers no hook
    that sees a refused one, so no handler runs and nothing can be audited: the client
    gets UNAVAILABLE, no node logs anything, and the listener serves the next caller."""
    before = snapshot(env)
    for tcp in (True, False):
        ch = channel(env, "kz-duty", ca="other", tcp=tcp)
        for name in NAMES:
            assert invoke(ch, name, b"")[0] == "UNAVAILABLE", (name, tcp)
    assert snapshot(env) == before
    good = channel(env, "kz-duty", tcp=True)
    assert invoke(good, "WhoAmI", b"") == ("OK", "")
    who = audit(env, "KAZ-BS")[-1]
    assert (who["method"], who["caller"], who["via"], who["outcome"]) == (
        "WhoAmI", "kz-duty", "tcp", "ok")


def test_a_token_with_a_certificate_names_both(env: Env) -> None:
    ok = token(env.idp, "kz-idp-officer", now=int(time.time()))
    assert invoke(channel(env, "kz-gate-1"), "WhoAmI", b"", bearer=ok) == ("OK", "")
    who = audit(env, "KAZ-BS")[-1]
    assert (who["caller"], who["operator"], who["auth"], who["client_system"]) == (
        "kz-idp-officer", "kz-idp-officer", "token", "kz-gate-1")
    assert json.dumps(who).count(ok[:20]) == 0  # the token itself is never stored


def test_cli_with_a_token_file_alone_on_a_token_only_socket(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """KGZ's socket takes bearer tokens only: BXNODE_TOKEN_FILE is the whole identity."""
    from node.cli.main import main

    jwt_file = tmp_path / "kg-duty.jwt"
    jwt_file.write_text(token(env.idp, "kg-duty", now=int(time.time())))
    monkeypatch.setenv("BXNODE_TOKEN_FILE", str(jwt_file))
    capsys.readouterr()
    try:
        rc = main(["query", "doc", "--number", "N0481516", "--state", "KAZ", "--peer",
                   "KAZ-BS", "--purpose", "border_check", "--case-ref", "MATRIX-TOKEN-1",
                   "--json", "--node-dir", str(env.fed.dirs["KGZ-BS"])])
    finally:  # main() bound structlog to capsys's stderr; follow the real one again
        structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))
    out = capsys.readouterr().out
    assert rc == 0, out
    assert json.loads(out)["results"][0]["reference"] == "KAZ-SLTD-2026-000117"
    call = audit(env, "KGZ-BS")[-1]
    assert (call["method"], call["operator"], call["auth"], call["via"]) == (
        "LookupDocument", "kg-duty", "token", "unix")
    asked = [x for x in audit(env, "KAZ-BS") if x.get("case_ref") == "MATRIX-TOKEN-1"]
    assert asked and {x["operator"] for x in asked} == {"kg-duty"}
