"""Crossing values, the BCP file, the import format and reconciliation, without a network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.core.errors import InvalidInput
from node.core.model import DocumentQuery, PartialDate, PersonQuery
from node.crossings.bcps import parse_bcp_file
from node.crossings.handler import round_down
from node.crossings.importer import parse_crossings_file, parse_utc
from node.crossings.model import (
    MAX_QUESTIONS_HARD,
    MAX_WINDOW_MS,
    CrossingAnswer,
    CrossingEvent,
    CrossingQuestion,
    CrossingRecord,
    CrossingRequest,
    Direction,
    TravelMode,
)
from node.crossings.reconcile import reconcile

ROOT = Path(__file__).resolve().parents[3]
DOC = DocumentQuery(number="AC1111111", issuing_state="KGZ")
T0 = parse_utc("2026-11-20T00:00:00Z")


def question(**over: object) -> CrossingQuestion:
    args: dict[str, object] = {"subject": DOC, "direction": Direction.EXIT, "bcp": "KAZ-KORDAI",
                               "window_start_ms": T0, "window_end_ms": T0 + 3600_000}
    args.update(over)
    return CrossingQuestion(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("over", "reason"), [
    ({"bcp": "", "section": ""}, "bad_location"),
    ({"section": "KAZ-KGZ"}, "bad_location"),          # both
    ({"bcp": "kordai"}, "bad_bcp_code"),
    ({"window_end_ms": T0 - 1}, "bad_window"),
    ({"window_end_ms": T0 + MAX_WINDOW_MS + 1}, "window_too_long"),
    ({"window_start_ms": 0}, "bad_time"),
])
def test_question_bounds(over: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        question(**over)
    assert err.value.reason == reason


def test_window_at_its_exact_bounds() -> None:
    assert question(window_end_ms=T0 + MAX_WINDOW_MS).window_ms == MAX_WINDOW_MS
    assert question(window_end_ms=T0).window_ms == 0


def test_request_bounds() -> None:
    from node.core.model import RequestHeader

    h = RequestHeader(requester="KGZ-BS", key_id="k", operator="o", purpose="border_check",
                      legal_basis="x", case_ref="c", issued_at_ms=1, nonce=bytes(16))
    with pytest.raises(InvalidInput) as err:
        CrossingRequest(header=h, questions=())
    assert err.value.reason == "empty_request"
    assert len(CrossingRequest(header=h, questions=(question(),) * MAX_QUESTIONS_HARD
                               ).questions) == MAX_QUESTIONS_HARD
    with pytest.raises(InvalidInput) as err:
        CrossingRequest(header=h, questions=(question(),) * (MAX_QUESTIONS_HARD + 1))
    assert err.value.reason == "batch_too_large"


def test_record_matching() -> None:
    rec = CrossingRecord(record_id="R-1", event=CrossingEvent.EXIT, bcp="KAZ-KORDAI",
                         crossed_at_ms=T0, mode=TravelMode.ROAD, document=DOC,
                         family_name="Асанов", given_names="Бакыт",
                         date_of_birth=PartialDate(1979, 11, 2), nationality="KGZ")
    assert rec.matches(DOC)
    assert not rec.matches(DocumentQuery(number="AC1111111", issuing_state="KAZ"))
    assert rec.matches(PersonQuery(family_name="АСАНОВ", given_names="", nationality="KGZ",
                                   date_of_birth=PartialDate(1979)))
    assert not rec.matches(PersonQuery(family_name="Асанов", given_names="Бакыт",
                                       nationality="KGZ", date_of_birth=PartialDate(1980)))
    assert rec.direction is Direction.EXIT and rec.crossed
    refused = CrossingRecord(record_id="R-2", event=CrossingEvent.REFUSED_ENTRY,
                             bcp="KAZ-KORDAI", crossed_at_ms=T0, mode=TravelMode.FOOT,
                             document=DOC)
    assert refused.direction is Direction.ENTRY and not refused.crossed


def test_round_down() -> None:
    t = parse_utc("2026-11-20T08:59:59Z")
    assert round_down(t, 60) == parse_utc("2026-11-20T08:00:00Z")
    assert round_down(t, 15) == parse_utc("2026-11-20T08:45:00Z")
    assert round_down(t, 1440) == parse_utc("2026-11-20T00:00:00Z")


@pytest.mark.parametrize("text", ["2026-11-20T08:00:00", "2026-11-20T08:00:00+05:00",
                                  "20 Nov 2026", ""])
def test_times_must_be_utc(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_utc(text)
    assert err.value.reason == "bad_time"


def test_utc_forms() -> None:
    assert parse_utc("2026-11-20T00:00:00Z") == parse_utc("2026-11-20T00:00:00+00:00") == T0


# --- the BCP file ---------------------------------------------------------------------------


def test_demo_bcp_file() -> None:
    bmap = parse_bcp_file(ROOT / "deployments" / "demo" / "bcps.json")
    kaz = {(f.own, f.other, f.section) for f in bmap.facing("KAZ")}
    assert ("KAZ-KORDAI", "KGZ-AKZHOL", "KAZ-KGZ") in kaz
    assert ("KAZ-KARASU", "KGZ-CHALDOVAR", "KAZ-KGZ") in kaz
    assert ("KAZ-ZHIBEKZHOLY", "UZB-GISHTKUPRIK", "KAZ-UZB") in kaz
    assert {(f.own, f.other) for f in bmap.facing("UZB")} == {
        ("UZB-GISHTKUPRIK", "KAZ-ZHIBEKZHOLY"), ("UZB-DUSTLIK", "KGZ-DOSTUK")}


def _bcp_file(tmp_path: Path, doc: object) -> Path:
    p = tmp_path / "b.json"
    p.write_text(json.dumps(doc))
    return p


@pytest.mark.parametrize(("doc", "needle"), [
    ({"version": 2, "bcps": [], "pairs": []}, "version"),
    ({"version": 1, "bcps": [{"code": "KAZ-A", "country": "KGZ", "name": "A",
                              "modes": ["road"]}], "pairs": []}, "does not start with"),
    ({"version": 1, "bcps": [{"code": "KAZ-A", "country": "KAZ", "name": "A",
                              "modes": ["boat"]}], "pairs": []}, "bcps[1]"),
    ({"version": 1, "bcps": [{"code": "KAZ-A", "country": "KAZ", "name": "A",
                              "modes": ["road"]}] * 2, "pairs": []}, "twice"),
    ({"version": 1, "bcps": [{"code": "KAZ-A", "country": "KAZ", "name": "A",
                              "modes": ["road"]},
                             {"code": "KAZ-B", "country": "KAZ", "name": "B",
                              "modes": ["road"]}],
      "pairs": [{"a": "KAZ-A", "b": "KAZ-B", "section": "KAZ-KAZ"}]}, "same country"),
    ({"version": 1, "bcps": [], "pairs": [{"a": "KAZ-A", "b": "KGZ-B",
                                           "section": "KAZ-KGZ"}]}, "not in bcps"),
])
def test_bad_bcp_files(tmp_path: Path, doc: object, needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_bcp_file(_bcp_file(tmp_path, doc))
    assert err.value.reason == "bad_bcp_file" and needle in str(err.value)


# --- import ---------------------------------------------------------------------------------


def test_import_reports_every_bad_line(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    good = {"record_id": "R-1", "event": "exit", "bcp": "KAZ-KORDAI",
            "time": "2026-11-20T08:00:00Z", "mode": "road", "doc_number": "N1", "doc_state": "KAZ"}
    p.write_text("\n".join([json.dumps(good), "not json",
                            json.dumps({**good, "record_id": "R-2", "mode": "boat"}),
                            json.dumps({**good, "record_id": "R-3", "doc_number": "n-1"}),
                            json.dumps({**good, "record_id": "R-4", "dob": "1979-13"}),
                            json.dumps(good)]) + "\n")
    result = parse_crossings_file(p, own_bcps={"KAZ-KORDAI"})
    assert [n for n, _ in result.errors] == [2, 3, 4, 5, 6]
    assert "mode must be" in result.errors[1][1]
    assert "already on line 1" in result.errors[4][1]
    ok = parse_crossings_file(ROOT / "deployments" / "demo" / "kaz-crossings.csv",
                              own_bcps={"KAZ-KORDAI", "KAZ-KARASU", "KAZ-ZHIBEKZHOLY"})
    assert ok.error_count == 0 and len(ok.records) == 7


# --- reconciliation core --------------------------------------------------------------------


def test_reconcile_classifies_and_batches() -> None:
    def rec(i: int, event: CrossingEvent) -> CrossingRecord:
        return CrossingRecord(record_id=f"R-{i}", event=event, bcp="KAZ-KORDAI",
                              crossed_at_ms=T0 + i, mode=TravelMode.ROAD, document=DOC)

    items = [(rec(1, CrossingEvent.EXIT), question()), (rec(2, CrossingEvent.EXIT), question()),
             (rec(3, CrossingEvent.ENTRY), question()), (rec(4, CrossingEvent.ENTRY), question())]
    confirmed = iter([True, False, False, True])
    sizes: list[int] = []

    def ask(qs: list[CrossingQuestion]) -> list[CrossingAnswer]:
        sizes.append(len(qs))
        return [CrossingAnswer(index=i, confirmed=next(confirmed), bcp="KGZ-AKZHOL",
                               crossed_at_ms=T0) for i, _ in enumerate(qs)]

    report = reconcile(items, ask, peer="KGZ-BS", from_ms=T0, to_ms=T0 + 1, batch_size=3)
    assert sizes == [3, 1]
    assert [ln.outcome for ln in report.lines] == [
        "matched", "exit_without_entry", "entry_without_exit", "matched"]
    assert report.summary()["matched"] == 2 and report.batches == 2
