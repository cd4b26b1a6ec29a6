"""Lookups between real nodes: hit, no-hit, batch, policy, disclosure, audit, receipts."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.client.peer import QueryContext
from node.core.errors import RemoteError
from node.core.model import (
    ActionCode,
    DocumentQuery,
    Outcome,
    PartialDate,
    PersonQuery,
    QueryKind,
    Sex,
)
from tests.federation import CTX, Federation

pytestmark = pytest.mark.integration


def test_document_hit_discloses_what_the_agreement_allows(fed: Federation) -> None:
    client = fed.client("KGZ-BS")
    ans = client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
                        [DocumentQuery(number="N0481516", issuing_state="KAZ")])
    client.close()
    assert ans.responder == "KAZ-BS"
    [r] = ans.results
    assert r.outcome is Outcome.HIT
    assert r.reference == "KAZ-SLTD-2026-000117"
    assert r.action is ActionCode.SEIZE_DOCUMENT
    assert r.contact == "KAZ-BS desk"  # node default: the row has no contact of its own


def test_uzbekistan_gets_reference_and_action_but_no_contact(fed: Federation) -> None:
    client = fed.client("UZB-BS")
    ans = client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
                        [DocumentQuery(number="N0481516", issuing_state="KAZ")])
    client.close()
    [r] = ans.results
    assert (r.outcome, r.reference, r.action, r.contact) == (
        Outcome.HIT, "KAZ-SLTD-2026-000117", ActionCode.SEIZE_DOCUMENT, "")


def test_no_hit_and_expired_record_never_hits(fed: Federation) -> None:
    client = fed.client("KGZ-BS")
    a = client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
                      [DocumentQuery(number="N5550001", issuing_state="KAZ")])
    b = client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
                      [DocumentQuery(number="N7700770", issuing_state="KAZ")])
    client.close()
    assert a.results[0].outcome is Outcome.NO_HIT and a.results[0].reference == ""
    assert b.results[0].outcome is Outcome.NO_HIT


def test_person_hit_in_original_script(fed: Federation) -> None:
    client = fed.client("UZB-BS")
    ans = client.lookup("KGZ-BS", CTX, QueryKind.PERSON, [PersonQuery(
        family_name="Асанов", given_names="Бакыт", patronymic="Токтогулович",
        date_of_birth=PartialDate(1979, 11, 2), nationality="KGZ", sex=Sex.MALE)])
    other = client.lookup("KGZ-BS", CTX, QueryKind.PERSON, [PersonQuery(
        family_name="Асанов", given_names="Бакыт", date_of_birth=PartialDate(1985, 1, 1),
        nationality="KGZ", sex=Sex.MALE)])
    client.close()
    assert ans.results[0].outcome is Outcome.HIT
    assert ans.results[0].reference == "KGZ-WNT-2026-0007"
    assert ans.results[0].action is ActionCode.ARREST
    assert other.results[0].outcome is Outcome.NO_HIT  # same name, other date of birth


def test_batch_answers_every_item_in_order(fed: Federation) -> None:
    items: list[DocumentQuery | PersonQuery] = [
        DocumentQuery(number=n, issuing_state=s) for n, s in
        [("N5550001", "KAZ"), ("FA1002003", "UZB"), ("AB7000001", "UZB"), ("N0481516", "KAZ")]]
    items.append(PersonQuery(family_name="Каримова", given_names="Дилноза",
                             date_of_birth=PartialDate(1995, 8, 21), nationality="UZB",
                             sex=Sex.FEMALE))
    client = fed.client("KAZ-BS")
    ans = client.lookup("UZB-BS", CTX, QueryKind.BATCH, items)
    client.close()
    assert [r.index for r in ans.results] == [0, 1, 2, 3, 4]
    assert [r.outcome for r in ans.results] == [
        Outcome.NO_HIT, Outcome.HIT, Outcome.NO_HIT, Outcome.HIT, Outcome.HIT]
    assert [r.reference for r in ans.results] == [
        "", "UZB-SLTD-2026-5501", "", "UZB-SLTD-2026-5502", "UZB-WNT-2026-0044"]


def test_policy_denial_is_signed_audited_and_refused(fed: Federation) -> None:
    client = fed.client("UZB-BS")
    ctx = QueryContext(operator="officer-9", purpose="criminal_investigation",
                       legal_basis="MLA treaty", case_ref="CR-77")
    before = len(fed.audit("KAZ-BS"))
    with pytest.raises(RemoteError) as err:
        client.lookup("KAZ-BS", ctx, QueryKind.DOCUMENT,
                      [DocumentQuery(number="N0481516", issuing_state="KAZ")])
    client.close()
    assert (err.value.status, err.value.reason) == ("PERMISSION_DENIED", "purpose_not_agreed")
    assert err.value.refusal_verified is True
    entries = fed.audit("KAZ-BS")
    assert len(entries) == before + 1
    e = entries[-1]
    assert (e["requester"], e["operator"], e["purpose"], e["case_ref"]) == (
        "UZB-BS", "officer-9", "criminal_investigation", "CR-77")
    assert (e["outcome"], e["decision"], e["status"], e["reason"]) == (
        "denied", "deny", "PERMISSION_DENIED", "purpose_not_agreed")
    assert e["verified"] is True and "hits" not in e


def test_answered_request_is_audited_without_personal_data(fed: Federation) -> None:
    client = fed.client("KGZ-BS")
    ans = client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
                        [DocumentQuery(number="N1122334", issuing_state="KAZ")])
    client.close()
    entries = fed.audit("KAZ-BS")
    e = next(x for x in entries if x["seq"] == ans.audit_seq)
    assert (e["requester"], e["outcome"], e["hits"], e["no_hits"], e["items"]) == (
        "KGZ-BS", "answered", 1, 0, 1)
    assert e["data_types"] == ["document_number", "issuing_state", "document_type"]
    assert e["purpose"] == "border_check" and e["case_ref"] == "CASE-1"
    assert "N1122334" not in repr(e) and "KAZ-SLTD-2025-004410" not in repr(e)
    # the requester keeps a receipt and its own audit entry of the question
    mine = fed.audit("KGZ-BS")
    sent = [x for x in mine if x.get("event") == "lookup_sent"]
    assert sent and sent[-1]["peer_audit_seq"] == ans.audit_seq


@pytest.mark.parametrize("family", ["IUSUPOV", "YUSUPOV", "JUSUPOV", "IOUSSOUPOV", "Юсупов"])
def test_person_found_across_scripts_and_spellings(fed: Federation, family: str) -> None:
    """KAZ's alert is written in Cyrillic; the MRZ and older European forms still hit."""
    client = fed.client("KGZ-BS")
    ans = client.lookup("KAZ-BS", CTX, QueryKind.PERSON, [PersonQuery(
        family_name=family, given_names="TIMUR", date_of_birth=PartialDate(1984, 3, 17),
        nationality="UZB", sex=Sex.MALE)])
    client.close()
    assert (ans.results[0].outcome, ans.results[0].reference) == (
        Outcome.HIT, "KAZ-WNT-2026-000311")


