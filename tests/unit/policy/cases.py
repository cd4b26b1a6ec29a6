"""The rule table: (name, input overrides, expected decision), against rule_table_data()."""

from __future__ import annotations

from typing import Any

from node.core.model import Decision
from tests.unit.policy._support import FULL, ms

ALLOW_FULL = Decision(allow=True, disclose=frozenset(FULL))
ALLOW_UZB = Decision(allow=True, disclose=frozenset({"reference", "action"}))


def denied(*reasons: str) -> Decision:
    return Decision(allow=False, reasons=tuple(sorted(reasons)))


CASES: list[tuple[str, dict[str, Any], Decision]] = [
    # Allowed, and what each agreement discloses.
    ("document lookup allowed", {}, ALLOW_FULL),
    ("person lookup allowed", {"query_kind": "person", "datasets": ("persons",)}, ALLOW_FULL),
    ("batch over both datasets allowed",
     {"query_kind": "batch", "datasets": ("documents", "persons"), "batch_size": 40}, ALLOW_FULL),
    ("UZB gets reference and action only", {"requester_node": "UZB-BS"}, ALLOW_UZB),
    # no_agreement: default deny on any unknown pair, in either direction.
    ("unknown requester", {"requester_node": "XXX-BS"}, denied("no_agreement")),
    ("unknown responder", {"responder_node": "UZB-BS"}, denied("no_agreement")),
    ("reverse direction has no agreement",
     {"requester_node": "KAZ-BS", "responder_node": "KGZ-BS"}, denied("no_agreement")),
    ("empty requester", {"requester_node": ""}, denied("no_agreement")),
    # agreement_not_in_force, UTC dates inclusive at both ends.
    ("expired agreement", {"requester_node": "TJK-BS"}, denied("agreement_not_in_force")),
    ("first millisecond of valid_from", {"time_ms": ms("2025-01-01T00:00:00")}, ALLOW_FULL),
    ("last millisecond before valid_from", {"time_ms": ms("2025-01-01T00:00:00") - 1},
     denied("agreement_not_in_force")),
    ("last millisecond of valid_until", {"time_ms": ms("2031-01-01T00:00:00") - 1}, ALLOW_FULL),
    ("first millisecond after valid_until", {"time_ms": ms("2031-01-01T00:00:00")},
     denied("agreement_not_in_force")),
    ("not in force skips agreement checks",
     {"requester_node": "TJK-BS", "purpose": "counter_terrorism", "batch_size": 10_000},
     denied("agreement_not_in_force")),
    # Several agreements for one pair: the one in force, the latest start supersedes.
    ("renewal: old agreement governs before the amendment",
     {"requester_node": "TKM-BS", "time_ms": ms("2025-07-01T00:00:00")},
     Decision(allow=True, disclose=frozenset({"reference"}))),
    ("renewal: old agreement lacks migration_control",
     {"requester_node": "TKM-BS", "time_ms": ms("2025-07-01T00:00:00"),
      "purpose": "migration_control"}, denied("purpose_not_agreed")),
    ("renewal: amendment governs once in force",
     {"requester_node": "TKM-BS", "purpose": "migration_control"}, ALLOW_FULL),
    ("two agreements in force from the same day",
     {"requester_node": "MNG-BS"}, denied("agreement_ambiguous")),
    # purpose_not_agreed
    ("purpose not agreed", {"purpose": "criminal_investigation"}, denied("purpose_not_agreed")),
    ("UZB purpose not agreed", {"requester_node": "UZB-BS", "purpose": "migration_control"},
     denied("purpose_not_agreed")),
    # dataset_not_agreed: any dataset outside the agreement.
    ("dataset not agreed", {"requester_node": "UZB-BS", "query_kind": "person",
                            "datasets": ("persons",)}, denied("dataset_not_agreed")),
    ("one of two datasets not agreed",
     {"requester_node": "UZB-BS", "query_kind": "batch", "datasets": ("documents", "persons"),
      "batch_size": 2}, denied("dataset_not_agreed")),
    ("unknown dataset", {"datasets": ("crossings",)}, denied("dataset_not_agreed")),
    ("no dataset", {"datasets": ()}, denied("dataset_not_agreed")),
    # batch_exceeds_agreement (max_batch 100)
    ("batch exactly max_batch", {"query_kind": "batch", "batch_size": 100}, ALLOW_FULL),
    ("batch one over max_batch", {"query_kind": "batch", "batch_size": 101},
     denied("batch_exceeds_agreement")),
    ("batch of zero items", {"batch_size": 0}, denied("batch_exceeds_agreement")),
    # quota_exhausted (daily_quota 1000): items_today + batch_size <= quota.
    ("quota exactly reached by one item", {"items_today": 999}, ALLOW_FULL),
    ("quota exceeded by one item", {"items_today": 1000}, denied("quota_exhausted")),
    ("quota exactly reached by a batch",
     {"query_kind": "batch", "batch_size": 50, "items_today": 950}, ALLOW_FULL),
    ("quota exceeded by a batch",
     {"query_kind": "batch", "batch_size": 50, "items_today": 951}, denied("quota_exhausted")),
    ("negative usage is not trusted", {"items_today": -5}, denied("quota_exhausted")),
    # legal_basis_required
    ("empty legal basis", {"legal_basis": ""}, denied("legal_basis_required")),
    ("blank legal basis", {"legal_basis": "  \t"}, denied("legal_basis_required")),
    ("empty case reference", {"case_ref": ""}, denied("legal_basis_required")),
    # Several reasons at once: every one that fires, sorted.
    ("every agreement rule fires",
     {"purpose": "visa_application", "datasets": ("documents", "crossings"),
      "query_kind": "batch", "batch_size": 101, "items_today": 900, "legal_basis": ""},
     denied("batch_exceeds_agreement", "dataset_not_agreed", "legal_basis_required",
            "purpose_not_agreed", "quota_exhausted")),
    ("no agreement and no legal basis", {"requester_node": "XXX-BS", "case_ref": ""},
     denied("legal_basis_required", "no_agreement")),
    ("expired and no legal basis", {"requester_node": "TJK-BS", "legal_basis": ""},
     denied("agreement_not_in_force", "legal_basis_required")),
]
