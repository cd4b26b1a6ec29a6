"""The two-step follow-up after a HIT between real nodes over mTLS (issue 3, part 2)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.app import now_ms, open_store
from node.cli.main import main as cli
from node.client.peer import QueryContext
from node.config import load_config
from node.core.errors import RemoteError
from node.core.model import (
    DocumentQuery,
    LookupAnswer,
    PartialDate,
    PersonQuery,
    QueryKind,
    Sex,
)
from node.followup.client import Answer, file_followup, get_followup, watch_followup
from node.followup.store import FollowUpStore
from tests.federation import Federation, make_federation
from tests.waiting import until

pytestmark = pytest.mark.integration

CTX = QueryContext(operator="officer-7", purpose="border_check",
                   legal_basis="Agreement on border cooperation, art. 7", case_ref="CASE-F1")
STOLEN = DocumentQuery(number="N0481516", issuing_state="KAZ")       # KAZ-SLTD-2026-000117
CLEAN = DocumentQuery(number="N5550001", issuing_state="KAZ")
PERSON = PersonQuery(family_name="IUSUPOV", given_names="TIMUR",
                     date_of_birth=PartialDate(1984, 3, 17), nationality="UZB", sex=Sex.MALE)


@pytest.fixture(scope="module")
def ffed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    f = make_federation(tmp_path_factory.mktemp("ffed"))
    for n in f.dirs:
        f.start(n)
    yield f
    f.stop_all()


def lookup(fed: Federation, asker: str, owner: str, items: list[Any]) -> LookupAnswer:
    client = fed.client(asker)
    try:
        kind = QueryKind.BATCH if len(items) > 1 else items[0].kind
        return client.lookup(owner, CTX, kind, items)
    finally:
        client.close()


def file(fed: Federation, asker: str, owner: str, hit: LookupAnswer, index: int,
         fields: list[str], *, reference: str | None = None,
         ctx: QueryContext = CTX) -> Any:
    client = fed.client(asker)
    try:
        ref = hit.results[index].reference if reference is None else reference
        return file_followup(client, FollowUpStore(client._store), owner, ctx,  # type: ignore[arg-type]
                             hit_request_digest=hit.request_digest, hit_item_index=index,
                             hit_reference=ref, fields=fields)
    finally:
        client.close()


def refused_filing(fed: Federation, *args: Any, **kw: Any) -> tuple[str, str]:
    with pytest.raises(RemoteError) as err:
        file(fed, *args, **kw)
    assert err.value.refusal_verified
    return err.value.status, err.value.reason


def poll(fed: Federation, asker: str, owner: str, fid: str) -> Answer:
    client = fed.client(asker)
    try:
        return get_followup(client, FollowUpStore(client._store), owner, CTX, fid)  # type: ignore[arg-type]
    finally:
        client.close()


def owner_rows(fed: Federation, node: str) -> list[Any]:
    store = open_store(load_config(fed.dirs[node]))
    try:
        return FollowUpStore(store).all()
    finally:
        store.close()


def events(fed: Federation, node: str, fid: str) -> list[str]:
    return [e["event"] for e in fed.audit(node) if e.get("followup_id") == fid]


def run(fed: Federation, node: str, *argv: str,
        capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli([*argv, "--node-dir", str(fed.dirs[node])])
    out, err = capsys.readouterr()
    return rc, out, err.strip().splitlines()[-1] if err.strip() else ""


# --- the whole exchange ---------------------------------------------------------------------


def test_file_approve_narrowed_and_fetch(ffed: Federation,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    hit = lookup(ffed, "KGZ-BS", "KAZ-BS", [STOLEN])
    st = file(ffed, "KGZ-BS", "KAZ-BS", hit, 0,
              ["document_number", "loss_type", "issuing_state"])
    assert st.state == "pending" and not st.overdue
    assert abs(st.deadline_ms - (now_ms() + 12 * 3600_000)) < 60_000  # default: 12 hours
    fid = st.followup_id

    rc, out, _ = run(ffed, "KAZ-BS", "followup", "list", "--json", capsys=capsys)
    row = next(r for r in json.loads(out)["followups"] if r["id"] == fid)
    assert (row["state"], row["requester"], row["record_kind"], row["hit_reference"],
            row["hit_audit_seq"]) == ("pending", "KGZ-BS", "document",
                                      "KAZ-SLTD-2026-000117", hit.audit_seq)
    assert poll(ffed, "KGZ-BS", "KAZ-BS", fid).status.state == "pending"

    rc, out, _ = run(ffed, "KAZ-BS", "followup", "approve", fid, "--fields",
                     "document_number,loss_type", "--operator", "kz-desk-1", "--json",
                     capsys=capsys)
    assert rc == 0 and json.loads(out)["released"] == ["document_number", "loss_type"]

    a = poll(ffed, "KGZ-BS", "KAZ-BS", fid)
    assert a.status.state == "approved" and a.decision is not None
    assert a.decision.fields == {"document_number": "N0481516", "loss_type": "stolen"}
    assert a.decision.hit_reference == "KAZ-SLTD-2026-000117"
    assert a.decision.request_digest != a.status.request_digest  # bound to the filing

    evs = events(ffed, "KAZ-BS", fid)
    for step in ("followup_filed", "followup_approved", "followup_released",
                 "followup_fetched"):
        assert step in evs
    linked = [e for e in ffed.audit("KAZ-BS") if e.get("followup_id") == fid]
    assert {e["hit_audit_seq"] for e in linked} == {hit.audit_seq}
    assert {e["hit_request_digest"] for e in linked} == {hit.request_digest.hex()}
    assert "N0481516" not in json.dumps(ffed.audit("KAZ-BS"))
    sent = [e for e in ffed.audit("KGZ-BS") if e.get("event") == "followup_sent"]
    assert sent[-1]["followup_id"] == fid


def test_watch_streams_until_decided(ffed: Federation) -> None:
    hit = lookup(ffed, "KGZ-BS", "KAZ-BS", [PERSON])
    fid = file(ffed, "KGZ-BS", "KAZ-BS", hit, 0,
               ["family_name", "given_names", "date_of_birth"]).followup_id
    got: list[Answer] = []

    def watch() -> None:
        client = ffed.client("KGZ-BS")
        try:
            got.extend(watch_followup(client, FollowUpStore(client._store),  # type: ignore[arg-type]
                                      "KAZ-BS", CTX, fid, timeout_s=30))
        finally:
            client.close()

    th = threading.Thread(target=watch)
    th.start()
    until("the watch's first message (pending)", lambda: got)
    assert cli(["followup", "approve", fid, "--node-dir", str(ffed.dirs["KAZ-BS"])]) == 0
    th.join(30)
    assert [a.status.state for a in got] == ["pending", "approved"]
    d = got[-1].decision
    assert d is not None and d.fields == {"family_name": "Юсупов", "given_names": "Тимур",
                                          "date_of_birth": "1984-03-17"}
    assert "followup_fetched" in events(ffed, "KAZ-BS", fid)


def test_deny_reaches_the_requester_signed(ffed: Federation,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    hit = lookup(ffed, "KGZ-BS", "KAZ-BS", [STOLEN])
    fid = file(ffed, "KGZ-BS", "KAZ-BS", hit, 0, ["document_number"]).followup_id
    rc, _, _ = run(ffed, "KAZ-BS", "followup", "deny", fid, "--reason",
                   "case closed on our side", capsys=capsys)
    assert rc == 0
    a = poll(ffed, "KGZ-BS", "KAZ-BS", fid)
    assert a.decision is not None
    assert (a.status.state, a.decision.state, a.decision.reason, a.decision.fields) == (
        "denied", "denied", "case closed on our side", {})
    assert "followup_denied" in events(ffed, "KAZ-BS", fid)
    # approving an already decided follow-up: precise reason, audited, nothing changed
    rc, _, err = run(ffed, "KAZ-BS", "followup", "approve", fid, capsys=capsys)
    assert rc == 1 and err.startswith("bxnode: failed_precondition/already_decided")
    assert events(ffed, "KAZ-BS", fid)[-1] == "followup_approve_refused"
    assert next(r for r in owner_rows(ffed, "KAZ-BS") if r.id == fid).state == "denied"


# --- bad input: each refused precisely, audited, nothing changed ----------------------------


def _no_new_rows(fed: Federation, before: int) -> None:
    assert len(owner_rows(fed, "KAZ-BS")) == before


def test_unknown_and_foreign_hit_references(ffed: Federation) -> None:
    before = len(owner_rows(ffed, "KAZ-BS"))
    hit = lookup(ffed, "KGZ-BS", "KAZ-BS", [STOLEN])
    fake = LookupAnswer(responder="KAZ-BS", key_id="x", request_digest=os.urandom(32),
                        issued_at_ms=1, results=hit.results)
    assert refused_filing(ffed, "KGZ-BS", "KAZ-BS", fake, 0, ["document_number"]) == (
        "NOT_FOUND", "unknown_hit_reference")
    e = ffed.audit("KAZ-BS")[-1]
    assert (e["event"], e["outcome"], e["reason"]) == (
        "followup_file", "rejected", "unknown_hit_reference")
    # another requester's hit (UZB asked; KGZ names it)
    uzb_hit = lookup(ffed, "UZB-BS", "KAZ-BS", [STOLEN])
    assert refused_filing(ffed, "KGZ-BS", "KAZ-BS", uzb_hit, 0, ["document_number"],
                          reference="KAZ-SLTD-2026-000117") == (
        "NOT_FOUND", "unknown_hit_reference")
    # our own hit, but a reference the owner never gave
    assert refused_filing(ffed, "KGZ-BS", "KAZ-BS", hit, 0, ["document_number"],
                          reference="KAZ-SLTD-2026-999999") == (
        "NOT_FOUND", "unknown_hit_reference")
    # an item index the lookup never had
    assert refused_filing(ffed, "KGZ-BS", "KAZ-BS", hit, 5, ["document_number"],
                          reference="KAZ-SLTD-2026-000117") == (
        "NOT_FOUND", "unknown_hit_reference")
    _no_new_rows(ffed, before)


def test_follow_up_on_a_no_hit(ffed: Federation) -> None:
    before = len(owner_rows(ffed, "KAZ-BS"))
    ans = lookup(ffed, "KGZ-BS", "KAZ-BS", [STOLEN, CLEAN])
    assert [r.outcome.value for r in ans.results] == ["hit", "no_hit"]
    assert refused_filing(ffed, "KGZ-BS", "KAZ-BS", ans, 1, ["document_number"]) == (
        "FAILED_PRECONDITION", "not_a_hit")
    assert ffed.audit("KAZ-BS")[-1]["reason"] == "not_a_hit"
    _no_new_rows(ffed, before)


def test_fields_policy_never_allows_and_unknown_fields(ffed: Federation) -> None:
    before = len(owner_rows(ffed, "KAZ-BS"))
    hit = lookup(ffed, "KGZ-BS", "KAZ-BS", [PERSON])
    # for border_check, KAZ releases no patronymic or sex to KGZ
    assert refused_filing(ffed, "KGZ-BS", "KAZ-BS", hit, 0, ["family_name", "sex"]) == (
        "PERMISSION_DENIED", "field_not_allowed")
    e = ffed.audit("KAZ-BS")[-1]
    assert (e["outcome"], e["decision"], e["reasons"]) == ("denied", "deny",
                                                           ["field_not_allowed"])
    assert refused_filing(ffed, "KGZ-BS", "KAZ-BS", hit, 0, ["document_number"]) == (
        "INVALID_ARGUMENT", "unknown_field")  # a document field of a person record
    ctx = QueryContext(operator="o-2", purpose="counter_terrorism", legal_basis="art. 9",
                       case_ref="C-2")
    assert refused_filing(ffed, "KGZ-BS", "KAZ-BS", hit, 0, ["family_name"], ctx=ctx) == (
        "PERMISSION_DENIED", "purpose_not_agreed")
    _no_new_rows(ffed, before)


def test_approval_narrows_never_widens(ffed: Federation,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    hit = lookup(ffed, "KGZ-BS", "KAZ-BS", [PERSON])
    fid = file(ffed, "KGZ-BS", "KAZ-BS", hit, 0, ["family_name"]).followup_id
    rc, _, err = run(ffed, "KAZ-BS", "followup", "approve", fid, "--fields",
                     "family_name,date_of_birth", capsys=capsys)
    assert rc == 1 and err.startswith("bxnode: invalid_argument/field_not_requested")
    rc, _, err = run(ffed, "KAZ-BS", "followup", "approve", fid, "--fields",
                     "family_name,sex", capsys=capsys)
    assert rc == 1 and err.startswith("bxnode: permission_denied/field_not_allowed")
    rc, _, err = run(ffed, "KAZ-BS", "followup", "approve", fid, "--fields", "height",
                     capsys=capsys)
    assert rc == 1 and err.startswith("bxnode: invalid_argument/unknown_field")
    row = next(r for r in owner_rows(ffed, "KAZ-BS") if r.id == fid)
    assert (row.state, row.decision_env) == ("pending", None)
    assert events(ffed, "KAZ-BS", fid).count("followup_approve_refused") == 3
    rc, _, err = run(ffed, "KAZ-BS", "followup", "approve", "FU-0000", capsys=capsys)
    assert rc == 1 and err.startswith("bxnode: not_found/unknown_followup")


def test_only_the_requester_may_poll(ffed: Federation) -> None:
    hit = lookup(ffed, "KGZ-BS", "KAZ-BS", [STOLEN])
    fid = file(ffed, "KGZ-BS", "KAZ-BS", hit, 0, ["document_number"]).followup_id
    client = ffed.client("UZB-BS")
    try:
        store = FollowUpStore(client._store)  # type: ignore[arg-type]
        from node.followup.store import SentRow

        with store.db.transaction():  # pretend UZB knows the id
            store.add_sent(SentRow(id=fid, peer="KAZ-BS", hit_reference="", fields=("x",),
                                   hit_request_digest=bytes(32), hit_item_index=0,
                                   purpose="border_check", legal_basis="x", case_ref="c",
                                   file_digest=bytes(32), filed_ms=1, state="pending",
                                   deadline_ms=1))
        with pytest.raises(RemoteError) as err:
            get_followup(client, store, "KAZ-BS", CTX, fid)
    finally:
        client.close()
    assert (err.value.status, err.value.reason) == ("NOT_FOUND", "unknown_followup")


# --- deadlines ------------------------------------------------------------------------------


def test_overdue_after_the_configured_deadline(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    fed = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"))
    with (fed.dirs["KAZ-BS"] / "node.toml").open("a") as f:
        f.write("\n[followup]\ndeadline_hours = 0.0003\n")  # about one second
    fed.start("KAZ-BS")
    try:
        hit = lookup(fed, "KGZ-BS", "KAZ-BS", [STOLEN])
        st = file(fed, "KGZ-BS", "KAZ-BS", hit, 0, ["document_number"])
        assert st.deadline_ms - st.issued_at_ms == 1080
        until("the follow-up's deadline has passed",
              lambda: time.time_ns() // 1_000_000 > st.deadline_ms + 100)
        _, out, _ = run(fed, "KAZ-BS", "followup", "list", "--state", "overdue", "--json",
                         capsys=capsys)
        assert [r["id"] for r in json.loads(out)["followups"]] == [st.followup_id]
        assert poll(fed, "KGZ-BS", "KAZ-BS", st.followup_id).status.overdue
        assert events(fed, "KAZ-BS", st.followup_id).count("followup_overdue") == 1
        assert cli(["followup", "approve", st.followup_id, "--node-dir",
                    str(fed.dirs["KAZ-BS"])]) == 0
        approved = [e for e in fed.audit("KAZ-BS") if e.get("event") == "followup_approved"]
        assert approved[-1]["late"] is True
    finally:
        fed.stop_all()
