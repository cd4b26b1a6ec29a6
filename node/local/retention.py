"""The LocalService's retention holds (issue 13 §2): PlaceHold and ReleaseHold, roles
``watchlist_manager`` or ``auditor`` (node/local/auth.py).  The authenticated caller is who
the hold is placed or lifted by, recorded with the role they act in: ``watchlist_manager``
when they hold it, else ``auditor``.  The work is the node's own
:class:`node.retention.sweep.HoldDesk` (``retention_hold`` / ``retention_release``, and
``*_refused`` for a refused change, in the same audit log), run on the server's group
commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from node.local.auth import Identity
from node.wire.local import lpb

__all__ = ["hold_methods", "hold_role"]

Handler = Callable[[Identity, Any, dict[str, Any]], Awaitable[Any]]


def hold_role(ident: Identity) -> str:
    """The role a hold is recorded with (the role check let only these two through)."""
    return "watchlist_manager" if "watchlist_manager" in ident.roles else "auditor"


def hold_methods(*, db: Any, audit: Any, writer: Any,
                 clock_ms: Callable[[], int]) -> list[tuple[str, Any, Handler]]:
    """(method name, request class, handler) for the LocalService's method table."""
    from node.retention.sweep import HoldDesk

    desks: list[HoldDesk] = []

    def desk() -> HoldDesk:  # made on the database thread (it ensures its tables)
        if not desks:
            desks.append(HoldDesk(db=db, audit=audit, clock_ms=clock_ms))
        return desks[0]

    async def change(ident: Identity, msg: Any, facts: dict[str, Any], release: bool) -> Any:
        role = hold_role(ident)
        facts.update(case_ref=msg.case_ref[:64], role=role)

        def run() -> Any:
            d = desk()
            fn = d.release if release else d.hold
            return fn(msg.case_ref, reason=msg.reason, by=ident.name, role=role)

        row = await writer.run_in_batch(run)
        return lpb.RetentionHold(case_ref=row.case_ref, placed_by=row.placed_by,
                                 placed_role=row.role, placed_ms=row.placed_ms)

    async def place(ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        hold = await change(ident, msg, facts, False)
        return lpb.PlaceHoldResponse(hold=hold, by=ident.name, role=hold.placed_role)

    async def release(ident: Identity, msg: Any, facts: dict[str, Any]) -> Any:
        hold = await change(ident, msg, facts, True)
        return lpb.ReleaseHoldResponse(hold=hold, by=ident.name, role=hold_role(ident))

    return [("PlaceHold", lpb.PlaceHoldRequest, place),
            ("ReleaseHold", lpb.ReleaseHoldRequest, release)]
