"""The LocalService's AlertRecord is the watchlist's import columns, in order, and every
watchlist method has a role (default deny: a method missing from the table is refused)."""

from __future__ import annotations

from node.local.auth import METHOD_ROLES
from node.watchlist.lifecycle import COLUMNS, Alert
from node.wire.local import lpb
from node.wire.watchlist import RECORD_COLUMNS, alert_to_pb, record_from_pb

WATCHLIST_METHODS = ("AddAlert", "UpdateAlert", "WithdrawAlert", "ShowAlert", "ListAlerts",
                     "AlertStats")


def test_record_columns_are_the_import_columns() -> None:
    assert RECORD_COLUMNS == COLUMNS


def test_every_watchlist_method_is_for_the_watchlist_manager_only() -> None:
    service = lpb.DESCRIPTOR.services_by_name["LocalService"]
    assert set(WATCHLIST_METHODS) <= {m.name for m in service.methods}
    assert {m: METHOD_ROLES[m] for m in WATCHLIST_METHODS} == dict.fromkeys(
        WATCHLIST_METHODS, frozenset({"watchlist_manager"}))


def test_an_alert_round_trips_through_its_view() -> None:
    doc = ("KAZ", "N0481516", "P", "KAZ-1", "seize_document", "", "2036-01-01", "stolen")
    alert = Alert("KAZ-1", "MVD", (doc,), None, withdrawn_ms=1_700_000_000_000)
    view = alert_to_pb(alert, today="2026-07-01", pseudonym=lambda r: f"id-{r}", records=True)
    assert (view.owner_ref, view.kind, view.source, view.state, view.action, view.alert_id,
            view.withdrawn_ms) == ("KAZ-1", "document", "MVD", "withdrawn", "seize_document",
                                   "id-KAZ-1", 1_700_000_000_000)
    [record] = view.records
    assert record_from_pb(record) == {c: v for c, v in alert.rows()[0].items() if c in COLUMNS}
    assert not alert_to_pb(alert, today="2026-07-01", pseudonym=str, records=False).records
