"""The erasure sweep inside ``bxnode serve``: every ``[retention] sweep_interval_s``, one
sweep as one step of the server's group commit (on the database thread, never on the
event loop), then the compaction (WAL checkpoint / VACUUM) on the same thread once the
batch is durable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from node.core.metrics import NO_METRICS, Metrics
from node.retention.checks import RETENTION_META
from node.retention.sweep import RetentionSweep, SweepReport
from node.store.retention import compact

__all__ = ["sweep_job", "sweep_once"]

log = structlog.get_logger("bxnode.retention")


async def sweep_once(sweep: RetentionSweep, writer: Any) -> SweepReport:
    """One sweep through the database thread; its audit entry is durable on return."""
    report: SweepReport = await writer.run_in_batch(sweep.run)
    report.compacted = await writer.call(lambda: compact(sweep.db, erased=report.erased))
    log.info("retention_sweep", erased=report.erased, held=report.held,
             audit_seq=report.audit_seq, compacted=report.compacted)
    return report


def sweep_job(sweep: RetentionSweep, writer: Any, *, interval_s: int,
              metrics: Metrics = NO_METRICS) -> Callable[[], Coroutine[Any, Any, None]]:
    """The background job ``serve`` runs: record the receipts' retention at once (the
    follow-up desk reads it), then sweep every ``interval_s``."""

    async def loop() -> None:
        ms = str(sweep.settings.ms("receipts"))
        try:
            await writer.call(lambda: sweep.db.set_meta(RETENTION_META, ms)
                              if sweep.db.get_meta(RETENTION_META) != ms else None)
        except Exception as exc:
            log.warning("retention_meta_failed", error=str(exc))
        while True:
            await asyncio.sleep(interval_s)
            try:
                report = await sweep_once(sweep, writer)
            except Exception as exc:  # the next round tries again
                log.warning("retention_sweep_failed", error=f"{type(exc).__name__}: {exc}")
                metrics.erasure_sweep(erased={}, ok=False)
            else:
                metrics.erasure_sweep(erased=report.erased, ok=True)

    return loop
