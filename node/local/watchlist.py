"""The LocalService's watchlist methods (issue 13 §1: "the same through the LocalService"):
AddAlert, UpdateAlert, WithdrawAlert, ShowAlert, ListAlerts, AlertStats, role
``watchlist_manager`` (node/local/auth.py).  The authenticated caller is the operator the
change is audited with; the work is :class:`node.watchlist.service.WatchlistOps`'."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from node.local.auth import Identity
from node.watchlist.service import WatchlistOps
from node.wire.local import lpb
from node.wire.watchlist import alert_to_pb, record_from_pb

__all__ = ["watchlist_methods"]

Handler = Callable[[Identity, Any, dict[str, Any]], Awaitable[Any]]


def watchlist_methods(ops: WatchlistOps) -> list[tuple[str, Any, Handler]]:
    """(method name, request class, handler) for the LocalService's method table."""
    pseudonym = ops.desk.pseudonym

    def view(alert: Any, *, records: bool = False) -> Any:
        return alert_to_pb(alert, today=ops.today(), pseudonym=pseudonym, records=records)

    def changed(alert: Any, facts: dict[str, Any]) -> None:  # never the reference itself
        facts.update(alert_id=pseudonym(alert.ref), kind=alert.kind, source=alert.source)

    async def add(ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        alert = await ops.add(record_from_pb(msg.alert), source=msg.source,
                              reason=msg.reason, operator=ident.name)
        changed(alert, facts)
        return lpb.AddAlertResponse(alert=view(alert))

    async def update(ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        facts["fields"] = sorted(k[:64] for k in msg.changes)[:16]
        alert = await ops.update(msg.owner_ref, dict(msg.changes), reason=msg.reason,
                                 operator=ident.name)
        changed(alert, facts)
        return lpb.UpdateAlertResponse(alert=view(alert))

    async def withdraw(ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        alert = await ops.withdraw(msg.owner_ref, reason=msg.reason, operator=ident.name)
        changed(alert, facts)
        return lpb.WithdrawAlertResponse(alert=view(alert))

    async def show(ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        alert = await ops.show(msg.owner_ref)
        facts["alert_id"] = pseudonym(alert.ref)
        return lpb.ShowAlertResponse(alert=view(alert, records=True))

    async def list_alerts(ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        alerts, matched = await ops.list(kind=msg.kind, source=msg.source, state=msg.state,
                                         action=msg.action, limit=msg.limit)
        facts.update(matched=matched, returned=len(alerts))
        return lpb.ListAlertsResponse(alerts=[view(a) for a in alerts], matched=matched)

    async def stats(ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        counts = await ops.stats()
        return lpb.AlertStatsResponse(
            counts=[lpb.AlertCount(kind=k, source=s, state=st, count=n)
                    for k, s, st, n in counts.counts], generation=counts.generation)

    return [("AddAlert", lpb.AddAlertRequest, add),
            ("UpdateAlert", lpb.UpdateAlertRequest, update),
            ("WithdrawAlert", lpb.WithdrawAlertRequest, withdraw),
            ("ShowAlert", lpb.ShowAlertRequest, show),
            ("ListAlerts", lpb.ListAlertsRequest, list_alerts),
            ("AlertStats", lpb.AlertStatsRequest, stats)]
