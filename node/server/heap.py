"""The serving process's heap and Python's cyclic garbage collector.

A node starts with some 300,000 objects the collector tracks (the protobuf and gRPC
modules, pycountry's tables, the policy, the person index) and keeps nearly all of them
until it stops.  Every full collection (generation 2) walks them all, holding the GIL:
measured during `make bench`'s lookups (benchmarks/README.md, "Garbage collection"), six
full collections took 1.5 s in all, the longest 260-286 ms -- a stall of every request in
flight, in the p99 of every open-loop figure.

So ``bxnode serve`` collects once and then *freezes* what is left
(:func:`freeze_startup_heap`, Python's ``gc.freeze``: those objects move to a permanent
generation that collections skip) just before it starts serving.  Nothing is lost:
reference counting still frees a frozen object the moment nothing refers to it (a
person index replaced by a new one); only a reference cycle among frozen objects would
outlive its use, and the collection just before the freeze has removed every such cycle
that was garbage then.  Objects made while serving are collected as always -- except a
person index rebuilt in full while serving, which is frozen once it is in use
(:func:`freeze_long_lived`): at 200,000 persons it adds ~590,000 tracked objects, and a
full collection that walks them takes ~0.5 s.

:class:`GcPauses` measures every collection (``gc.callbacks``): how many per generation,
their total and longest pause, and a histogram of pauses, for the ``gc_pauses`` line a
node logs at stop and the ``bxnode_gc_pause_seconds`` metric.  Its callback only adds to
plain numbers (no lock: a collection can start inside any allocation, including one made
while a metrics library holds its own lock); a scrape reads them.
"""

from __future__ import annotations

import bisect
import gc
import time
from collections.abc import Callable
from typing import Any

__all__ = ["PAUSE_BUCKETS_S", "GcPauses", "freeze_long_lived", "freeze_startup_heap"]

#: Upper bounds (seconds) of the pause histogram's buckets; the last is +Inf.
PAUSE_BUCKETS_S = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0)


def freeze_startup_heap() -> int:
    """Collect every generation, then freeze what survives (see the module's doc); the
    number of objects now frozen."""
    gc.collect()
    return freeze_long_lived()


def freeze_long_lived() -> int:
    """Freeze what is alive now, without a collection first (which would walk it all: a
    pause of about half a second per 200,000 persons of a new person index): after a full
    rebuild of the person index, whose ~3 tracked objects per person every later full
    collection would walk again.  The index holds no reference cycle (a dropped one leaves
    no cyclic garbage), so reference counting frees it when it is replaced in turn.  The
    price, once per call: cyclic garbage that exists at this moment, and reference cycles
    among the objects of the requests then in flight that become garbage later (a task
    and the traceback of an error it raised), are never collected -- a bounded leak per
    full rebuild (a bulk change), against a pause in every full collection from then
    on.  The number of objects frozen in all."""
    gc.freeze()
    return gc.get_freeze_count()


class GcPauses:
    """Every garbage collection of this process while installed: count, total and longest
    pause per generation (0, 1, 2), and each pause into :data:`PAUSE_BUCKETS_S`."""

    GENERATIONS = (0, 1, 2)

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._started: float | None = None
        self.count = [0, 0, 0]
        self.total_s = [0.0, 0.0, 0.0]
        self.max_s = [0.0, 0.0, 0.0]
        #: Per generation, the pauses counted in each bucket (not cumulative; the last
        #: slot is beyond the largest bound).
        self.buckets = [[0] * (len(PAUSE_BUCKETS_S) + 1) for _ in self.GENERATIONS]
        self._installed = False

    def install(self) -> GcPauses:
        if not self._installed:
            gc.callbacks.append(self._on_gc)
            self._installed = True
        return self

    def uninstall(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._on_gc)
            self._installed = False

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = self._clock()
            return
        started, self._started = self._started, None
        if started is None:  # installed during a collection: its start was not seen
            return
        self.record(int(info["generation"]), self._clock() - started)

    def record(self, generation: int, seconds: float) -> None:
        """One collection of ``generation`` that held the process for ``seconds``."""
        g = min(max(generation, 0), 2)
        seconds = max(seconds, 0.0)
        self.count[g] += 1
        self.total_s[g] += seconds
        if seconds > self.max_s[g]:
            self.max_s[g] = seconds
        self.buckets[g][bisect.bisect_left(PAUSE_BUCKETS_S, seconds)] += 1

    def report(self) -> dict[str, Any]:
        """The log line's fields: per generation, collections, total and longest pause
        (ms), and the objects frozen (``gc.get_freeze_count``)."""
        out: dict[str, Any] = {}
        for g in self.GENERATIONS:
            out[f"gen{g}_collections"] = self.count[g]
            out[f"gen{g}_total_ms"] = round(self.total_s[g] * 1000, 2)
            out[f"gen{g}_max_ms"] = round(self.max_s[g] * 1000, 2)
        out["frozen_objects"] = gc.get_freeze_count()
        return out
