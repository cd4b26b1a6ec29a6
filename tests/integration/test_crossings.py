"""Crossing records and confirmations between real nodes over mTLS (issue 3, part 1)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from node.app import open_store
from node.cli.main import main as cli
from node.client.peer import PeerClient, QueryContext
from node.config import load_config
from node.core.errors import RemoteError
from node.core.model import DocumentQuery, PartialDate, PersonQuery, Sex
from node.crossings.client import CONFIRM_METHOD, confirm_crossings
from node.crossings.importer import parse_utc
from node.crossings.model import CrossingQuestion, Direction
from node.crossings.store import CrossingStore
from node.store.sqlcipher import Store
from node.wire import convert
from node.wire import crossings as wire
from node.wire.crossings import cpb
from node.wire.trailers import trailers
from tests.federation import DEMO, Federation, make_federation

pytestmark = pytest.mark.integration

CTX = QueryContext(operator="officer-7", purpose="border_check",
                   legal_basis="Agreement on border cooperation, art. 7", case_ref="CASE-X1")
CROSSINGS = {"KAZ-BS": "kaz-crossings.csv", "KGZ-BS": "kgz-crossings.csv",
             "UZB-BS": "uzb-crossings.jsonl"}


def setup_crossings(fed: Federation) -> None:
    for node, name in CROSSINGS.items():
        d = str(fed.dirs[node])
        assert cli(["crossings", "bcps", str(DEMO / "bcps.json"), "--node-dir", d]) == 0
        assert cli(["crossings", "import", str(DEMO / name), "--node-dir", d]) == 0


@pytest.fixture(scope="module")
def xfed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    f = make_federation(tmp_path_factory.mktemp("xfed"))
    setup_crossings(f)
    for n in f.dirs:
        f.start(n)
    yield f
    f.stop_all()


def t(text: str) -> int:
    return parse_utc(text)


def q(number: str, state: str, *, bcp: str = "", section: str = "",
      direction: Direction = Direction.EXIT, start: str = "2026-11-20T00:00:00Z",
      end: str = "2026-11-20T23:59:59Z") -> CrossingQuestion:
    return CrossingQuestion(subject=DocumentQuery(number=number, issuing_state=state),
                            direction=direction, bcp=bcp, section=section,
                            window_start_ms=t(start), window_end_ms=t(end))


def ask(fed: Federation, asker: str, peer: str, questions: list[CrossingQuestion],
        ctx: QueryContext = CTX) -> Any:
    client = fed.client(asker)
    try:
        return confirm_crossings(client, peer, ctx, questions)
    finally:
        client.close()


def refused(fed: Federation, asker: str, peer: str, questions: list[CrossingQuestion],
            ctx: QueryContext = CTX) -> tuple[str, str, bool]:
    with pytest.raises(RemoteError) as err:
        ask(fed, asker, peer, questions, ctx)
    return err.value.status, err.value.reason, err.value.refusal_verified


def raw_questions(fed: Federation, asker: str, peer: str,
                  questions: list[cpb.CrossingQuestion]) -> tuple[str, str]:
    """Sign and send questions built directly as protobuf (bypassing our own validation)."""
    client = fed.client(asker)
    try:
        msg = cpb.CrossingRequestPayload(header=convert.header_to_pb(client.header(CTX)))
        msg.questions.extend(questions)
        env = client.sign(wire.CROSSING_REQUEST_TYPE, msg.SerializeToString())
        with pytest.raises(RemoteError) as err:
            client.call(peer, CONFIRM_METHOD, env, request_cls=cpb.ConfirmCrossingRequest,
                        response_cls=cpb.ConfirmCrossingResponse,
                        response_type=wire.CROSSING_RESPONSE_TYPE)
        return err.value.status, err.value.reason
    finally:
        client.close()


def pb_question(**over: Any) -> cpb.CrossingQuestion:
    m = cpb.CrossingQuestion(bcp="KAZ-KORDAI", direction=cpb.CROSSING_DIRECTION_EXIT,
                             window_start_ms=t("2026-11-20T00:00:00Z"),
                             window_end_ms=t("2026-11-20T12:00:00Z"))
    m.document.CopyFrom(convert.pb.DocumentQuery(number="AC1111111", issuing_state="KGZ",
                                                 document_type="P"))
    for k, v in over.items():
        setattr(m, k, v)
    return m


def last(fed: Federation, node: str, event: str) -> dict[str, Any]:
    return [e for e in fed.audit(node) if e.get("event") == event][-1]


def receipts(fed: Federation, node: str) -> int:
    store = open_store(load_config(fed.dirs[node]))
    try:
        assert isinstance(store, Store), store  # the federation's nodes are SQLCipher
        return len(store.receipts())
    finally:
        store.close()


# --- answers --------------------------------------------------------------------------------


def test_confirmed_rounded_signed_bound_and_kept_on_both_sides(xfed: Federation) -> None:
    before = receipts(xfed, "KAZ-BS"), receipts(xfed, "KGZ-BS")
    ans = ask(xfed, "KGZ-BS", "KAZ-BS", [q("AC1111111", "KGZ", bcp="KAZ-KORDAI")])
    a = ans.answers[0]
    assert (a.confirmed, a.bcp, a.resolution_minutes) == (True, "KAZ-KORDAI", 60)
    assert a.crossed_at_ms == t("2026-11-20T08:00:00Z")  # 08:15 rounded down to the hour
    assert ans.responder == "KAZ-BS"
    assert (receipts(xfed, "KAZ-BS"), receipts(xfed, "KGZ-BS")) == (before[0] + 1,
                                                                     before[1] + 1)
    e = last(xfed, "KAZ-BS", "crossing_confirm")
    assert (e["outcome"], e["requester"], e["confirmed"], e["not_found"], e["bcps"]) == (
        "answered", "KGZ-BS", 1, 0, ["KAZ-KORDAI"])
    assert e["seq"] == ans.audit_seq
    assert "AC1111111" not in json.dumps(xfed.audit("KAZ-BS"))  # no personal data in audit
    s = last(xfed, "KGZ-BS", "crossing_sent")
    assert (s["peer"], s["confirmed"], s["peer_audit_seq"]) == ("KAZ-BS", 1, ans.audit_seq)


def test_not_found_wrong_direction_and_refused_entry(xfed: Federation) -> None:
    ans = ask(xfed, "KGZ-BS", "KAZ-BS", [
        q("AC1111111", "KGZ", bcp="KAZ-KORDAI", direction=Direction.ENTRY),
        q("AC9999999", "KGZ", bcp="KAZ-KORDAI"),
        q("AC6666666", "KGZ", bcp="KAZ-KORDAI", direction=Direction.ENTRY),  # refused entry
        q("AC1111111", "KGZ", bcp="KAZ-KORDAI", start="2026-11-20T08:16:00Z"),  # after it
    ])
    assert [a.confirmed for a in ans.answers] == [False] * 4
    assert all(a.bcp == "" and a.crossed_at_ms == 0 for a in ans.answers)


def test_batch_answered_in_order_by_section_and_person(xfed: Federation) -> None:
    person = PersonQuery(family_name="АСАНОВ", given_names="Бакыт",
                         date_of_birth=PartialDate(1979, 11, 2), nationality="KGZ",
                         sex=Sex.MALE)
    ans = ask(xfed, "KGZ-BS", "KAZ-BS", [
        q("N3333333", "KAZ", section="KAZ-KGZ"),
        q("AC9999999", "KGZ", section="KAZ-KGZ"),
        CrossingQuestion(subject=person, direction=Direction.EXIT, bcp="KAZ-KORDAI",
                         window_start_ms=t("2026-11-20T00:00:00Z"),
                         window_end_ms=t("2026-11-21T00:00:00Z")),
        q("AC4444444", "KGZ", section="KAZ-KGZ", direction=Direction.ENTRY),
    ])
    assert [(a.index, a.confirmed, a.bcp) for a in ans.answers] == [
        (0, True, "KAZ-KARASU"), (1, False, ""), (2, True, "KAZ-KORDAI"),
        (3, True, "KAZ-KORDAI")]


# --- bad input and policy -------------------------------------------------------------------


@pytest.mark.parametrize(("bcp", "section", "reason"), [
    ("KAZ-NOWHERE", "", "unknown_bcp"),
    ("KGZ-AKZHOL", "", "unknown_bcp"),          # a neighbour's BCP is not ours
    ("", "KAZ-TJK", "unknown_section"),
])
def test_unknown_locations(xfed: Federation, bcp: str, section: str, reason: str) -> None:
    n = len(xfed.audit("KAZ-BS"))
    assert refused(xfed, "KGZ-BS", "KAZ-BS", [q("AC1111111", "KGZ", bcp=bcp,
                                                 section=section)]) == (
        "INVALID_ARGUMENT", reason, True)
    entries = xfed.audit("KAZ-BS")
    assert len(entries) == n + 1
    assert (entries[-1]["event"], entries[-1]["outcome"], entries[-1]["reason"]) == (
        "crossing_confirm", "rejected", reason)


def test_bcp_not_facing_the_requester(xfed: Federation) -> None:
    # Kordai faces Kyrgyzstan, not Uzbekistan
    assert refused(xfed, "UZB-BS", "KAZ-BS", [q("AC1111111", "KGZ", bcp="KAZ-KORDAI")]) == (
        "PERMISSION_DENIED", "bcp_not_facing_requester", True)
    e = last(xfed, "KAZ-BS", "crossing_confirm")
    assert (e["outcome"], e["decision"], e["reasons"]) == (
        "denied", "deny", ["bcp_not_facing_requester"])
    # ... and the section facing Kyrgyzstan is not Uzbekistan's either
    assert refused(xfed, "UZB-BS", "KAZ-BS", [q("AC1111111", "KGZ", section="KAZ-KGZ")])[
        :2] == ("PERMISSION_DENIED", "bcp_not_facing_requester")
    # while Zhibek Zholy does face Uzbekistan
    ans = ask(xfed, "UZB-BS", "KAZ-BS", [q("N7777777", "KAZ", bcp="KAZ-ZHIBEKZHOLY")])
    assert ans.answers[0].confirmed


def test_window_end_before_start(xfed: Federation) -> None:
    assert raw_questions(xfed, "KGZ-BS", "KAZ-BS", [pb_question(
        window_start_ms=t("2026-11-20T12:00:00Z"),
        window_end_ms=t("2026-11-20T00:00:00Z"))]) == ("INVALID_ARGUMENT", "bad_window")
    assert last(xfed, "KAZ-BS", "crossing_confirm")["reason"] == "bad_window"


def test_window_longer_than_agreement_and_than_protocol(xfed: Federation) -> None:
    assert refused(xfed, "KGZ-BS", "KAZ-BS", [q(
        "AC1111111", "KGZ", bcp="KAZ-KORDAI", start="2026-11-16T00:00:00Z",
        end="2026-11-20T00:00:01Z")])[:2] == ("PERMISSION_DENIED", "window_exceeds_agreement")
    assert raw_questions(xfed, "KGZ-BS", "KAZ-BS", [pb_question(
        window_start_ms=t("2026-09-01T00:00:00Z"),
        window_end_ms=t("2026-11-20T00:00:00Z"))]) == ("INVALID_ARGUMENT", "window_too_long")


def test_batch_bounds(xfed: Federation) -> None:
    one = q("AC1111111", "KGZ", bcp="KAZ-KORDAI")
    assert refused(xfed, "KGZ-BS", "KAZ-BS", [one] * 201)[:2] == (
        "PERMISSION_DENIED", "batch_exceeds_agreement")
    assert raw_questions(xfed, "KGZ-BS", "KAZ-BS", [pb_question()] * 1001) == (
        "INVALID_ARGUMENT", "batch_too_large")
    assert len(ask(xfed, "KGZ-BS", "KAZ-BS", [one] * 200).answers) == 200


def test_purpose_and_legal_basis(xfed: Federation) -> None:
    one = [q("AC1111111", "KGZ", bcp="KAZ-KORDAI")]
    ctx = QueryContext(operator="o-1", purpose="visa_application", legal_basis="x",
                       case_ref="C-1")
    assert refused(xfed, "KGZ-BS", "KAZ-BS", one, ctx)[:2] == (
        "PERMISSION_DENIED", "purpose_not_agreed")
    ctx = QueryContext(operator="o-1", purpose="border_check", legal_basis=" ", case_ref="C-1")
    assert refused(xfed, "KGZ-BS", "KAZ-BS", one, ctx)[:2] == (
        "PERMISSION_DENIED", "legal_basis_required")


def test_no_crossing_agreement(tmp_path: Path) -> None:
    from tests.federation import sample_policy

    policy = sample_policy()
    policy["bxnode"]["crossing_agreements"] = [
        a for a in policy["bxnode"]["crossing_agreements"]
        if (a["responder"], a["requester"]) != ("KAZ-BS", "KGZ-BS")]
    fed = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"), policy_data=policy)
    setup_crossings_subset(fed)
    fed.start("KAZ-BS")
    try:
        assert refused(fed, "KGZ-BS", "KAZ-BS", [q("AC1111111", "KGZ", bcp="KAZ-KORDAI")])[
            :2] == ("PERMISSION_DENIED", "no_agreement")
    finally:
        fed.stop_all()


def setup_crossings_subset(fed: Federation) -> None:
    for node in fed.dirs:
        d = str(fed.dirs[node])
        assert cli(["crossings", "bcps", str(DEMO / "bcps.json"), "--node-dir", d]) == 0
        assert cli(["crossings", "import", str(DEMO / CROSSINGS[node]), "--node-dir", d]) == 0


# --- the local-only method ------------------------------------------------------------------


def _record(**over: Any) -> cpb.CrossingRecord:
    r = cpb.CrossingRecord(record_id="KZ-LOCAL-1", event="exit", bcp="KAZ-KORDAI",
                           crossed_at_ms=t("2026-11-21T06:00:00Z"), mode=cpb.TRAVEL_MODE_ROAD)
    r.document.CopyFrom(convert.pb.DocumentQuery(number="N1010101", issuing_state="KAZ",
                                                 document_type="P"))
    for k, v in over.items():
        setattr(r, k, v)
    return r


def _local_call(fed: Federation, node: str, records: list[cpb.CrossingRecord]) -> Any:
    sock = fed.dirs[node] / "local.sock"
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        call = ch.unary_unary("/bxnode.v1.LocalCrossingService/RecordCrossings",
                              request_serializer=cpb.RecordCrossingsRequest.SerializeToString,
                              response_deserializer=cpb.RecordCrossingsResponse.FromString)
        return call(cpb.RecordCrossingsRequest(records=records, operator="gate-7",
                                               source="kordai-lane-3"), timeout=10)


def _count(fed: Federation, node: str) -> int:
    store = open_store(load_config(fed.dirs[node]))
    try:
        return CrossingStore(store).count()
    finally:
        store.close()


def test_peers_cannot_reach_the_local_method(xfed: Federation) -> None:
    d = xfed.dirs["KGZ-BS"]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{xfed.ports['KAZ-BS']}", creds) as ch:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(
            "/bxnode.v1.LocalCrossingService/RecordCrossings")
        with pytest.raises(grpc.RpcError) as err:
            call(cpb.RecordCrossingsRequest(records=[_record()]).SerializeToString(), timeout=10)
    assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
    sock = xfed.dirs["KAZ-BS"] / "local.sock"
    assert sock.is_socket() and (sock.stat().st_mode & 0o777) == 0o600


def test_local_method_records_all_or_nothing(xfed: Federation) -> None:
    n = _count(xfed, "KAZ-BS")
    bad = [_record(record_id="KZ-LOCAL-2"), _record(record_id="KZ-LOCAL-3", bcp="KGZ-AKZHOL")]
    with pytest.raises(grpc.RpcError) as err:
        _local_call(xfed, "KAZ-BS", bad)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(err.value)["bxnode-reason"] == "unknown_bcp"
    assert "record 1" in (err.value.details() or "")
    assert _count(xfed, "KAZ-BS") == n
    e = last(xfed, "KAZ-BS", "crossings_record_refused")
    assert (e["reason"], e["source"], e["records"]) == ("unknown_bcp", "kordai-lane-3", 2)

    reply = _local_call(xfed, "KAZ-BS", [_record(), _record(record_id="KZ-LOCAL-4")])
    assert (reply.recorded, reply.duplicates) == (2, 0)
    assert _count(xfed, "KAZ-BS") == n + 2
    assert last(xfed, "KAZ-BS", "crossings_recorded")["records"] == 2
    reply = _local_call(xfed, "KAZ-BS", [_record()])  # a resend is idempotent
    assert (reply.recorded, reply.duplicates) == (1, 1)
    with pytest.raises(grpc.RpcError) as err:  # the same id with other content is refused
        _local_call(xfed, "KAZ-BS", [_record(event="entry")])
    assert trailers(err.value)["bxnode-reason"] == "record_conflict"
    ans = ask(xfed, "KGZ-BS", "KAZ-BS", [q("N1010101", "KAZ", bcp="KAZ-KORDAI",
                                           start="2026-11-21T00:00:00Z",
                                           end="2026-11-21T23:00:00Z")])
    assert ans.answers[0].confirmed


def _local_raw(fed: Federation, node: str, raw: bytes) -> tuple[str, str, str]:
    """``raw`` sent to the LocalCrossingService as it is: (status, reason, details)."""
    with grpc.insecure_channel(f"unix:{fed.dirs[node] / 'local.sock'}") as ch:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(
            "/bxnode.v1.LocalCrossingService/RecordCrossings")
        try:
            call(raw, timeout=10)
        except grpc.RpcError as err:
            return (err.code().name, str(trailers(err).get("bxnode-reason", "")),
                    err.details() or "")
    return "OK", "", ""


def test_local_bytes_that_do_not_parse_are_refused_and_audited(xfed: Federation) -> None:
    n, entries = _count(xfed, "KAZ-BS"), len(xfed.audit("KAZ-BS"))
    assert _local_raw(xfed, "KAZ-BS", b"\xff\xff\xff")[:2] == ("INVALID_ARGUMENT",
                                                              "malformed_request")
    assert _count(xfed, "KAZ-BS") == n
    [e] = xfed.audit("KAZ-BS")[entries:]
    assert (e["event"], e["status"], e["reason"], e["records"]) == (
        "crossings_record_refused", "INVALID_ARGUMENT", "malformed_request", 0)


def test_an_unexpected_local_error_is_internal_audited_and_stores_nothing(
        xfed: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("driver fault: document AB1234567")

    n, entries = _count(xfed, "KAZ-BS"), len(xfed.audit("KAZ-BS"))
    monkeypatch.setattr(CrossingStore, "insert", broken)
    raw = cpb.RecordCrossingsRequest(records=[_record(record_id="KZ-LOCAL-9")],
                                     source="kordai-lane-3").SerializeToString()
    status, reason, details = _local_raw(xfed, "KAZ-BS", raw)
    assert (status, reason) == ("INTERNAL", "internal_error")
    assert "driver" not in details and "AB1234567" not in details  # no detail to the caller
    monkeypatch.undo()
    assert _count(xfed, "KAZ-BS") == n
    [e] = xfed.audit("KAZ-BS")[entries:]
    assert (e["event"], e["status"], e["reason"], e["records"], e["source"]) == (
        "crossings_record_refused", "INTERNAL", "internal_error", 1, "kordai-lane-3")


def test_a_local_call_whose_refusal_cannot_be_audited_is_unavailable(
        xfed: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store fails and so does the refusal's audit entry: UNAVAILABLE/audit_unavailable
    with no detail, nothing stored, nothing appended (retry)."""
    from node.audit.log import MerkleAuditLog

    append = MerkleAuditLog.append

    def broken_insert(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("driver fault: document AB1234567")

    def no_refusal_entry(self: Any, event: dict[str, Any], **kw: Any) -> int:
        if event.get("event") == "crossings_record_refused":
            raise RuntimeError("disk gone")
        return append(self, event, **kw)

    n, entries = _count(xfed, "KAZ-BS"), len(xfed.audit("KAZ-BS"))
    monkeypatch.setattr(CrossingStore, "insert", broken_insert)
    monkeypatch.setattr(MerkleAuditLog, "append", no_refusal_entry)
    raw = cpb.RecordCrossingsRequest(records=[_record(record_id="KZ-LOCAL-10")],
                                     source="kordai-lane-3").SerializeToString()
    status, reason, details = _local_raw(xfed, "KAZ-BS", raw)
    monkeypatch.undo()
    assert (status, reason) == ("UNAVAILABLE", "audit_unavailable")
    assert "AB1234567" not in details and "disk" not in details
    assert _count(xfed, "KAZ-BS") == n
    assert len(xfed.audit("KAZ-BS")) == entries


# --- import and reconciliation through the CLI ----------------------------------------------


def test_import_is_all_or_nothing_with_line_numbers(xfed: Federation, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    n = _count(xfed, "KGZ-BS")
    f = tmp_path / "bad.csv"
    f.write_text("record_id,event,bcp,time,mode,doc_number,doc_state\n"
                 "A-1,entry,KGZ-AKZHOL,2026-11-22T10:00:00Z,road,AC1212121,KGZ\n"
                 "A-2,entry,KAZ-KORDAI,2026-11-22T10:00:00Z,road,AC1212122,KGZ\n"
                 "A-3,sideways,KGZ-AKZHOL,2026-11-22T10:00:00Z,road,AC1212123,KGZ\n"
                 "A-4,entry,KGZ-AKZHOL,2026-11-22 10:00,road,AC1212124,KGZ\n"
                 "A-1,entry,KGZ-AKZHOL,2026-11-22T10:00:00Z,road,AC1212121,KGZ\n")
    capsys.readouterr()
    assert cli(["crossings", "import", str(f), "--node-dir", str(xfed.dirs["KGZ-BS"])]) == 1
    err = capsys.readouterr().err
    assert "line 3: bcp 'KAZ-KORDAI' is not one of this node's BCPs" in err
    assert "line 4: event must be" in err and "line 5:" in err and "line 6: record_id A-1" in err
    assert err.strip().endswith("4 bad row(s) in bad.csv; nothing was imported")
    assert _count(xfed, "KGZ-BS") == n


def test_reconciliation_report_finds_the_mismatches(xfed: Federation, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "recon.csv"
    capsys.readouterr()
    assert cli(["crossings", "reconcile", "--peer", "KGZ", "--from", "2026-11-20T00:00:00Z",
                "--to", "2026-11-20T23:59:59Z", "--batch-size", "2", "--out", str(out),
                "--node-dir", str(xfed.dirs["KAZ-BS"]), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["peer"], summary["checked"], summary["batches"], summary["matched"],
            summary["exit_without_entry"], summary["entry_without_exit"]) == (
        "KGZ-BS", 5, 3, 3, 1, 1)
    rows = {r["record_id"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows["KZ-KRS-20261120-0003"]["outcome"] == "exit_without_entry"
    assert rows["KZ-KRS-20261120-0005"]["outcome"] == "entry_without_exit"
    assert (rows["KZ-KRD-20261120-0001"]["outcome"], rows["KZ-KRD-20261120-0001"]["peer_bcp"],
            rows["KZ-KRD-20261120-0001"]["peer_crossed_at"]) == (
        "matched", "KGZ-AKZHOL", "2026-11-20T08:00:00Z")
    assert "KZ-KRD-20261120-0006" not in rows  # a refused entry is not a crossing
    e = last(xfed, "KAZ-BS", "crossings_reconciled")
    assert (e["matched"], e["exit_without_entry"], e["entry_without_exit"]) == (3, 1, 1)
    assert len([x for x in xfed.audit("KGZ-BS") if x.get("event") == "crossing_confirm"
                and x.get("requester") == "KAZ-BS"]) >= 3
    js = tmp_path / "recon.json"
    assert cli(["crossings", "reconcile", "--peer", "KGZ-BS", "--from", "2026-11-20T00:00:00Z",
                "--to", "2026-11-20T23:59:59Z", "--out", str(js),
                "--node-dir", str(xfed.dirs["KAZ-BS"])]) == 0
    doc = json.loads(js.read_text())
    assert doc["summary"]["exit_without_entry"] == 1 and len(doc["lines"]) == 5


def test_cli_confirm_and_its_errors(xfed: Federation,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    d = str(xfed.dirs["KGZ-BS"])
    capsys.readouterr()
    assert cli(["crossings", "confirm", "--peer", "KAZ-BS", "--doc-number", "ac1111111",
                "--doc-state", "KGZ", "--bcp", "KAZ-KORDAI", "--direction", "exit",
                "--from", "2026-11-20T00:00:00Z", "--to", "2026-11-20T12:00:00Z",
                "--case-ref", "C-9", "--node-dir", d, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["outcome"], out["bcp"], out["crossed_at"]) == (
        "confirmed", "KAZ-KORDAI", "2026-11-20T08:00:00Z")
    assert cli(["crossings", "confirm", "--peer", "KAZ-BS", "--doc-number", "AC1111111",
                "--doc-state", "KGZ", "--bcp", "KAZ-KORDAI", "--direction", "exit",
                "--from", "2026-11-20T12:00:00Z", "--to", "2026-11-20T00:00:00Z",
                "--case-ref", "C-9", "--node-dir", d]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "bxnode: the window ends before it starts (bad_window)"
    assert cli(["crossings", "confirm", "--peer", "KAZ-BS", "--doc-number", "AC1111111",
                "--doc-state", "KGZ", "--bcp", "KAZ-NOWHERE", "--direction", "exit",
                "--from", "2026-11-20T00:00:00Z", "--to", "2026-11-20T12:00:00Z",
                "--case-ref", "C-9", "--node-dir", d]) == 3
    assert "invalid_argument/unknown_bcp" in capsys.readouterr().err


def test_client_refuses_an_answer_not_bound_to_its_request(xfed: Federation) -> None:
    """A verified ConfirmCrossing answer is bound to exactly the request that was sent."""
    client: PeerClient = xfed.client("KGZ-BS")
    try:
        ans = confirm_crossings(client, "KAZ-BS", CTX, [q("AC1111111", "KGZ",
                                                          bcp="KAZ-KORDAI")])
        assert len(ans.request_digest) == 32
    finally:
        client.close()
