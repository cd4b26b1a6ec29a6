"""The erasure sweep inside ``bxnode serve``: every ``[retention] sweep_interval_s``, one
sweep as one step of the server's group commit (on the database thread, never on the
event loop), then the compaction (WAL checkpoint / VACUUM) on the same thread once the
batch is durable.

The interval is counted on the sweep's own clock (``RetentionSweep.clock_ms``, the node's
injected clock), not by one long sleep: the job looks at that clock every ``tick_s`` and
sweeps once the interval has passed on it (:class:`SweepSchedule`).  So a clock stepped
forward (NTP, or a test moving the injected clock) brings the sweep due within a tick,
and a clock stepped back delays it by at most one interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from node.core.metrics import NO_METRICS, Metrics
from node.logging import error_fields
from node.retention.checks import RETENTION_META
from node.retention.sweep import RetentionSweep, SweepReport
from node.store.retention import compact

__all__ = ["SweepSchedule", "sweep_job", "sweep_once"]

log = structlog.get_logger("bxnode.retention")


async def sweep_once(sweep: RetentionSweep, writer: Any) -> SweepReport:
    """One sweep through the database thread; its audit entry is durable on return."""
    report: SweepReport = await writer.run_in_batch(sweep.run)
    report.compacted = await writer.call(lambda: compact(sweep.db, erased=report.erased))
    log.info("retention_sweep", erased=report.erased, held=report.held,
             audit_seq=report.audit_seq, compacted=report.compacted)
    return report


@dataclass
class SweepSchedule:
    """When the next sweep is due, on the sweep's clock: ``interval_ms`` after the start,
    then ``interval_ms`` after each sweep began.  A clock that went back further than
    one interval (stepped back) restarts the count from its new reading."""

    interval_ms: int
    due_ms: int

    @classmethod
    def starting(cls, now_ms: int, *, interval_s: int) -> SweepSchedule:
        return cls(interval_ms=interval_s * 1000, due_ms=now_ms + interval_s * 1000)

    def due(self, now_ms: int) -> bool:
        if now_ms < self.due_ms - self.interval_ms:  # the clock was stepped back
            self.due_ms = now_ms + self.interval_ms
        return now_ms >= self.due_ms

    def swept(self, began_ms: int) -> None:
        self.due_ms = began_ms + self.interval_ms

    def wait_s(self, now_ms: int, *, tick_s: float) -> float:
        """How long to sleep before looking at the clock again."""
        return max(0.0, min(tick_s, (self.due_ms - now_ms) / 1000))


def sweep_job(sweep: RetentionSweep, writer: Any, *, interval_s: int,
              metrics: Metrics = NO_METRICS,
              tick_s: float = 1.0) -> Callable[[], Coroutine[Any, Any, None]]:
    """The background job ``serve`` runs: record the receipts' retention at once (the
    follow-up desk reads it), then sweep every ``interval_s`` on the sweep's clock,
    looking at it every ``tick_s``."""

    async def loop() -> None:
        ms = str(sweep.settings.ms("receipts"))
        try:
            await writer.call(lambda: sweep.db.set_meta(RETENTION_META, ms)
                              if sweep.db.get_meta(RETENTION_META) != ms else None)
        except Exception as exc:
            log.warning("retention_meta_failed", **error_fields(exc))
        schedule = SweepSchedule.starting(sweep.clock_ms(), interval_s=interval_s)
        while True:
            await asyncio.sleep(schedule.wait_s(sweep.clock_ms(), tick_s=tick_s))
            began = sweep.clock_ms()
            if not schedule.due(began):
                continue
            schedule.swept(began)
            try:
                report = await sweep_once(sweep, writer)
            except Exception as exc:  # the next round tries again
                log.warning("retention_sweep_failed", **error_fields(exc))
                metrics.erasure_sweep(erased={}, ok=False)
            else:
                metrics.erasure_sweep(erased=report.erased, ok=True)

    return loop
