"""The erasure sweep's schedule (node/retention/serve.py): due one interval after the start
and after each sweep, on the sweep's clock; a clock stepped forward makes it due at once,
one stepped back delays it by at most one interval."""

from __future__ import annotations

from node.retention.serve import SweepSchedule
from node.retention.settings import DAY_MS


def test_due_one_interval_after_the_start_and_after_each_sweep() -> None:
    s = SweepSchedule.starting(1_000, interval_s=60)
    assert [s.due(t) for t in (1_000, 60_999, 61_000)] == [False, False, True]
    s.swept(61_500)  # the sweep began a little late: the next counts from then
    assert [s.due(t) for t in (61_500, 121_499, 121_500)] == [False, False, True]


def test_a_clock_stepped_forward_makes_it_due_at_once() -> None:
    s = SweepSchedule.starting(1_000, interval_s=3600)
    assert s.due(1_000 + 1200 * DAY_MS) is True


def test_a_clock_stepped_back_delays_it_by_one_interval_at_most() -> None:
    s = SweepSchedule.starting(1_000_000, interval_s=60)
    assert s.due(900_000) is False           # stepped back 100 s: counted again from here
    assert (s.due(959_999), s.due(960_000)) == (False, True)
    t = SweepSchedule.starting(1_000_000, interval_s=60)
    assert (t.due(990_000), t.due(1_049_999), t.due(1_050_000)) == (False, False, True)
    u = SweepSchedule.starting(1_000_000, interval_s=60)  # a reading within the interval
    assert (u.due(1_030_000), u.due(1_059_999), u.due(1_060_000)) == (False, False, True)


def test_the_job_sleeps_a_tick_or_until_due_whichever_is_sooner() -> None:
    s = SweepSchedule.starting(0, interval_s=60)
    assert s.wait_s(0, tick_s=1.0) == 1.0
    assert s.wait_s(59_750, tick_s=1.0) == 0.25
    assert s.wait_s(61_000, tick_s=1.0) == 0.0
