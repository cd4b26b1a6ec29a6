"""The serving process's heap: frozen after one collection (no garbage kept), and every
garbage-collection pause counted per generation (node/server/heap.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from node.server.heap import (
    PAUSE_BUCKETS_S,
    GcPauses,
    freeze_long_lived,
    freeze_startup_heap,
)


class _Cyclic:
    def __init__(self) -> None:
        self.me: _Cyclic | None = self


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The test process's heap as it was: nothing left frozen after the test."""
    assert gc.get_freeze_count() == 0
    try:
        yield
    finally:
        gc.unfreeze()


def test_garbage_is_collected_before_the_heap_is_frozen(unfrozen: None) -> None:
    """A reference cycle that is garbage at the freeze is collected first, not frozen for
    ever; what is alive is frozen, and reference counting still frees a frozen object."""
    dead = _Cyclic()
    gone = weakref.ref(dead)
    del dead
    kept = {"index": [1, 2, 3]}
    alive = weakref.ref(kept_obj := _Cyclic())
    frozen = freeze_startup_heap()
    assert gone() is None
    # (the count only falls after the freeze: another thread may free a frozen object)
    assert 0 < gc.get_freeze_count() <= frozen
    assert alive() is kept_obj
    kept_obj.me = None  # no cycle any more: its last reference frees it, frozen or not
    del kept_obj
    assert alive() is None
    assert kept == {"index": [1, 2, 3]}


def test_what_is_built_later_is_frozen_without_a_collection(unfrozen: None) -> None:
    """After a full rebuild of the person index: what lives now is frozen too, at once
    (no collection walks it first), and freed by reference counting when replaced."""
    first = freeze_startup_heap()
    gc.disable()  # nothing collects meanwhile: the freeze alone must take the new index
    try:
        index = [[f"P{i}", (i, i + 1)] for i in range(5_000)]
        alive = weakref.ref(marker := _Cyclic())
        marker.me = None
        assert any(o is index for o in gc.get_objects())  # tracked, collectable
        collections = [g["collections"] for g in gc.get_stats()]
        frozen = freeze_long_lived()
        assert [g["collections"] for g in gc.get_stats()] == collections
        assert not any(o is index for o in gc.get_objects())  # frozen: no collection sees it
        assert frozen > first > 0
        del index, marker
        assert alive() is None  # freed by its reference count, frozen or not
    finally:
        gc.enable()


def test_every_collection_is_counted_in_its_generation() -> None:
    pauses = GcPauses().install()
    try:
        gc.collect(2)
        gc.collect(0)
        gc.collect(0)
    finally:
        pauses.uninstall()
    assert pauses.count[2] >= 1 and pauses.count[0] >= 2
    for g in GcPauses.GENERATIONS:
        assert sum(pauses.buckets[g]) == pauses.count[g]
        assert pauses.max_s[g] <= pauses.total_s[g]
    counted = list(pauses.count)
    gc.collect(2)  # uninstalled: no longer counted
    assert pauses.count == counted
    pauses.uninstall()  # twice is harmless
    assert pauses._on_gc not in gc.callbacks


def test_pauses_fall_into_their_buckets_and_the_report_is_exact() -> None:
    """On an injected clock: each pause in the bucket of the first bound at or above it
    (one beyond the last bound: +Inf), the totals and longest per generation, in ms."""
    times = iter([10.0, 10.00005, 20.0, 20.003, 30.0, 30.3, 40.0, 42.0])
    pauses = GcPauses(clock=lambda: next(times))
    for g in (0, 1, 2, 2):
        pauses._on_gc("start", {"generation": g})
        pauses._on_gc("stop", {"generation": g})
    assert pauses.count == [1, 1, 2]
    assert pauses.buckets[0][0] == 1                                       # <= 0.1 ms
    assert pauses.buckets[1][PAUSE_BUCKETS_S.index(0.005)] == 1            # 3 ms
    assert pauses.buckets[2][PAUSE_BUCKETS_S.index(0.5)] == 1              # 300 ms
    assert pauses.buckets[2][len(PAUSE_BUCKETS_S)] == 1                    # 2 s: +Inf
    report = pauses.report()
    assert {k: report[k] for k in report if k != "frozen_objects"} == {
        "gen0_collections": 1, "gen0_total_ms": 0.05, "gen0_max_ms": 0.05,
        "gen1_collections": 1, "gen1_total_ms": 3.0, "gen1_max_ms": 3.0,
        "gen2_collections": 2, "gen2_total_ms": 2300.0, "gen2_max_ms": 2000.0}
    assert report["frozen_objects"] == gc.get_freeze_count()


def test_a_stop_without_its_start_is_not_counted() -> None:
    """Installed while a collection ran: its end alone is not a pause."""
    pauses = GcPauses(clock=lambda: 1.0)
    pauses._on_gc("stop", {"generation": 2})
    assert pauses.count == [0, 0, 0]
