"""``serve`` while a restored log is on hold (:mod:`node.audit.hold`): NOT_SERVING.

The hold is in the database, so every worker of ``serve --workers`` and every replica on
one PostgreSQL database sees it.  :class:`HoldWatch` sets the server's health condition
``audit_log`` before the server starts (never a SERVING moment after a restore), then reads
the hold every ``interval_s`` on the database thread: SERVING again once ``bxnode audit
recover-tail``, ``resume`` or ``reset-log`` lifted it, without a restart.  Each change is
one log line; the hold's own explanation goes with ``audit_log_on_hold`` (error level).

Requests meanwhile are refused by the log itself (it seals nothing while held):
UNAVAILABLE ``audit_log_on_hold``, with no audit entry -- nothing can be appended without
taking numbers the missing tail holds.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Protocol

import structlog

from node.audit.hold import RestoreHold, hold_of
from node.server.group_commit import BatchWriter
from node.store.db import Database

__all__ = ["CONDITION", "HoldWatch"]

log = structlog.get_logger("bxnode.audit.hold")

CONDITION = "audit_log"


class _Health(Protocol):
    def preset_condition(self, name: str, ok: bool) -> None: ...

    async def set_condition(self, name: str, ok: bool) -> None: ...


class HoldWatch:
    def __init__(self, *, store: Database, writer: BatchWriter, interval_s: float = 1.0) -> None:
        self._store = store
        self._writer = writer
        self.interval_s = interval_s
        self._server: _Health | None = None
        self._held: bool | None = None

    def bind(self, server: _Health) -> None:
        """Before the server starts (the database thread is not running yet)."""
        self._server = server
        self._note(hold_of(self._store))
        server.preset_condition(CONDITION, not self._held)

    def _note(self, hold: RestoreHold | None) -> bool:
        held = hold is not None
        changed = held != self._held
        if changed and hold is not None:
            log.error("audit_log_on_hold", detail=hold.explain(), health="NOT_SERVING")
        elif changed and self._held is not None:
            log.info("audit_log_hold_lifted", health="SERVING")
        self._held = held
        return changed

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                hold = await self._writer.call(functools.partial(hold_of, self._store))
            except Exception as exc:  # the database watch reports an unreachable database
                log.debug("hold_check_failed", error=str(exc))
                continue
            if self._note(hold) and self._server is not None:
                await self._server.set_condition(CONDITION, not self._held)
