"""Issue 13, done when: on running nodes over mTLS, an alert withdrawn mid-traffic never
hits again and a follow-up on its earlier hit is alert_withdrawn; a sync applies exactly its
difference and refuses a truncated file; after the retention sweep no erased identifier is
in the database's decrypted pages or WAL, ``audit verify`` passes and old receipts still
prove their exchange by digest (a follow-up on one is receipt_expired); subject access
finds a person asked about in Cyrillic and in Latin, and answers on the answering and the
asking side (table, JSON, HTML) with the follow-up that released data, by field name, the
values only when the auditor asks."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.app import now_ms, open_store
from node.audit.log import MerkleAuditLog
from node.audit.subject import _when
from node.cli.main import main as cli
from node.client.peer import QueryContext
from node.config import load_config
from node.core import envelope as env_mod
from node.core.errors import RemoteError
from node.core.model import DocumentQuery, LookupAnswer, PartialDate, PersonQuery, QueryKind, Sex
from node.followup.client import file_followup, get_followup
from node.followup.store import FollowUpStore
from node.retention.serve import sweep_once
from node.retention.settings import DAY_MS
from node.retention.sweep import RetentionSweep
from node.store.keys import load_db_key
from node.store.retention import RetentionTables
from node.wire import convert
from node.wire.convert import pb
from tests.federation import DEV, Federation, make_federation
from tests.sqlcipher_pages import decrypted_pages

pytestmark = pytest.mark.integration

CTX = QueryContext(operator="officer-7", purpose="border_check",
                   legal_basis="Agreement on border cooperation, art. 7", case_ref="CASE-L1")
STOLEN = DocumentQuery(number="N0481516", issuing_state="KAZ")  # KAZ-SLTD-2026-000117
CYRILLIC = PersonQuery(family_name="Юсупов", given_names="Тимур",
                       date_of_birth=PartialDate(1984, 3, 17), nationality="UZB", sex=Sex.MALE)
LATIN = PersonQuery(family_name="YUSUPOV", given_names="TIMUR",
                    date_of_birth=PartialDate(1984, 3, 17), nationality="UZB", sex=Sex.MALE)


def _with_auditor(members: dict[str, Any]) -> None:
    members["members"].append(json.loads((DEV / "auditor" / "member.json").read_text()))


@pytest.fixture(scope="module")
def lfed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    f = make_federation(tmp_path_factory.mktemp("lfed"), ("KAZ-BS", "KGZ-BS"),
                        members_edit=_with_auditor)
    for n in f.dirs:
        f.start(n)
    yield f
    f.stop_all()


def ask(fed: Federation, items: list[Any], ctx: QueryContext = CTX) -> LookupAnswer:
    client = fed.client("KGZ-BS")
    try:
        kind = QueryKind.BATCH if len(items) > 1 else items[0].kind
        return client.lookup("KAZ-BS", ctx, kind, items)
    finally:
        client.close()


def file(fed: Federation, hit: LookupAnswer) -> Any:
    client = fed.client("KGZ-BS")
    try:
        return file_followup(client, FollowUpStore(client._store), "KAZ-BS", CTX,  # type: ignore[arg-type]
                             hit_request_digest=hit.request_digest, hit_item_index=0,
                             hit_reference=hit.results[0].reference, fields=["issuing_state"])
    finally:
        client.close()


def kaz(fed: Federation, *argv: str) -> int:
    return cli([*argv, "--node-dir", str(fed.dirs["KAZ-BS"])])


def test_withdrawn_mid_traffic_never_hits_again_and_its_followup_is_refused(
        lfed: Federation) -> None:
    before = ask(lfed, [STOLEN, CYRILLIC])
    assert [r.outcome.value for r in before.results] == ["hit", "hit"]
    person_ref = before.results[1].reference
    assert kaz(lfed, "watchlist", "withdraw", "KAZ-SLTD-2026-000117", "--reason",
               "passport recovered", "--operator", "op-1") == 0
    assert kaz(lfed, "watchlist", "withdraw", person_ref, "--reason", "arrested",
               "--operator", "op-1") == 0
    for _ in range(3):  # the running node answers from the store and its followed index
        after = ask(lfed, [STOLEN, CYRILLIC, LATIN])
        assert [r.outcome.value for r in after.results] == ["no_hit"] * 3
    # the earlier answer is still the peer's signed word: it verifies as it did
    store = open_store(load_config(lfed.dirs["KGZ-BS"]))
    try:
        receipts = [r for r in store.receipt_store.all(direction="sent")  # type: ignore[attr-defined]
                    if r.request_digest == before.request_digest]
    finally:
        store.close()
    env = convert.envelope_from_pb(pb.SignedEnvelope.FromString(receipts[0].response_env))
    kaz_member = lfed.client("KGZ-BS", store=False)
    try:
        key = kaz_member._directory.member("KAZ-BS").keys[0].public_key
    finally:
        kaz_member.close()
    env_mod.verify(env, key, expected_type=env_mod.RESPONSE_TYPE)  # raises if it does not
    with pytest.raises(RemoteError) as err:
        file(lfed, before)
    assert (err.value.status, err.value.reason) == ("FAILED_PRECONDITION", "alert_withdrawn")


def test_sync_on_a_running_node_applies_its_difference_and_refuses_a_truncated_file(
        lfed: Federation, tmp_path: Path) -> None:
    header = ("kind,owner_ref,action,expires,contact,number,issuing_state,doc_type,loss_type,"
              "family_name,given_names,patronymic,dob,nationality,sex")

    def row(ref: str, number: str) -> str:
        return f"document,{ref},seize_document,2036-01-01,,{number},KAZ,P,stolen,,,,,,"

    full = tmp_path / "mvd.csv"
    full.write_text("\n".join([header] + [row(f"MVD-{i}", f"S00{i}") for i in range(1, 5)])
                    + "\n", encoding="utf-8")
    assert kaz(lfed, "watchlist", "sync", str(full), "--source", "MVD",
               "--operator", "op-1") == 0
    hits = ask(lfed, [DocumentQuery(number=f"S00{i}", issuing_state="KAZ") for i in range(1, 5)])
    assert [r.outcome.value for r in hits.results] == ["hit"] * 4
    cut = tmp_path / "cut.csv"
    cut.write_text("\n".join([header, row("MVD-1", "S001")]) + "\n" + row("MVD-2", "S002")[:9],
                   encoding="utf-8")
    assert kaz(lfed, "watchlist", "sync", str(cut), "--source", "MVD",
               "--operator", "op-1") == 1
    short = tmp_path / "short.csv"
    short.write_text("\n".join([header, row("MVD-1", "S001")]) + "\n", encoding="utf-8")
    assert kaz(lfed, "watchlist", "sync", str(short), "--source", "MVD", "--max-withdraw", "2",
               "--operator", "op-1") == 1
    again = ask(lfed, [DocumentQuery(number=f"S00{i}", issuing_state="KAZ") for i in range(1, 5)])
    assert [r.outcome.value for r in again.results] == ["hit"] * 4
    new = tmp_path / "v2.csv"
    new.write_text("\n".join([header, row("MVD-1", "S001"), row("MVD-2", "S002"),
                              row("MVD-5", "S005")]) + "\n", encoding="utf-8")
    assert kaz(lfed, "watchlist", "sync", str(new), "--source", "MVD",
               "--operator", "op-1") == 0
    final = ask(lfed, [DocumentQuery(number=f"S00{i}", issuing_state="KAZ") for i in range(1, 6)])
    assert [r.outcome.value for r in final.results] == ["hit", "hit", "no_hit", "no_hit", "hit"]


def test_subject_access_finds_cyrillic_and_latin_questions(lfed: Federation,
                                                            tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    ctx2 = QueryContext(operator="officer-9", purpose="migration_control",
                        legal_basis="Agreement on border cooperation, art. 7",
                        case_ref="CASE-SA2")
    ask(lfed, [LATIN], ctx2)
    key = tmp_path / "auditor.key"
    shutil.copyfile(DEV / "auditor" / "signing.key", key)
    key.chmod(0o600)
    capsys.readouterr()
    assert kaz(lfed, "subject-access", "--family", "Юсупов", "--given", "Тимур",
               "--dob", "1984-03-17", "--nationality", "UZB", "--json",
               "--auditor-key", str(key), "--html", str(tmp_path / "letter.html")) == 0
    out = json.loads(capsys.readouterr().out)
    cases = {(x["peer"], x["case_ref"], x["direction"]) for x in out["exchanges"]}
    assert ("KGZ-BS", "CASE-L1", "received") in cases    # asked in Cyrillic
    assert ("KGZ-BS", "CASE-SA2", "received") in cases   # asked in Latin
    assert "CASE-SA2" in (tmp_path / "letter.html").read_text()
    # without the auditor's key: refused, audited
    assert kaz(lfed, "subject-access", "--document", "N0481516", "--state", "KAZ") == 1
    own = tmp_path / "own.key"
    shutil.copyfile(lfed.dirs["KAZ-BS"] / "signing.key", own)
    own.chmod(0o600)
    assert kaz(lfed, "subject-access", "--document", "N0481516", "--state", "KAZ",
               "--auditor-key", str(own)) == 1
    events = [e for e in lfed.audit("KAZ-BS") if str(e["event"]).startswith("subject_access")]
    assert [(e["event"], e.get("reason")) for e in events][-3:] == [
        ("subject_access", None), ("subject_access_refused", "not_an_auditor"),
        ("subject_access_refused", "not_an_auditor")]
    assert "Юсупов" not in json.dumps(events, ensure_ascii=False)


def test_subject_access_on_both_sides_as_a_table_with_the_follow_up_that_released_data(
        lfed: Federation, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """KGZ-BS's officer-3 asks KAZ-BS about a passport (CASE-SA3) and follows the hit up;
    KAZ-BS's desk releases two fields; officer-5 asks again (CASE-SA4), nothing followed.
    The auditor asks each node: KAZ-BS names who asked it, KGZ-BS which of its officers
    asked whom; both say the follow-up was approved and which fields it released, by name;
    the values only with --released-values, and each access is audited, without them."""
    doc = DocumentQuery(number="N1122334", issuing_state="KAZ")  # KAZ-SLTD-2025-004410
    followed = ask(lfed, [doc], QueryContext(operator="officer-3", purpose="border_check",
                                             legal_basis=CTX.legal_basis, case_ref="CASE-SA3"))
    assert followed.results[0].reference == "KAZ-SLTD-2025-004410"
    client = lfed.client("KGZ-BS")
    try:
        fstore = FollowUpStore(client._store)  # type: ignore[arg-type]
        fid = file_followup(client, fstore, "KAZ-BS", CTX,
                            hit_request_digest=followed.request_digest, hit_item_index=0,
                            hit_reference="KAZ-SLTD-2025-004410",
                            fields=["document_number", "loss_type"]).followup_id
        assert kaz(lfed, "followup", "approve", fid, "--fields", "document_number,loss_type",
                   "--operator", "kz-desk-1") == 0
        fetched = get_followup(client, fstore, "KAZ-BS", CTX, fid)  # the decision, kept
    finally:
        client.close()
    assert fetched.decision is not None and fetched.decision.state == "approved"
    ask(lfed, [doc], QueryContext(operator="officer-5", purpose="migration_control",
                                  legal_basis=CTX.legal_basis, case_ref="CASE-SA4"))
    key = tmp_path / "auditor.key"
    shutil.copyfile(DEV / "auditor" / "signing.key", key)
    key.chmod(0o600)
    subject = ("--document", "N1122334", "--state", "KAZ", "--auditor-key", str(key))

    def access(node: str, *extra: str) -> str:
        capsys.readouterr()
        assert cli(["subject-access", *subject, *extra, "--node-dir",
                    str(lfed.dirs[node])]) == 0
        return capsys.readouterr().out

    def whens(node: str) -> list[str]:
        return [_when(x["time_ms"]) for x in json.loads(access(node, "--json"))["exchanges"]]

    t1, t2 = whens("KAZ-BS")
    assert access("KAZ-BS").splitlines() == [
        "when (UTC)            direction  node    officer    purpose            case reference"
        "  about     answer                    follow-up (fields released)",
        f"{t1}  asked us   KGZ-BS  officer-3  border_check       CASE-SA3      "
        "  document  hit KAZ-SLTD-2025-004410  approved: document_number, loss_type",
        f"{t2}  asked us   KGZ-BS  officer-5  migration_control  CASE-SA4      "
        "  document  hit KAZ-SLTD-2025-004410  -",
        "2 question(s) about document N1122334 (KAZ) in the receipts held"]
    s1, s2 = whens("KGZ-BS")  # the asking side: our officers, whom they asked
    assert access("KGZ-BS").splitlines() == [
        "when (UTC)            direction  node    officer    purpose            case reference"
        "  about     answer                    follow-up (fields released)",
        f"{s1}  we asked   KAZ-BS  officer-3  border_check       CASE-SA3      "
        "  document  hit KAZ-SLTD-2025-004410  approved: document_number, loss_type",
        f"{s2}  we asked   KAZ-BS  officer-5  migration_control  CASE-SA4      "
        "  document  hit KAZ-SLTD-2025-004410  -",
        "2 question(s) about document N1122334 (KAZ) in the receipts held"]
    assert "N1122334" not in access("KGZ-BS", "--html", str(tmp_path / "kgz.html")).replace(
        "document N1122334 (KAZ)", "")
    page = (tmp_path / "kgz.html").read_text()
    assert "approved: document_number, loss_type" in page and "lost" not in page
    # the values, when the auditor asks for them: the owner's signed decision's
    with_values = json.loads(access("KGZ-BS", "--json", "--released-values"))["exchanges"]
    assert [(x["direction"], x["peer"], x["operator"], x["case_ref"], x["followup"],
             x["released"], x["released_values"]) for x in with_values] == [
        ("sent", "KAZ-BS", "officer-3", "CASE-SA3", "approved",
         ["document_number", "loss_type"], {"document_number": "N1122334", "loss_type": "lost"}),
        ("sent", "KAZ-BS", "officer-5", "CASE-SA4", "", [], {})]
    table = access("KAZ-BS", "--released-values").splitlines()
    assert table[1].endswith("approved: document_number=N1122334, loss_type=lost")
    # each access audited on the node asked: who, what kind, how many, whether values shown
    for node, shown in (("KAZ-BS", [False, False, True]),
                        ("KGZ-BS", [False, False, False, True])):
        entries = [e for e in lfed.audit(node) if e.get("event") == "subject_access"]
        assert [(e["auditor"], e["query_kind"], e["results"], e["released_values"])
                for e in entries[-len(shown):]] == [("KAZ-DPA", "document", 2, v) for v in shown]
        assert "N1122334" not in json.dumps(entries)


def test_retention_sweep_erases_for_good_and_old_receipts_still_prove_their_exchange(
        lfed: Federation) -> None:
    answer = ask(lfed, [DocumentQuery(number="S001", issuing_state="KAZ")])
    node = lfed.nodes["KAZ-BS"]
    seq = answer.audit_seq  # the owner's entry of this exchange
    later = now_ms() + 1200 * DAY_MS  # past every default retention
    sweep = RetentionSweep(db=node.runtime.store, audit=node.runtime.responder.audit_log,
                           settings=node.cfg.retention, clock_ms=lambda: later)
    writer = node.server.writer
    assert writer is not None
    report = asyncio.run_coroutine_threadsafe(sweep_once(sweep, writer), node.loop).result(30)
    assert report.erased["receipts"] >= 3 and report.erased["withdrawn_alerts"] == 4
    assert report.compacted.endswith("done")
    cfg = load_config(lfed.dirs["KAZ-BS"])
    key = load_db_key(cfg.db_key_file)
    pages = decrypted_pages(cfg.db_path, key)
    for secret in (b"N0481516", "Юсупов".encode(), b"YUSUPOV", b"CASE-L1", b"CASE-SA2"):
        assert secret not in pages, secret
    store = open_store(cfg)
    try:
        log = MerkleAuditLog(store=store)
        heads = RetentionTables(store).receipts_for(request_digest=answer.request_digest)
        entry = log.entry(seq)
    finally:
        store.close()
    [head] = heads
    assert head.erased_ms == later and head.request_env == b""
    assert entry is not None and entry.body is None and entry.leaf  # body erased, leaf kept
    assert cli(["audit", "verify", "--node-dir", str(lfed.dirs["KAZ-BS"])]) == 0
    sweeps = [e for e in lfed.audit("KAZ-BS") if e.get("event") == "retention_sweep"]
    assert sweeps[-1]["erased"] == report.erased
    # the requester still holds its receipt (its own retention has not run): the digest of
    # the answer it holds is the one the owner kept
    kgz = open_store(load_config(lfed.dirs["KGZ-BS"]))
    try:
        [mine] = [r for r in kgz.receipt_store.all(direction="sent")  # type: ignore[attr-defined]
                  if r.request_digest == answer.request_digest]
    finally:
        kgz.close()
    held = convert.envelope_from_pb(pb.SignedEnvelope.FromString(mine.response_env))
    assert env_mod.digest(held) == head.response_digest
    with pytest.raises(RemoteError) as err:
        file(lfed, answer)
    assert (err.value.status, err.value.reason) == ("FAILED_PRECONDITION", "receipt_expired")
