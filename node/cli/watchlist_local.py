"""``bxnode watchlist add | update | withdraw`` under an officer identity (issue 11 §2).

With ``--officer-cert``/``--officer-key`` or ``--token-file`` the change is made by the
running node's LocalService (``AddAlert``, ``UpdateAlert``, ``WithdrawAlert``, role
``watchlist_manager``): the node authenticates the officer, audits the change with that
identity and applies it in its own group commit, so a serving node's lookups see it at
once.  Without an identity the change is accepted only in ``dev_mode`` (a typed
``--operator``, warned about each time: :func:`node.cli.identity.officer`), and the CLI
writes the node's database itself.  The output is the same either way.
"""

from __future__ import annotations

import argparse
from typing import Any

from node.cli.identity import call, officer
from node.cli.main import _config, _emit

__all__ = ["through_local"]


def _summary(a: Any) -> dict[str, Any]:
    return {"ref": a.owner_ref, "kind": a.kind, "source": a.source, "action": a.action,
            "expires": a.expires, "state": a.state}


def through_local(args: argparse.Namespace, command: str, *, record: dict[str, str],
                  ) -> int | None:
    """The change through the LocalService when the CLI runs under an officer identity
    (its exit status); None in development without one, where the caller writes the
    database itself.  Outside ``dev_mode`` without an identity: a one-sentence error."""
    with officer(args, _config(args), f"watchlist {command}") as off:
        if off.local is None:
            return None
        node = off.local
        if command == "add":
            a = call(node.add_alert, record, source=args.source, reason=args.reason)
            _emit(args, {"added": _summary(a), "alert_id": a.alert_id},
                  f"added {a.kind} alert {a.owner_ref} ({a.state}, source {a.source})")
        elif command == "update":
            a = call(node.update_alert, args.ref, record, reason=args.reason)
            _emit(args, {"updated": _summary(a), "fields": sorted(record)},
                  f"updated alert {a.owner_ref}: {', '.join(sorted(record))}")
        else:
            a = call(node.withdraw_alert, args.ref, reason=args.reason)
            _emit(args, {"withdrawn": a.owner_ref, "kind": a.kind, "source": a.source},
                  f"withdrew {a.kind} alert {a.owner_ref}: it no longer hits, on any replica")
        return 0