def test_relative_with_same_surname_and_other_birth_date_does_not_hit(fed: Federation) -> None:
    client = fed.client("KGZ-BS")
    ans = client.lookup("KAZ-BS", CTX, QueryKind.PERSON, [PersonQuery(
        family_name="YUSUPOV", given_names="RUSTAM", date_of_birth=PartialDate(1961, 9, 2),
        nationality="UZB", sex=Sex.MALE)])
    client.close()
    assert ans.results[0].outcome is Outcome.NO_HIT


def test_persons_imported_while_serving_are_found(fresh_fed: Federation, tmp_path: Path) -> None:
    from node.cli.main import main as bxnode

    rows = tmp_path / "more.jsonl"
    rows.write_text('{"kind": "person", "owner_ref": "KAZ-WNT-2026-000999", "action": '
                    '"inform", "expires": "2031-01-01", "family_name": "Нурланов", '
                    '"given_names": "Арман", "dob": "1988-07-07", "nationality": "KAZ", '
                    '"sex": "M"}\n')
    assert bxnode(["watchlist", "import", str(rows), "--node-dir",
                   str(fresh_fed.dirs["KAZ-BS"])]) == 0
    # the serving node reads the watchlist generation on every lookup that holds a person
    client = fresh_fed.client("KGZ-BS")
    ans = client.lookup("KAZ-BS", CTX, QueryKind.PERSON, [PersonQuery(
        family_name="NURLANOV", given_names="ARMAN", date_of_birth=PartialDate(1988, 7, 7),
        nationality="KAZ", sex=Sex.MALE)])
    client.close()
    assert ans.results[0].reference == "KAZ-WNT-2026-000999"


def test_batch_with_repeated_expired_and_unknown_documents(fed: Federation) -> None:
    """One statement answers the batch; each item still gets its own, ordered answer."""
    items = [DocumentQuery(number=n, issuing_state=s, doc_type=t) for n, s, t in [
        ("N0481516", "KAZ", "P"), ("N7700770", "KAZ", "P"), ("N0481516", "KAZ", "P"),
        ("N0481516", "KAZ", "I"), ("AB1234567", "UZB", "P"), ("N0481516", "KGZ", "P")]]
    client = fed.client("KGZ-BS")
    ans = client.lookup("KAZ-BS", CTX, QueryKind.BATCH, items)
    client.close()
    assert [(r.outcome, r.reference) for r in ans.results] == [
        (Outcome.HIT, "KAZ-SLTD-2026-000117"), (Outcome.NO_HIT, ""),
        (Outcome.HIT, "KAZ-SLTD-2026-000117"), (Outcome.NO_HIT, ""),
        (Outcome.HIT, "KAZ-INV-2026-000981"), (Outcome.NO_HIT, "")]


def test_policy_sets_how_strictly_persons_match(fed: Federation) -> None:
    """ISUPOV TEMUR scores about 0.74 against Юсупов Тимур (a slip in each name): KGZ's
    agreement uses the default threshold (0.73) and hits; UZB's agreement with KAZ sets
    0.8 and does not."""
    query = PersonQuery(family_name="ISUPOV", given_names="TEMUR",
                        date_of_birth=PartialDate(1984, 3, 17), nationality="UZB",
                        sex=Sex.MALE)
    kgz, uzb = fed.client("KGZ-BS"), fed.client("UZB-BS")
    a = kgz.lookup("KAZ-BS", CTX, QueryKind.PERSON, [query])
    b = uzb.lookup("KAZ-BS", CTX, QueryKind.PERSON, [query])
    kgz.close()
    uzb.close()
    assert (a.results[0].outcome, b.results[0].outcome) == (Outcome.HIT, Outcome.NO_HIT)
    entries = {e["seq"]: e for e in fed.audit("KAZ-BS")}
    assert (entries[a.audit_seq]["match_threshold"], entries[a.audit_seq]["max_candidates"]) \
        == (0.73, 10)
    assert (entries[b.audit_seq]["match_threshold"], entries[b.audit_seq]["max_candidates"]) \
        == (0.8, 5)
