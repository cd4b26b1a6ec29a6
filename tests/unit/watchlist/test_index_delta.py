"""The person index follows the watchlist by delta (node/watchlist/lookup.py, the change
feed of node/store/watchlist_feed.py), on the memory adapter, SQLCipher and PostgreSQL.

Each change is made the way the alert lifecycle makes it (rows written or deleted, then
the generation bumped under the ``watchlist`` lock, in one transaction), and the index is
checked by what it answers and by its counters (``Watchlist.stats``), never by timing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.core.errors import EnvironmentFault
from node.core.model import PartialDate, PersonQuery, Sex
from node.core.ports import UnitOfWork, WatchlistStore
from node.store.db import Database
from node.store.memory import MemoryUnitOfWork, MemoryWatchlistStore
from node.store.watchlist import SqlWatchlistStore
from node.store.watchlist_feed import FEED_KEEP_GENERATIONS, FEED_MAX_REFS
from node.watchlist.lookup import Watchlist
from node.watchlist.persons import default_matcher

TODAY = dt.date(2026, 7, 1)


def person(ref: str, family: str, given: str, dob: str = "1980-04-02", *,
           action: str = "arrest", expires: str = "2030-01-01") -> tuple[str, ...]:
    return (ref, family, given, "", dob, "KAZ", "M", action, "", expires)


def query(family: str, given: str, dob: str = "1980-04-02") -> PersonQuery:
    return PersonQuery(family_name=family, given_names=given,
                       date_of_birth=PartialDate.parse(dob), nationality="KAZ", sex=Sex("M"))


YUSUPOV = person("KZ-W-1", "YUSUPOV", "RUSTAM")
AKHMETOV = person("KZ-W-2", "AKHMETOV", "NURLAN", "1975-11-30")
BAKIROVA = person("KZ-W-3", "BAKIROVA", "AIGUL", "1990-02-14")
#: Twenty persons no two of whom match each other.
NAMES = [("SADYKOV", "TIMUR"), ("OMAROVA", "DINARA"), ("KENZHEBEK", "ASKAR"),
         ("TOKTOGULOV", "EMIL"), ("MUSAEVA", "ZARINA"), ("IBRAGIMOV", "FARRUKH"),
         ("DZHUMAEV", "BEKZOD"), ("ISMAILOVA", "GULNARA"), ("RAKHIMOV", "SHERZOD"),
         ("NURMATOVA", "MADINA"), ("KARIMOV", "ULUGBEK"), ("ABDULLAEVA", "NILUFAR"),
         ("SULTANOV", "DAMIR"), ("ZHUNUSOVA", "AIZHAN"), ("ERGASHEV", "JASUR"),
         ("BEKMURATOV", "YERLAN"), ("TASHKENBAEVA", "SAULE"), ("MAMYTOV", "KUBAT"),
         ("OSMONOVA", "CHOLPON"), ("YULDASHEV", "OTABEK")]


@dataclass
class Backend:
    """A watchlist store and the unit of work its changes run in."""

    name: str
    uow: UnitOfWork
    store: Any  # SqlWatchlistStore | MemoryWatchlistStore
    db: Database | None = None

    def change(self, *, put: Sequence[tuple[str, ...]] = (), delete: Sequence[str] = (),
               bumps: int = 1) -> None:
        """One change, as node/watchlist/lifecycle.py makes it: delete (an update deletes
        first), write, bump the generation under the watchlist lock."""
        with self.uow.transaction():
            for ref in delete:
                self.store.delete_ref(ref)
            if put:
                self.store.insert_persons(list(put))
            self.uow.lock("watchlist")
            for _ in range(bumps):
                self.store.bump_generation(str(int(self.store.generation() or "0") + 1))

    def reader(self) -> contextlib.AbstractContextManager[WatchlistStore]:
        """A store on a connection of its own, as bxnode serve gives the rebuild thread."""
        if self.db is None:
            return contextlib.nullcontext(self.store)
        return _sibling(self.db)


@contextlib.contextmanager
def _sibling(db: Database) -> Iterator[WatchlistStore]:
    from node.store.watchlist import sibling_store

    with sibling_store(db) as other:
        yield other


def _open(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> Iterator[Backend]:
    if name == "memory":
        store = MemoryWatchlistStore()
        yield Backend("memory", MemoryUnitOfWork(store), store)
        return
    if name == "sqlcipher":
        from node.store.sqlcipher import Store

        db: Database = Store.open(tmp_path / "node.db", bytes(range(100, 132)), create=True)
        yield Backend("sqlcipher", db, SqlWatchlistStore(db), db)
        db.close()
        return
    # As tests/unit/store/conftest.py's any_db: a fresh, migrated database with its codec.
    from node.store.fieldcrypt import KeyedCodec
    from node.store.postgresql import PgPool
    from node.store.postgresql.migrate import migrate

    cluster = request.getfixturevalue("pg_cluster")
    dsn = request.getfixturevalue("pg_dsn")
    pool = PgPool.open(dsn=dsn, password=cluster.password,
                       codec=KeyedCodec.from_key(bytes(range(32))), max_size=3, timeout_s=5.0,
                       check_schema=False)
    database = pool.database()
    migrate(database)
    yield Backend("postgresql", database, SqlWatchlistStore(database), database)
    database.close()
    pool.close()


@pytest.fixture(params=["memory", "sqlcipher", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from _open(request, tmp_path, request.param)


@pytest.fixture(params=["sqlcipher", "postgresql"])
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from _open(request, tmp_path, request.param)


@pytest.fixture
def pg_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from _open(request, tmp_path, "postgresql")


def watchlist(b: Backend, **kwargs: Any) -> Watchlist:
    wl = Watchlist(store=b.store, matcher=default_matcher(), default_contact="desk@kaz",
                   **kwargs)
    wl.reload(TODAY)
    return wl


def hit(wl: Watchlist, q: PersonQuery) -> str | None:
    [found] = wl.check_many([q], TODAY)
    return None if found is None else found.reference


def test_an_added_person_hits_at_once_through_a_delta(backend: Backend) -> None:
    backend.change(put=[YUSUPOV])
    wl = watchlist(backend)
    assert wl.stats.rebuilds == 1
    backend.change(put=[AKHMETOV])
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) == "KZ-W-2"
    assert hit(wl, query("ЮСУПОВ", "РУСТАМ")) == "KZ-W-1"  # the rest is still there
    assert (wl.stats.rebuilds, wl.stats.deltas, wl.stats.delta_persons) == (1, 1, 1)


def test_an_update_that_changes_names_moves_the_person(backend: Backend) -> None:
    backend.change(put=[YUSUPOV])
    wl = watchlist(backend)
    renamed = person("KZ-W-1", "BAKIROVA", "AIGUL", "1990-02-14", action="inform")
    backend.change(delete=["KZ-W-1"], put=[renamed])
    assert hit(wl, query("YUSUPOV", "RUSTAM")) is None
    [found] = wl.check_many([query("BAKIROVA", "AIGUL", "1990-02-14")], TODAY)
    assert found is not None and (found.reference, found.action.value) == ("KZ-W-1", "inform")
    assert (wl.stats.rebuilds, wl.stats.deltas) == (1, 1)


def test_a_change_of_action_only_is_answered_with_the_new_action(backend: Backend) -> None:
    backend.change(put=[YUSUPOV])
    wl = watchlist(backend)
    backend.change(delete=["KZ-W-1"], put=[person("KZ-W-1", "YUSUPOV", "RUSTAM",
                                                  action="monitor")])
    [found] = wl.check_many([query("YUSUPOV", "RUSTAM")], TODAY)
    assert found is not None and found.action.value == "monitor"
    assert (wl.stats.rebuilds, wl.stats.deltas) == (1, 1)


def test_a_withdrawn_person_leaves_the_index(backend: Backend) -> None:
    backend.change(put=[YUSUPOV, AKHMETOV])
    wl = watchlist(backend)
    backend.change(delete=["KZ-W-1"])
    assert hit(wl, query("YUSUPOV", "RUSTAM")) is None
    assert wl._matcher.search(query("YUSUPOV", "RUSTAM")) == []  # gone, not just unconfirmed
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) == "KZ-W-2"
    assert (wl.stats.rebuilds, wl.stats.deltas) == (1, 1)


def test_many_changes_over_several_generations_apply_as_one_delta(backend: Backend) -> None:
    backend.change(put=[YUSUPOV, AKHMETOV])
    wl = watchlist(backend)
    added = [person(f"KZ-N-{i}", name, given, f"{1950 + i}-01-01")
             for i, (name, given) in enumerate(NAMES)]
    backend.change(put=added[:10])
    backend.change(delete=["KZ-W-1"])
    backend.change(put=added[10:], delete=["KZ-W-2"])
    backend.change(delete=["KZ-N-3"])
    backend.change(put=[BAKIROVA])
    assert hit(wl, query(*NAMES[0], "1950-01-01")) == "KZ-N-0"
    assert hit(wl, query(*NAMES[19], "1969-01-01")) == "KZ-N-19"
    assert hit(wl, query(*NAMES[3], "1953-01-01")) is None
    assert hit(wl, query("YUSUPOV", "RUSTAM")) is None
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) is None
    assert hit(wl, query("BAKIROVA", "AIGUL", "1990-02-14")) == "KZ-W-3"
    assert (wl.stats.rebuilds, wl.stats.deltas, wl.stats.delta_persons) == (1, 1, 23)
    assert len(wl._persons) == 20


def test_a_replica_behind_more_than_the_feed_keeps_rebuilds(backend: Backend) -> None:
    if backend.name == "memory":
        backend.store.keep = 4
    keep = 4 if backend.name == "memory" else FEED_KEEP_GENERATIONS
    backend.change(put=[YUSUPOV])
    wl = watchlist(backend)
    backend.change(put=[AKHMETOV])
    backend.change(bumps=keep)  # the generation that added AKHMETOV is pruned
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) == "KZ-W-2"
    assert (wl.stats.rebuilds, wl.stats.deltas) == (2, 0)
    backend.change(put=[BAKIROVA])  # and follows by delta again
    assert hit(wl, query("BAKIROVA", "AIGUL", "1990-02-14")) == "KZ-W-3"
    assert (wl.stats.rebuilds, wl.stats.deltas) == (2, 1)


def test_one_generation_behind_the_limit_is_still_a_delta(backend: Backend) -> None:
    if backend.name == "memory":
        backend.store.keep = 4
    keep = 4 if backend.name == "memory" else FEED_KEEP_GENERATIONS
    backend.change(put=[YUSUPOV])
    wl = watchlist(backend)
    backend.change(put=[AKHMETOV])
    backend.change(bumps=keep - 1)
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) == "KZ-W-2"
    assert (wl.stats.rebuilds, wl.stats.deltas, wl.stats.delta_persons) == (1, 1, 1)


def test_too_many_persons_in_one_generation_means_a_full_rebuild(backend: Backend) -> None:
    limit = FEED_MAX_REFS
    if backend.name == "memory":
        backend.store.max_refs = limit = 5
    backend.change(put=[YUSUPOV])
    wl = watchlist(backend)
    bulk = [person(f"KZ-B-{i}", "ZHANABERGENOV", "ARMAN", "1970-01-01") for i in range(limit)]
    bulk.append(AKHMETOV)  # one past the limit
    backend.change(put=bulk)
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) == "KZ-W-2"
    assert (wl.stats.rebuilds, wl.stats.deltas) == (2, 0)


def test_a_bulk_written_in_chunks_is_counted_as_one_change(sql_backend: Backend) -> None:
    """The importer writes in chunks, each under the limit: together they are one change,
    too many to list, and the feed keeps one row for them, not thousands."""
    b = sql_backend
    b.change(put=[YUSUPOV])
    wl = watchlist(b)
    half = FEED_MAX_REFS // 2 + 1
    with b.uow.transaction():
        for part in range(2):
            b.store.insert_persons([person(f"KZ-B-{part}-{i}", "ZHANABERGENOV", "ARMAN",
                                           "1970-01-01") for i in range(half)])
        b.store.insert_persons([AKHMETOV])
        b.uow.lock("watchlist")
        b.store.bump_generation("2")
    assert b.db is not None
    assert b.db.query("SELECT generation, refs FROM watchlist_feed_generations "
                      "ORDER BY generation") == [(1, 1), (2, -1)]
    assert b.db.query("SELECT count(*) FROM watchlist_feed WHERE generation = 2") == [(0,)]
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) == "KZ-W-2"
    assert (wl.stats.rebuilds, wl.stats.deltas) == (2, 0)


def test_a_delta_larger_than_max_delta_means_a_full_rebuild(backend: Backend) -> None:
    backend.change(put=[YUSUPOV])
    wl = watchlist(backend, max_delta=2)
    backend.change(put=[AKHMETOV, BAKIROVA])
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) == "KZ-W-2"
    assert (wl.stats.rebuilds, wl.stats.deltas) == (1, 1)
    backend.change(delete=["KZ-W-1", "KZ-W-2", "KZ-W-3"])
    assert hit(wl, query("BAKIROVA", "AIGUL", "1990-02-14")) is None
    assert (wl.stats.rebuilds, wl.stats.deltas) == (2, 1)


def test_a_rolled_back_change_leaves_nothing_in_the_feed(backend: Backend) -> None:
    backend.change(put=[YUSUPOV])
    wl = watchlist(backend)
    with pytest.raises(RuntimeError), backend.uow.transaction():
        backend.store.insert_persons([AKHMETOV])
        backend.store.delete_ref("KZ-W-1")
        raise RuntimeError("refused")
    backend.change(put=[BAKIROVA])
    gen = backend.store.generation()
    assert backend.store.person_changes("1", gen, TODAY.isoformat()) == {"KZ-W-3": BAKIROVA}
    assert hit(wl, query("YUSUPOV", "RUSTAM")) == "KZ-W-1"
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) is None


def test_a_generation_bumped_without_the_feed_is_not_trusted(sql_backend: Backend) -> None:
    """A generation nothing recorded (an older bxnode, a copy, a restored file) says
    nothing about what changed: the index rebuilds rather than miss a person."""
    backend = sql_backend
    backend.change(put=[YUSUPOV])
    wl = watchlist(backend)
    db = backend.db
    assert db is not None  # a SQL backend
    with db.transaction():
        backend.store.insert_persons([AKHMETOV])
        db.set_meta("watchlist_generation", "2")  # as an older importer did
    assert backend.store.person_changes("1", "2", TODAY.isoformat()) is None
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) == "KZ-W-2"
    assert (wl.stats.rebuilds, wl.stats.deltas) == (2, 0)


class GatedReader:
    """Test stand-in around the real reader: the rebuild thread's store, opened only when
    the test opens the gate, so the test decides what changes while the index is built."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.gate = threading.Event()
        self.opened = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[WatchlistStore]:
        assert self.gate.wait(10)
        self.opened += 1
        with self.backend.reader() as store:
            yield store


