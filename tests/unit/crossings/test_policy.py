"""The crossing and follow-up policies, and the engines' further decision queries."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from node.crossings.policy import CROSSINGS_QUERY, crossing_decision
from node.crossings.settings import parse_local_listen
from node.followup.policy import FOLLOWUP_QUERY, followup_decision
from node.policy import OpaServerPolicyEngine, RegoPolicyEngine
from node.policy.queries import parse_query_decision

ROOT = Path(__file__).resolve().parents[3]
NOW = 1_795_000_000_000  # 2026-11


@pytest.fixture(scope="module")
def engine() -> RegoPolicyEngine:
    return RegoPolicyEngine.from_directory(ROOT / "policies")


def crossing(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "requester": {"node": "KGZ-BS", "country": "KGZ", "agency": "", "operator": "o"},
        "purpose": "border_check", "legal_basis": "art. 7", "case_ref": "C-1",
        "query": {"kind": "crossing", "batch_size": 1, "window_ms": 3600_000,
                  "datasets": ["documents"], "bcps": [{"code": "KAZ-KORDAI", "faces": ["KGZ"]}]},
        "time_ms": NOW, "responder": {"node": "KAZ-BS"}}
    for k, v in over.items():
        if k in doc["query"]:
            doc["query"][k] = v
        else:
            doc[k] = v
    return doc


def reasons(engine: RegoPolicyEngine, doc: dict[str, Any]) -> tuple[str, ...]:
    return crossing_decision(engine.decide_query(CROSSINGS_QUERY, doc)).reasons


def test_crossing_allow_carries_the_resolution(engine: RegoPolicyEngine) -> None:
    d = crossing_decision(engine.decide_query(CROSSINGS_QUERY, crossing()))
    assert d.allow and d.extra == {"resolution_minutes": 60}


@pytest.mark.parametrize(("over", "expected"), [
    ({"bcps": [{"code": "KAZ-KORDAI", "faces": ["UZB"]}]}, ("bcp_not_facing_requester",)),
    ({"bcps": []}, ("bcp_not_facing_requester",)),
    ({"window_ms": 72 * 3600_000}, ()),
    ({"window_ms": 72 * 3600_000 + 1}, ("window_exceeds_agreement",)),
    ({"batch_size": 200}, ()),
    ({"batch_size": 201}, ("batch_exceeds_agreement",)),
    ({"batch_size": 0}, ("batch_exceeds_agreement",)),
    ({"purpose": "visa_application"}, ("purpose_not_agreed",)),
    ({"datasets": []}, ("dataset_not_agreed",)),
    ({"case_ref": " "}, ("legal_basis_required",)),
    ({"responder": {"node": "TJK-BS"}}, ("no_agreement",)),
    ({"time_ms": 1_000_000_000_000}, ("agreement_not_in_force",)),
])
def test_crossing_rules(engine: RegoPolicyEngine, over: dict[str, Any],
                        expected: tuple[str, ...]) -> None:
    assert reasons(engine, crossing(**over)) == expected


def test_crossing_input_missing_fails_closed(engine: RegoPolicyEngine) -> None:
    doc = crossing()
    del doc["query"]["window_ms"]
    assert "window_exceeds_agreement" in reasons(engine, doc)
    assert not crossing_decision(engine.decide_query(CROSSINGS_QUERY, {})).allow


def followup(fields: list[str], purpose: str = "border_check",
             kind: str = "person") -> dict[str, Any]:
    return {"requester": {"node": "KGZ-BS", "country": "KGZ"}, "purpose": purpose,
            "legal_basis": "x", "case_ref": "c", "time_ms": NOW,
            "followup": {"record_kind": kind, "fields": fields},
            "responder": {"node": "KAZ-BS"}}


def test_followup_fields_by_purpose(engine: RegoPolicyEngine) -> None:
    d = followup_decision(engine.decide_query(FOLLOWUP_QUERY, followup(["family_name"])))
    assert d.allow and "sex" not in d.extra["fields"] and "family_name" in d.extra["fields"]
    assert followup_decision(engine.decide_query(FOLLOWUP_QUERY, followup(
        ["family_name", "sex"]))).reasons == ("field_not_allowed",)
    d = followup_decision(engine.decide_query(FOLLOWUP_QUERY, followup(
        ["sex"], purpose="criminal_investigation")))
    assert d.allow  # a wider release for a criminal investigation
    assert followup_decision(engine.decide_query(FOLLOWUP_QUERY, followup(
        [], kind="document"))).reasons == ("no_fields_requested",)
    assert followup_decision(engine.decide_query(FOLLOWUP_QUERY, followup(
        ["family_name"], purpose="counter_terrorism"))).reasons == ("purpose_not_agreed",)


def test_unknown_or_bad_queries_fail_closed(engine: RegoPolicyEngine) -> None:
    for q in ("data.bxnode.nothing.decision", "data.bxnode.crossings", "x; y", "data"):
        assert engine.decide_query(q, crossing()) == {"allow": False,
                                                       "reasons": ["policy_error"]}


def test_a_policy_that_allows_the_empty_input_is_never_used(tmp_path: Path) -> None:
    d = tmp_path / "p"
    shutil.copytree(ROOT / "policies", d)
    (d / "bxnode" / "open.rego").write_text(
        'package bxnode.open\n\ndecision := {"allow": true, "reasons": []}\n')
    e = RegoPolicyEngine.from_directory(d)
    assert e.decide_query("data.bxnode.open.decision", {"x": 1}) == {
        "allow": False, "reasons": ["policy_error"]}
    assert e.decide_query(CROSSINGS_QUERY, crossing())["allow"] is True


def test_the_lookup_decision_is_unchanged(engine: RegoPolicyEngine) -> None:
    from node.core.model import PolicyInput

    d = engine.decide(PolicyInput(
        requester_node="KGZ-BS", requester_country="KGZ", requester_agency="", operator="o",
        purpose="border_check", legal_basis="x", case_ref="c", query_kind="document",
        datasets=("documents",), data_types=("document_number",), batch_size=1,
        items_today=0, time_ms=NOW, responder_node="KAZ-BS"))
    assert d.allow and d.disclose == {"reference", "action", "contact", "source_agency"}


def test_opa_engine_unavailable_denies() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    e = OpaServerPolicyEngine.from_url(f"http://127.0.0.1:{port}", retries=0, timeout_s=0.2,
                                       policy_dir=ROOT / "policies")
    try:
        assert e.decide_query(CROSSINGS_QUERY, crossing()) == {
            "allow": False, "reasons": ["policy_unavailable"]}
        assert e.decide_query("not a query", {}) == {"allow": False,
                                                     "reasons": ["policy_error"]}
    finally:
        e.close()


@pytest.mark.parametrize(("doc", "allow", "reasons"), [
    ({"allow": True, "reasons": [], "resolution_minutes": 60}, True, ()),
    ({"allow": True, "reasons": ["x"], "resolution_minutes": 60}, False, ("policy_error",)),
    ({"allow": True, "reasons": []}, False, ("policy_error",)),
    ({"allow": True, "reasons": [], "resolution_minutes": -1}, False, ("policy_error",)),
    ({"allow": True, "reasons": [], "resolution_minutes": 60, "more": 1}, False,
     ("policy_error",)),
    ({"allow": False, "reasons": []}, False, ("policy_error",)),
    ({"allow": False, "reasons": ["policy_unavailable"]}, False, ("policy_unavailable",)),
    ({"allow": "yes", "reasons": []}, False, ("policy_error",)),
    (None, False, ("policy_error",)),
])
def test_decision_shape_is_strict(doc: Any, allow: bool, reasons: tuple[str, ...]) -> None:
    d = parse_query_decision(doc, ints=("resolution_minutes",))
    assert (d.allow, d.reasons) == (allow, reasons)


def test_a_resolution_outside_a_minute_to_a_day_is_a_policy_error() -> None:
    assert crossing_decision({"allow": True, "reasons": [],
                              "resolution_minutes": 0}).reasons == ("policy_error",)


@pytest.mark.parametrize("value", ["0.0.0.0:50052", "10.0.0.5:1", "kaz-bs.example.gov:50052",
                                   "127.0.0.1:x"])
def test_local_listener_never_faces_peers(value: str, tmp_path: Path) -> None:
    from node.core.errors import ConfigError

    with pytest.raises(ConfigError):
        parse_local_listen(value, tmp_path)


def test_local_listener_forms(tmp_path: Path) -> None:
    assert parse_local_listen("unix:local.sock", tmp_path) == f"unix:{tmp_path}/local.sock"
    assert parse_local_listen("127.0.0.1:50052", tmp_path) == "127.0.0.1:50052"
    assert parse_local_listen("off", tmp_path) is None


def test_deadline_setting(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from node.core.errors import ConfigError
    from node.crossings.settings import load_settings

    def cfg(hours: Any = 12.0, listen: Any = None) -> Any:
        return SimpleNamespace(root=tmp_path, followup_deadline_hours=hours,
                               local_listen=listen)

    assert load_settings(cfg()).followup_deadline_ms == 12 * 3600_000  # the SIRENE norm
    for bad in (0, -1, 721, "12", True):
        with pytest.raises(ConfigError):
            load_settings(cfg(hours=bad))
    s = load_settings(cfg(hours=24, listen="off"))
    assert (s.followup_deadline_ms, s.local_listen) == (24 * 3600_000, None)
