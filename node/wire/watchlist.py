"""Protobuf <-> alert values for the LocalService's watchlist methods (local.proto).

``AlertRecord``'s fields are the watchlist's import columns (README "Load the watchlist"),
in the same order as :data:`node.watchlist.lifecycle.COLUMNS` (a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from node.wire._gen import local_pb2 as lpb

__all__ = ["RECORD_COLUMNS", "alert_to_pb", "record_from_pb"]

RECORD_COLUMNS: tuple[str, ...] = tuple(f.name for f in lpb.AlertRecord.DESCRIPTOR.fields)


class _Alert(Protocol):
    """What :func:`alert_to_pb` reads of an alert (read-only: ``lifecycle.Alert`` is frozen
    and derives ``kind``, ``action`` and ``expires``)."""

    @property
    def ref(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def expires(self) -> str: ...

    @property
    def withdrawn_ms(self) -> int | None: ...

    def state(self, today: str) -> str: ...

    def rows(self) -> list[dict[str, str]]: ...


def record_from_pb(m: Any) -> dict[str, str]:
    """An ``AlertRecord`` as import columns."""
    return {c: str(getattr(m, c)) for c in RECORD_COLUMNS}


def alert_to_pb(a: _Alert, *, today: str, pseudonym: Callable[[str], str],
                records: bool) -> Any:
    view = lpb.AlertView(owner_ref=a.ref, kind=a.kind, source=a.source, state=a.state(today),
                         action=a.action, expires=a.expires, alert_id=pseudonym(a.ref),
                         withdrawn_ms=a.withdrawn_ms or 0)
    if records:
        for r in a.rows():
            view.records.add(**{c: r.get(c, "") for c in RECORD_COLUMNS})
    return view
