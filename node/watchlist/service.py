"""The life of an alert through the LocalService (issue 13 §1): the same
:class:`~node.watchlist.lifecycle.AlertDesk` the CLI uses, run on the server's group commit
(the database thread), with the authenticated caller as the operator.

No gRPC here: typed values in, :class:`~node.watchlist.lifecycle.Alert` out.  Inputs are
bounded before the database is touched; every change and every refused change is audited
by the desk (``watchlist_*`` / ``watchlist_change_refused``), besides the LocalService's own
``local_call`` entry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from node.core.errors import InvalidInput
from node.core.model import validate_id
from node.watchlist.lifecycle import COLUMNS, MAX_REASON, Alert, AlertDesk, AlertNotFound

__all__ = ["MAX_CHANGES", "MAX_LIST", "AlertCounts", "WatchlistOps"]

MAX_CHANGES = 16
MAX_VALUE_LEN = 256
MAX_LIST = 1000
DEFAULT_LIST = 100
_KINDS = ("", "document", "person")
_STATES = ("", "live", "expired", "withdrawn")


@dataclass(frozen=True, slots=True)
class AlertCounts:
    counts: tuple[tuple[str, str, str, int], ...]  # (kind, source, state, count)
    generation: str


def _ref(ref: str) -> str:
    return validate_id(ref, "owner_ref")


def _bounded(values: Mapping[str, str], what: str) -> None:
    for k, v in values.items():
        if len(k) > 64 or len(v) > MAX_VALUE_LEN:
            raise InvalidInput(f"{what} {k[:64]!r} is longer than {MAX_VALUE_LEN} characters",
                               reason="bad_field")


def _reason(reason: str) -> str:
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"a change needs a reason of 1-{MAX_REASON} characters",
                           reason="bad_reason")
    return reason


class WatchlistOps:
    """Alert changes and reads for the LocalService (keyword-only; ``writer`` is the
    server's group commit, ``clock_ms`` injected)."""

    def __init__(self, *, desk: AlertDesk, writer: Any, clock_ms: Callable[[], int]) -> None:
        self.desk = desk
        self.writer = writer
        self.clock_ms = clock_ms

    def today(self) -> str:
        return dt.datetime.fromtimestamp(self.clock_ms() / 1000, dt.UTC).date().isoformat()

    async def _run(self, fn: Callable[[], Any]) -> Any:
        return await self.writer.run_in_batch(fn)

    async def add(self, record: Mapping[str, str], *, source: str, reason: str,
                  operator: str) -> Alert:
        _bounded(record, "field")
        row = {c: record.get(c, "") for c in COLUMNS}
        alert: Alert = await self._run(lambda: self.desk.add(
            row, source=source, operator=operator, reason=_reason(reason)))
        return alert

    async def update(self, ref: str, changes: Mapping[str, str], *, reason: str,
                     operator: str) -> Alert:
        _ref(ref)
        if len(changes) > MAX_CHANGES:
            raise InvalidInput(f"an update changes at most {MAX_CHANGES} fields",
                               reason="bad_field")
        _bounded(changes, "field")
        alert: Alert = await self._run(lambda: self.desk.update(
            ref, dict(changes), operator=operator, reason=_reason(reason)))
        return alert

    async def withdraw(self, ref: str, *, reason: str, operator: str) -> Alert:
        _ref(ref)
        alert: Alert = await self._run(lambda: self.desk.withdraw(
            ref, operator=operator, reason=_reason(reason)))
        return alert

    async def show(self, ref: str) -> Alert:
        _ref(ref)
        alert: Alert | None = await self._run(lambda: self.desk.get(ref))
        if alert is None:
            raise AlertNotFound(f"no alert {ref} on this node", reason="unknown_alert")
        return alert

    async def list(self, *, kind: str, source: str, state: str, action: str,
                   limit: int) -> tuple[list[Alert], int]:
        if kind not in _KINDS or state not in _STATES:
            raise InvalidInput("kind must be document or person, state live, expired or "
                               "withdrawn", reason="bad_filter")
        if not 0 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be 0..{MAX_LIST}", reason="bad_filter")
        _bounded({"source": source, "action": action}, "filter")
        today = self.today()

        def run() -> list[Alert]:
            return [a for a in self.desk.iter_alerts()
                    if (not kind or a.kind == kind) and (not source or a.source == source)
                    and (not state or a.state(today) == state)
                    and (not action or a.action == action)]

        found: list[Alert] = await self._run(run)
        return found[:limit or DEFAULT_LIST], len(found)

    async def stats(self) -> AlertCounts:
        today = self.today()

        def run() -> AlertCounts:
            counts: dict[tuple[str, str, str], int] = {}
            for a in self.desk.iter_alerts():
                key = (a.kind, a.source or "-", a.state(today))
                counts[key] = counts.get(key, 0) + 1
            return AlertCounts(tuple((*k, n) for k, n in sorted(counts.items())),
                               self.desk.lookup.generation() or "0")

        out: AlertCounts = await self._run(run)
        return out
