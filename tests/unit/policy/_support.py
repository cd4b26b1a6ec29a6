"""Shared test helpers: policy directories built from the real Rego and test data."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node.core.model import PolicyInput

REPO_POLICIES = Path(__file__).resolve().parents[3] / "policies"
FULL = ["reference", "action", "contact"]


def ms(text: str) -> int:
    """Milliseconds since the epoch for an ISO-8601 UTC timestamp."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


NOW = ms("2026-07-01T12:00:00")


def agreement(requester: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "responder": "KAZ-BS", "requester": requester, "datasets": ["documents", "persons"],
        "purposes": ["border_check", "migration_control"], "daily_quota": 1000,
        "max_batch": 100, "disclose": FULL, "valid_from": "2025-01-01",
        "valid_until": "2030-12-31",
    }
    base.update(overrides)
    return base


def rule_table_data() -> dict[str, Any]:
    """Agreements the rule table is written against (independent of policies/data.json)."""
    return {"bxnode": {"agreements": [
        agreement("KGZ-BS"),
        agreement("UZB-BS", datasets=["documents"], purposes=["border_check"],
                  daily_quota=100000, max_batch=500, disclose=["reference", "action"]),
        agreement("TJK-BS", valid_from="2020-01-01", valid_until="2024-12-31"),
        # A renewal: the amendment from 2026 adds migration_control and contact.
        agreement("TKM-BS", purposes=["border_check"], disclose=["reference"],
                  valid_from="2020-01-01", valid_until="2030-12-31"),
        agreement("TKM-BS", valid_from="2026-01-01", valid_until="2030-12-31"),
        # A data error: two agreements in force from the same day.
        agreement("MNG-BS", valid_from="2025-01-01"),
        agreement("MNG-BS", valid_from="2025-01-01", disclose=["reference"]),
    ]}}


def write_policy_dir(root: Path, data: dict[str, Any] | None = None) -> Path:
    """The real lookup.rego plus ``data`` (default: :func:`rule_table_data`) as data.json."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "bxnode").mkdir(exist_ok=True)
    shutil.copy(REPO_POLICIES / "bxnode" / "lookup.rego", root / "bxnode" / "lookup.rego")
    (root / "data.json").write_text(json.dumps(rule_table_data() if data is None else data))
    return root


BASE_INPUT = PolicyInput(
    requester_node="KGZ-BS", requester_country="KGZ", requester_agency="Border Service",
    operator="op-17", purpose="border_check", legal_basis="Bilateral agreement art. 4",
    case_ref="CASE-2026-0001", query_kind="document", datasets=("documents",),
    data_types=("document_number", "issuing_state", "document_type"), batch_size=1,
    items_today=0, time_ms=NOW, responder_node="KAZ-BS",
)


def make_input(**overrides: Any) -> PolicyInput:
    return replace(BASE_INPUT, **overrides)
