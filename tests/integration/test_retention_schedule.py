"""A serving node sweeps by itself on its schedule (issue 13 §2: "``serve`` runs the
erasure sweep on a schedule"), nobody running ``bxnode retention run``.

Two real nodes over mTLS.  KAZ-BS serves with ``[retention] sweep_interval_s = 60`` (the
shortest allowed) and the clock its erasure sweep reads moved by the test
(``build_server(retention_clock_ms=...)``, the node's injected clock) -- never by sleep:
KGZ-BS asks it twice, the clock steps 1200 days on (past every default retention), and
the node's own background job sweeps at its next look at that clock: one
``retention_sweep`` entry, without an operator, whose counts are exactly what the store
shows erased at that time.  One interval later on the same clock, the next sweep.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from node.app import now_ms, open_store
from node.cli.main import main as cli
from node.config import load_config
from node.retention.settings import DAY_MS, RETENTION_KINDS
from node.store.retention import RetentionTables
from tests.federation import Federation, ask_document, make_federation
from tests.waiting import until

pytestmark = pytest.mark.integration

INTERVAL_S = 60


class MovedClock:
    """The node's clock for its erasure sweep: real time plus an offset the test sets."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return now_ms() + self.offset_ms


@pytest.fixture(scope="module")
def sched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Federation, MovedClock]]:
    fed = make_federation(tmp_path_factory.mktemp("sched"), ("KAZ-BS", "KGZ-BS"))
    toml = fed.dirs["KAZ-BS"] / "node.toml"
    toml.write_text(toml.read_text() + f"\n[retention]\nsweep_interval_s = {INTERVAL_S}\n")
    clock = MovedClock()
    fed.start("KAZ-BS", retention_clock_ms=clock)
    fed.start("KGZ-BS")
    yield fed, clock
    fed.stop_all()


def sweeps(fed: Federation) -> list[dict[str, Any]]:
    return [e for e in fed.audit("KAZ-BS") if e.get("event") == "retention_sweep"]


def wait_for_sweeps(fed: Federation, n: int) -> list[dict[str, Any]]:
    """The node's ``retention_sweep`` entries once there are ``n`` (the job looks at its
    clock every second; 30 s is for a loaded machine, not part of any assertion)."""
    def swept() -> list[dict[str, Any]] | None:
        found = sweeps(fed)
        return found if len(found) >= n else None

    return until(f"the serving node's sweep number {n}", swept)


def erased_at(fed: Federation, time_ms: int) -> dict[str, int]:
    """What the store shows erased at ``time_ms``: receipts and audit bodies."""
    store = open_store(load_config(fed.dirs["KAZ-BS"]))
    try:
        receipts = sum(1 for r in RetentionTables(store).all_receipts()
                       if r.erased_ms == time_ms)
        row = store.query_one("SELECT count(*) FROM audit_entries WHERE erased_ms=?",
                              (time_ms,))
        return {"receipts": receipts, "audit_bodies": int(row[0]) if row else -1}
    finally:
        store.close()


def test_a_serving_node_sweeps_on_its_schedule_by_itself(
        sched: tuple[Federation, MovedClock]) -> None:
    fed, clock = sched
    assert [ask_document(fed, "KGZ-BS", "KAZ-BS", n).results[0].outcome.value
            for n in ("N1122334", "Q0000001")] == ["hit", "no_hit"]
    assert sweeps(fed) == []  # started less than an interval ago on its clock

    clock.offset_ms = 1200 * DAY_MS
    [first] = wait_for_sweeps(fed, 1)
    assert first["time_ms"] >= now_ms() - 60_000 + 1200 * DAY_MS  # the moved clock's time
    assert "operator" not in first  # nobody ran it
    assert set(first["erased"]) == set(first["held"]) == set(RETENTION_KINDS)
    assert first["held"] == dict.fromkeys(RETENTION_KINDS, 0)
    on_disk = erased_at(fed, first["time_ms"])
    assert first["erased"]["receipts"] == on_disk["receipts"] >= 2  # both questions' at least
    assert first["erased"]["audit_bodies"] == on_disk["audit_bodies"] > 0
    assert first["retention_days"] == {k: v[1] for k, v in RETENTION_KINDS.items()}

    clock.offset_ms += INTERVAL_S * 1000  # one interval on, on the node's clock
    first_again, second = wait_for_sweeps(fed, 2)
    assert first_again == first
    assert second["time_ms"] - first["time_ms"] >= INTERVAL_S * 1000
    assert second["erased"]["receipts"] == 0  # the first took every one
    assert second["erased"]["audit_bodies"] == erased_at(fed, second["time_ms"])["audit_bodies"]
    # the node still answers, and its log still verifies with the erasures in it
    assert ask_document(fed, "KGZ-BS", "KAZ-BS", "N1122334").results[0].outcome.value == "hit"
    assert cli(["audit", "verify", "--node-dir", str(fed.dirs["KAZ-BS"])]) == 0