def test_a_full_rebuild_runs_off_the_lookup_thread_and_catches_up_before_the_swap(
        backend: Backend) -> None:
    if backend.name == "memory":
        backend.store.max_refs = 5
    backend.change(put=[YUSUPOV])
    reader = GatedReader(backend)
    wl = watchlist(backend, open_reader=reader)
    bulk = [person(f"KZ-B-{i}", f"ZHANABERGEN{chr(65 + i % 26)}", "ARMAN", "1970-01-01")
            for i in range(backend.store.max_refs + 1 if backend.name == "memory"
                           else FEED_MAX_REFS + 1)]
    backend.change(put=bulk)  # too many to list: the index cannot follow by delta
    # While it is rebuilt: a hit is still answered (confirmed in the store) ...
    assert hit(wl, query("YUSUPOV", "RUSTAM")) == "KZ-W-1"
    assert not wl.complete
    # ... but a no-hit is never claimed from an index that may lack the bulk's persons.
    with pytest.raises(EnvironmentFault) as err:
        hit(wl, query("ZHANABERGENA", "ARMAN", "1970-01-01"))
    assert (err.value.status, err.value.reason) == ("UNAVAILABLE", "person_index_rebuilding")
    assert wl.stats.refused_incomplete == 1
    # A person added while the rebuild reads its snapshot must hit after the swap: the
    # delta from the snapshot's generation is applied to the new index before it is used.
    reader.gate.set()
    assert wl.wait_for_rebuild(30)
    backend.change(put=[AKHMETOV], delete=["KZ-W-1"])
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) == "KZ-W-2"
    assert wl.complete
    assert hit(wl, query("ZHANABERGENA", "ARMAN", "1970-01-01")) == "KZ-B-0"
    assert hit(wl, query("YUSUPOV", "RUSTAM")) is None
    assert (wl.stats.rebuilds, wl.stats.background_rebuilds, reader.opened) == (1, 1, 1)
    backend.change(put=[BAKIROVA])  # and deltas again
    assert hit(wl, query("BAKIROVA", "AIGUL", "1990-02-14")) == "KZ-W-3"
    assert (wl.stats.rebuilds, wl.stats.background_rebuilds, wl.stats.deltas) == (1, 1, 1)


