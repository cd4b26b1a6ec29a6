"""How long one alert change blocks the database thread: a full person-index rebuild
(before the change feed) against a delta (node/store/watchlist_feed.py).

    python -m benchmarks.index_delta               # 1,000,000 persons
    python -m benchmarks.index_delta --smoke       # 20,000 persons, seconds

A real SQLCipher store holds the synthetic persons of benchmarks/matching.py; a Watchlist
indexes them.  Each change is made as node/watchlist/lifecycle.py makes it (rows written
or deleted, the generation bumped under the watchlist lock, one transaction), cycling add,
update (new names) and withdraw; then the time of ``Watchlist.follow`` — what the next
person lookup runs on the database thread — is measured (wall clock and the thread's CPU
time).  "Before" is what that lookup ran until now for any change: ``Watchlist.reload``,
the full rebuild from the store.  Every change is checked to have been followed by a delta
(``stats``) and to hit (or not) as it should.  No figure here is asserted by any test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.matching import SEED, Population
from node.core.model import PartialDate, PersonQuery
from node.store.sqlcipher import Store
from node.store.watchlist import SqlWatchlistStore
from node.watchlist.lookup import Watchlist
from node.watchlist.persons import default_matcher

__all__ = ["run"]

TODAY = dt.date(2026, 7, 1)
_CHUNK = 20_000


def _row(ref: str, p: PersonQuery, action: str = "monitor") -> tuple[str, ...]:
    return (ref, p.family_name, p.given_names, p.patronymic, str(p.date_of_birth),
            p.nationality, p.sex.value, action, "", "2036-01-01")


def _change(db: Store, wl_store: SqlWatchlistStore, *,
            put: Sequence[tuple[str, ...]] = (), delete: Sequence[str] = ()) -> None:
    with db.transaction():
        for ref in delete:
            wl_store.delete_ref(ref)
        if put:
            wl_store.insert_persons(list(put))
        db.lock("watchlist")
        wl_store.bump_generation(str(int(wl_store.generation() or "0") + 1))


def run(persons: int, changes: int = 30) -> dict[str, Any]:
    pop = Population(SEED)
    with tempfile.TemporaryDirectory(prefix="bxnode-index-delta-") as tmp:
        db = Store.open(Path(tmp) / "node.db", bytes(range(32)), create=True)
        try:
            store = SqlWatchlistStore(db)
            t0 = time.perf_counter()
            stream = pop.stream(persons)
            with db.transaction():
                while chunk := [_row(ref, p) for ref, p in
                                (next(stream, (None, None)) for _ in range(_CHUNK))
                                if ref is not None and p is not None]:
                    SqlWatchlistStore(db, record_changes=False).insert_persons(chunk)
                db.lock("watchlist")
                store.bump_generation("1")
            t_load = time.perf_counter() - t0
            wl = Watchlist(store=store, matcher=default_matcher(), default_contact="desk@kaz")
            t0 = time.perf_counter()
            wl.reload(TODAY)
            t_first = time.perf_counter() - t0

            walls: list[float] = []
            cpus: list[float] = []
            fresh = Population(SEED + 7)
            for i in range(changes):
                ref = f"bench-{i // 3}"
                op = ("add", "update", "withdraw")[i % 3]
                new = fresh.render(*fresh.person())
                if op == "add":
                    _change(db, store, put=[_row(ref, new, "arrest")])
                elif op == "update":
                    _change(db, store, delete=[ref], put=[_row(ref, new, "arrest")])
                else:
                    _change(db, store, delete=[ref])
                t0, c0 = time.perf_counter(), time.thread_time()
                wl.follow(TODAY)  # what the next person lookup runs on the database thread
                walls.append(time.perf_counter() - t0)
                cpus.append(time.thread_time() - c0)
                # (a namesake among a million may rank first: look among the candidates)
                indexed = ref in wl._matcher.search(new, max_candidates=100)
                if indexed == (op == "withdraw"):
                    raise SystemExit(f"bench: after {op} of {ref}: indexed is {indexed}")
            if (wl.stats.deltas, wl.stats.rebuilds) != (changes, 1):
                raise SystemExit(f"bench: changes not followed by delta: {wl.stats}")

            _change(db, store, put=[_row("bench-before", PersonQuery(
                family_name="BEFOREOV", given_names="BENCH",
                date_of_birth=PartialDate(1970, 1, 1), nationality="KAZ",
                sex=new.sex))])
            t0, c0 = time.perf_counter(), time.thread_time()
            wl.reload(TODAY)  # before the change feed: every change ran this
            before_wall, before_cpu = time.perf_counter() - t0, time.thread_time() - c0
        finally:
            db.close()
    delta_ms = statistics.median(walls) * 1000
    return {
        "persons": persons, "changes": changes, "load_s": round(t_load, 1),
        "first_build_s": round(t_first, 2),
        "before_full_rebuild_s": round(before_wall, 2),
        "before_full_rebuild_cpu_s": round(before_cpu, 2),
        "after_delta_ms_p50": round(delta_ms, 3),
        "after_delta_ms_max": round(max(walls) * 1000, 3),
        "after_delta_cpu_ms_p50": round(statistics.median(cpus) * 1000, 3),
        "speedup": round(before_wall * 1000 / delta_ms) if delta_ms else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=30)
    ap.add_argument("--smoke", action="store_true", help="20,000 persons")
    args = ap.parse_args()
    print(json.dumps(run(20_000 if args.smoke else args.persons, args.changes), indent=1))


if __name__ == "__main__":
    main()