def test_a_change_between_the_snapshot_generation_and_the_rows_is_not_lost() -> None:
    """The rebuild reads the generation first and the rows after: a person added in
    between is in the rows and in the delta; applying both gives that person once."""
    store = MemoryWatchlistStore()
    b = Backend("memory", MemoryUnitOfWork(store), store)
    b.change(put=[YUSUPOV])
    raced: list[str | None] = []

    def generation() -> str | None:
        g = store.generation()
        if not raced:
            raced.append(g)
            b.change(put=[AKHMETOV])  # committed after the snapshot's generation was read
        return g

    @contextlib.contextmanager
    def racing() -> Iterator[WatchlistStore]:
        """Test stand-in: the real memory store, with a change committed just after the
        rebuild reads its generation."""
        yield _Proxy(store, generation=generation)

    wl = watchlist(b, open_reader=racing)
    store.max_refs = 1
    b.change(put=[BAKIROVA, person("KZ-W-4", "OMAROVA", "DINARA", "1951-01-01")])
    wl.follow(TODAY)  # too many to list: the rebuild starts
    assert wl.wait_for_rebuild(10)
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) == "KZ-W-2"
    assert wl.complete and wl.stats.background_rebuilds == 1 and raced == ["2"]
    assert wl.stats.deltas == 0  # the catch-up is part of the rebuild
    assert hit(wl, query("BAKIROVA", "AIGUL", "1990-02-14")) == "KZ-W-3"
    assert sorted(wl._persons) == ["KZ-W-1", "KZ-W-2", "KZ-W-3", "KZ-W-4"]


class _Proxy:
    """Test stand-in: a store with some methods replaced, everything else passed on."""

    def __init__(self, inner: Any, **overrides: Any) -> None:
        self._inner, self._overrides = inner, overrides

    def __getattr__(self, name: str) -> Any:
        return self._overrides.get(name) or getattr(self._inner, name)


def test_a_failed_background_rebuild_falls_back_to_rebuilding_at_once() -> None:
    store = MemoryWatchlistStore(max_refs=1)
    b = Backend("memory", MemoryUnitOfWork(store), store)
    b.change(put=[YUSUPOV])
    gate = threading.Event()

    @contextlib.contextmanager
    def broken() -> Iterator[WatchlistStore]:
        """Test stand-in: a reader whose connection cannot be opened (once the gate opens)."""
        assert gate.wait(10)
        raise EnvironmentFault("database unreachable", reason="database_unavailable")
        yield store  # pragma: no cover

    wl = watchlist(b, open_reader=broken)
    b.change(put=[AKHMETOV, BAKIROVA])
    with pytest.raises(EnvironmentFault):  # a no-hit while the rebuild is pending
        hit(wl, query("SADYKOV", "TIMUR", "1960-01-01"))
    gate.set()
    assert wl.wait_for_rebuild(10)
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) == "KZ-W-2"
    assert wl.complete and (wl.stats.rebuilds, wl.stats.background_rebuilds) == (2, 0)
    assert hit(wl, query("SADYKOV", "TIMUR", "1960-01-01")) is None


def test_the_postgresql_feed_holds_no_value_of_the_record(pg_backend: Backend) -> None:
    """No blind index, no plaintext reference, no name: only a fresh ciphertext."""
    backend = pg_backend
    assert backend.db is not None
    backend.change(put=[YUSUPOV])
    backend.change(delete=["KZ-W-1"])
    rows = backend.db.query("SELECT generation, op, sealed FROM watchlist_feed ORDER BY 1")
    assert [(g, op) for g, op, _ in rows] == [(1, "put"), (2, "delete")]
    from node.store._fields import index_text

    blind = index_text(backend.db.codec, "watchlist.owner_ref", "KZ-W-1")
    dump = b"".join(bytes(s) for *_, s in rows)
    assert b"KZ-W-1" not in dump and blind.encode() not in dump and b"YUSUPOV" not in dump
    assert rows[0][2] != rows[1][2]  # the same reference twice: two different ciphertexts


def test_each_full_rebuild_in_use_is_announced_once(backend: Backend) -> None:
    """``on_rebuilt`` (``bxnode serve`` freezes the new index out of the garbage
    collector's way) runs once per full rebuild, once its index answers -- a rebuild at
    once and one in the background, not a delta -- and a hook that fails does not undo the
    rebuild."""
    if backend.name == "memory":
        backend.store.max_refs = 5
    backend.change(put=[YUSUPOV])
    reader = GatedReader(backend)
    wl = watchlist(backend, open_reader=reader)
    calls: list[tuple[bool, int]] = []
    wl.on_rebuilt = lambda: calls.append((wl.complete, len(wl._persons)))
    wl.reload(TODAY)
    assert calls == [(True, 1)]
    backend.change(put=[AKHMETOV])  # a delta: no rebuild
    assert hit(wl, query("AKHMETOV", "NURLAN", "1975-11-30")) == "KZ-W-2"
    assert calls == [(True, 1)]
    bulk = [person(f"KZ-B-{i}", f"ZHANABERGEN{chr(65 + i % 26)}", "ARMAN", "1970-01-01")
            for i in range(backend.store.max_refs + 1 if backend.name == "memory"
                           else FEED_MAX_REFS + 1)]
    backend.change(put=bulk)
    assert hit(wl, query("YUSUPOV", "RUSTAM")) == "KZ-W-1"  # the rebuild starts
    assert calls == [(True, 1)]  # built, not yet in use
    reader.gate.set()
    assert wl.wait_for_rebuild(30)
    assert hit(wl, query("ZHANABERGENA", "ARMAN", "1970-01-01")) == "KZ-B-0"  # swapped in
    assert calls == [(True, 1), (True, 2 + len(bulk))]

    def failing() -> None:
        raise RuntimeError("test: the hook fails")

    wl.on_rebuilt = failing
    assert wl.reload(TODAY) == 2 + len(bulk)
    assert wl.complete and hit(wl, query("YUSUPOV", "RUSTAM")) == "KZ-W-1"
