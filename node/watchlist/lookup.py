"""Answering lookups against this node's own watchlist.

Documents are looked up exactly (number, issuing state, type) in the
encrypted store.  Persons go through a :class:`PersonMatcher` (an in-memory
index); a person the index finds is confirmed against the store before it counts
as a hit, so an alert withdrawn or changed elsewhere never hits from a stale
index.  Expired records never hit.

Following the watchlist (through this process or any other replica): every lookup
that holds a person reads the store's generation first (one indexed read) and, when it
moved, :meth:`Watchlist.follow` brings the index to it:

* **a delta** (the usual case: an alert added, updated or withdrawn, a sync, a delta
  feed): the store's change feed (``node/store/watchlist_feed.py``) names the persons
  the new generations changed; only those are removed, replaced or added, on the
  database thread, before the lookup is matched — so a person added on any replica hits
  from the first lookup after its commit, and nothing waits for a rebuild;
* **a full rebuild** when the feed cannot say (a bulk import of more than its limit, a
  replica further behind than the feed keeps, more than ``max_delta`` persons): with
  ``open_reader`` (``bxnode serve``) the new index is built on a thread of its own from a
  connection of its own, while lookups keep the old one; it is brought to the current
  generation by a delta and swapped in on the database thread.  Until the swap the old
  index may lack persons the unknown change added, so it answers only what it can
  prove: a hit (confirmed in the store, as always) is answered, a *no hit* is refused
  ``UNAVAILABLE/person_index_rebuilding`` (retry), never claimed.  Without
  ``open_reader`` (the CLI, tests) the rebuild runs at once, as at start-up.

:attr:`Watchlist.stats` counts deltas and rebuilds (observable in tests and the
``person_index_*`` log lines).

Read before the lock (:meth:`Watchlist.preread`): a lookup of documents alone may be read
just before its batch's transaction opens, outside the writers' lock (issue 16: the
serial section), and answered from that read only if the store's generation is still the
one read *before* those rows -- every change of documents, persons or their sources
bumps it in the change's own transaction (node/watchlist/lifecycle.py, importer.py,
node/retention/sweep.py), so an unchanged generation means nothing the read saw has
changed since.  Otherwise the lookup is read again inside the lock, as before.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from node.core.errors import EnvironmentFault
from node.core.model import (
    ActionCode,
    DocumentQuery,
    ItemResult,
    Outcome,
    PartialDate,
    PersonQuery,
    Query,
    Sex,
)
from node.core.ports import WatchlistStore
from node.logging import unexpected

__all__ = ["DISCLOSABLE_FIELDS", "IndexStats", "PersonMatcher", "Preread", "Watchlist",
           "WatchlistHit"]

log = structlog.get_logger("bxnode.watchlist")

#: The most persons a delta may change for it to be applied on the lookup path (about
#: 15 µs each); a larger change is followed by a full rebuild.
DEFAULT_MAX_DELTA = 20_000

#: Fields of a hit that policy may disclose (the first step of Prüm's two steps).
#: ``source_agency``: the agency of our country the alert came from (issue 13), read from
#: the store only for hits, and only when policy discloses it.
DISCLOSABLE_FIELDS = frozenset({"reference", "action", "contact", "source_agency"})

#: When two live records hit, the most severe action wins.
_SEVERITY = {a: i for i, a in enumerate([ActionCode.ARREST, ActionCode.REFUSE_ENTRY,
                                         ActionCode.SEIZE_DOCUMENT, ActionCode.INFORM,
                                         ActionCode.MONITOR])}


@dataclass(frozen=True, slots=True)
class WatchlistHit:
    reference: str
    action: ActionCode
    contact: str


_ACTIONS = {a.value: a for a in ActionCode}


def _action(code: str) -> ActionCode:
    """A stored action code as the enum (a dict read; an unknown code raises as the enum
    does)."""
    found = _ACTIONS.get(code)
    return found if found is not None else ActionCode(code)


class PersonMatcher(Protocol):
    def rebuild(self, records: list[tuple[str, PersonQuery]]) -> None: ...

    def add(self, ref: str, person: PersonQuery) -> None:
        """Index ``person`` under ``ref``, replacing what was there."""
        ...

    def remove(self, ref: str) -> None:
        """Forget ``ref`` (nothing when it is not indexed)."""
        ...

    def empty(self) -> PersonMatcher:
        """A new, empty matcher with the same settings."""
        ...

    def search(self, query: PersonQuery, *, threshold: float | None = None,
               max_candidates: int | None = None) -> list[str]:
        """Owner references of the records that match, best first (policy may set how
        strictly: the score needed and the number of candidates considered)."""
        ...


@dataclass(slots=True)
class IndexStats:
    """How the person index followed the watchlist (read them; the index writes them)."""

    #: Full rebuilds: at once (start-up, no ``open_reader``) and swapped in from a thread.
    rebuilds: int = 0
    background_rebuilds: int = 0
    #: Deltas applied, and the persons they changed in all.
    deltas: int = 0
    delta_persons: int = 0
    #: Lookups whose "no hit" was refused while the index was incomplete.
    refused_incomplete: int = 0


@dataclass(slots=True)
class _Build:
    """A full rebuild running on its own thread: the generation its snapshot started at,
    the matcher and rows it built, or the error it failed with."""

    done: threading.Event = field(default_factory=threading.Event)
    generation: str | None = None
    matcher: PersonMatcher | None = None
    persons: dict[str, tuple[str, ...]] = field(default_factory=dict)
    error: BaseException | None = None


def person_from_row(row: tuple[str, ...]) -> PersonQuery:
    return PersonQuery(family_name=row[1], given_names=row[2], patronymic=row[3],
                       date_of_birth=PartialDate.parse(row[4]), nationality=row[5],
                       sex=Sex(row[6]))


def _read_persons(store: WatchlistStore, today: dt.date) -> tuple[
        list[tuple[str, PersonQuery]], dict[str, tuple[str, ...]]]:
    records: list[tuple[str, PersonQuery]] = []
    persons: dict[str, tuple[str, ...]] = {}
    for row in store.iter_persons(today.isoformat()):
        records.append((row[0], person_from_row(row)))
        persons[row[0]] = row
    return records, persons


def _apply(matcher: PersonMatcher, persons: dict[str, tuple[str, ...]],
           changes: Mapping[str, tuple[str, ...] | None]) -> None:
    """A delta: each changed person removed (None), replaced or added; a change that
    leaves the matched fields as they were (action, contact, expiry) only updates the row
    the store confirms hits against."""
    for ref, row in changes.items():
        old = persons.get(ref)
        if row is None:
            if old is not None:
                matcher.remove(ref)
                del persons[ref]
        else:
            if old is None or old[1:7] != row[1:7]:
                matcher.add(ref, person_from_row(row))
            persons[ref] = row


@dataclass(frozen=True, slots=True)
class Preread:
    """A lookup's documents read before the lock (:meth:`Watchlist.preread`)."""

    generation: str | None
    hits: tuple[WatchlistHit | None, ...]
    #: The hits' sources; None when they were not read (the decision the read was made
    #: for did not disclose them): read under the lock if the answer's decision does.
    sources: Mapping[str, str] | None


class Watchlist:
    def __init__(self, *, store: WatchlistStore, matcher: PersonMatcher,
                 default_contact: str,
                 open_reader: Callable[[], AbstractContextManager[WatchlistStore]] | None = None,
                 max_delta: int = DEFAULT_MAX_DELTA) -> None:
        """``open_reader`` opens a store on a connection of its own, for a full rebuild on
        another thread (None: rebuild at once, on the caller's thread)."""
        self._store = store
        self._matcher = matcher
        self._default_contact = default_contact
        self._open_reader = open_reader
        self._max_delta = max_delta
        self._persons: dict[str, tuple[str, ...]] = {}
        self._generation: str | None = None
        #: The index lacks what an unknown change added: a no-hit is not answered.
        self._incomplete = False
        self._build: _Build | None = None
        self.stats = IndexStats()
        #: Called (no arguments, on the thread that swapped it in) once a full rebuild's
        #: index is in use: ``bxnode serve`` freezes it out of the garbage collector's way
        #: (node/server/heap.py), as it froze the index it started with.
        self.on_rebuilt: Callable[[], None] | None = None

    def reload(self, today: dt.date) -> int:
        """Rebuild the person index from the store at once; returns how many live persons
        it holds."""
        generation = self._store.generation()
        records, persons = _read_persons(self._store, today)
        self._matcher.rebuild(records)
        self._persons, self._generation = persons, generation
        self._incomplete = False
        self.stats.rebuilds += 1
        log.info("person_index_rebuilt", persons=len(records), generation=generation,
                 background=False)
        self._rebuilt()
        return len(records)

    def _rebuilt(self) -> None:
        hook = self.on_rebuilt
        if hook is None:
            return
        try:
            hook()
        except Exception as exc:  # the index is in use either way
            log.error("person_index_rebuilt_hook_failed", **unexpected(exc))

    def stale(self) -> bool:
        """Has the watchlist changed since the index was built (through any replica)?"""
        return self._store.generation() != self._generation

    @property
    def complete(self) -> bool:
        """False while a full rebuild is pending: the index may lack added persons."""
        return not self._incomplete

    def follow(self, today: dt.date) -> None:
        """Bring the person index to the store's generation (see the module doc): a delta
        when the change feed names the changes, else a full rebuild."""
        generation = self._store.generation()
        if self._build is not None and self._build.done.is_set():
            self._finish_build(today, generation)
        if generation == self._generation or self._incomplete:
            return  # current, or an unknown change: the rebuild running brings it along
        changes = self._store.person_changes(self._generation, generation,
                                             today.isoformat())
        if changes is None or len(changes) > self._max_delta:
            self._rebuild(today)
            return
        _apply(self._matcher, self._persons, changes)
        self._generation = generation
        self.stats.deltas += 1
        self.stats.delta_persons += len(changes)

    def wait_for_rebuild(self, timeout: float) -> bool:
        """Wait (on a thread other than the database's) until a background rebuild has
        finished building; the next :meth:`follow` swaps it in.  For tests and tools."""
        build = self._build
        return build is None or build.done.wait(timeout)

    def _rebuild(self, today: dt.date) -> None:
        if self._open_reader is None:
            self.reload(today)
            return
        self._incomplete = True
        self._start_build(today)

    def _start_build(self, today: dt.date) -> None:
        build = _Build()
        self._build = build
        log.info("person_index_rebuild_started", generation=self._generation)
        threading.Thread(target=self._run_build, args=(build, today), name="bxnode-index",
                         daemon=True).start()

    def _run_build(self, build: _Build, today: dt.date) -> None:
        """On the rebuild's own thread, with its own connection."""
        assert self._open_reader is not None
        try:
            with self._open_reader() as store:
                # The generation first, then the rows (a snapshot at least as new): whatever
                # changed after it is in the feed from it, applied before the swap.
                build.generation = store.generation()
                records, build.persons = _read_persons(store, today)
            matcher = self._matcher.empty()
            matcher.rebuild(records)
            build.matcher = matcher
        except BaseException as exc:  # reported on the database thread, which falls back
            build.error = exc
        finally:
            build.done.set()

    def _finish_build(self, today: dt.date, generation: str | None) -> None:
        """On the database thread: bring the built index to ``generation`` and swap it in."""
        build, self._build = self._build, None
        assert build is not None
        if build.error is not None or build.matcher is None:
            log.warning("person_index_rebuild_failed", error=type(build.error).__name__,
                        fallback="rebuilt on the database thread")
            self.reload(today)
            return
        changes = {} if build.generation == generation else self._store.person_changes(
            build.generation, generation, today.isoformat())
        if changes is None or len(changes) > self._max_delta:
            self._start_build(today)  # changed too much meanwhile: again, from now
            return
        _apply(build.matcher, build.persons, changes)
        self._matcher, self._persons, self._generation = build.matcher, build.persons, generation
        self._incomplete = False
        self.stats.background_rebuilds += 1
        log.info("person_index_rebuilt", persons=len(build.persons), generation=generation,
                 background=True, caught_up=len(changes))
        self._rebuilt()

    def check_many(self, items: Sequence[Query], today: dt.date,
                   matching: tuple[float, int] | None = None) -> list[WatchlistHit | None]:
        """Every item's hit, in order; all documents are looked up in one statement.
        ``matching`` is (score threshold, max candidates) for persons, from policy."""
        keys = [(q.number, q.issuing_state, q.doc_type) if isinstance(q, DocumentQuery)
                else None for q in items]
        docs = [k for k in keys if k is not None]
        found = self._store.find_documents_many(docs, today.isoformat()) if docs else {}
        if len(docs) < len(items):  # changed through any replica: follow
            self.follow(today)
        out: list[WatchlistHit | None] = []
        default, best = self._default_contact, self._best
        for q, key in zip(items, keys, strict=True):
            if key is None:
                assert isinstance(q, PersonQuery)
                out.append(self._check_person(q, today, matching))
                continue
            rows = found.get(key)
            if not rows:
                out.append(None)
            elif len(rows) == 1:  # the usual case: one live record
                ref, action, contact = rows[0]
                out.append(WatchlistHit(ref, _action(action), contact or default))
            else:
                out.append(best(rows))
        return out

    def _best(self, rows: list[tuple[str, str, str]]) -> WatchlistHit:
        best = min(rows, key=lambda r: _SEVERITY[_action(r[1])])
        return WatchlistHit(best[0], _action(best[1]), best[2] or self._default_contact)

    def _check_person(self, q: PersonQuery, today: dt.date,
                      matching: tuple[float, int] | None = None) -> WatchlistHit | None:
        hit = self._match_person(q, today, matching)
        if hit is None and self._incomplete:
            self.stats.refused_incomplete += 1
            raise EnvironmentFault("the person index is being rebuilt after a change too "
                                   "large to follow; a no-hit cannot be answered yet, retry",
                                   reason="person_index_rebuilding")
        return hit

    def _match_person(self, q: PersonQuery, today: dt.date,
                      matching: tuple[float, int] | None) -> WatchlistHit | None:
        threshold, limit = matching if matching is not None else (None, None)
        refs = [ref for ref in self._matcher.search(q, threshold=threshold,
                                                   max_candidates=limit)
                if ref in self._persons and self._persons[ref][9] >= today.isoformat()]
        if not refs:
            return None
        live = self._store.live_persons(refs, today.isoformat())  # confirm in the store
        for ref in refs:
            row = live.get(ref)
            if row is None or row != self._persons[ref]:
                continue  # withdrawn or changed since the index was built: no hit from it
            return WatchlistHit(ref, _action(row[7]), row[8] or self._default_contact)
        return None

    def preread(self, items: Sequence[Query], today: dt.date, *,
                with_sources: bool) -> Preread | None:
        """Every item's hit (and, ``with_sources``, the hits' sources), read outside any
        transaction, with the generation they were read at (see the module doc); None
        unless every item is a document (a person goes through the index, which follows
        the store on the database thread).  The generation is read first, so the rows are
        at least as new as it: a change committed in between moves it, and the read is not
        used."""
        if not items or not all(isinstance(q, DocumentQuery) for q in items):
            return None
        generation = self._store.generation()
        hits = self.check_many(items, today)
        return Preread(generation, tuple(hits), self.sources_of(hits) if with_sources else None)

    def unchanged_since(self, read: Preread) -> bool:
        """Is the store still at the generation ``read`` was read at?  (Inside the lock:
        then the read is what reading again would give.)"""
        return self._store.generation() == read.generation

    def sources_of(self, hits: Sequence[WatchlistHit | None]) -> dict[str, str]:
        """The source agency of each hit's alert, by reference (one read for all of them;
        an alert recorded without a source is absent)."""
        refs = [h.reference for h in hits if h is not None]
        return self._store.sources_of(refs) if refs else {}

    @staticmethod
    def disclose_all(hits: Sequence[WatchlistHit | None], fields: frozenset[str],
                     sources: Mapping[str, str] | None = None) -> tuple[ItemResult, ...]:
        """Every item's result, in order: only the fields policy allows leave the node (the
        outcome always does).  What is disclosed is decided once for the whole batch;
        ``sources`` (from :meth:`sources_of`) is read only where ``source_agency`` is."""
        ref_on, action_on = "reference" in fields, "action" in fields
        contact_on = "contact" in fields
        src = sources if sources is not None and "source_agency" in fields else None
        hit_, no_hit = Outcome.HIT, Outcome.NO_HIT
        # positional (index, outcome, reference, action, contact, source_agency): a batch
        # builds hundreds, and keywords cost a fifth more
        return tuple(
            ItemResult(i, no_hit) if h is None else ItemResult(
                i, hit_, h.reference if ref_on else "", h.action if action_on else None,
                h.contact if contact_on else "",
                src.get(h.reference, "") if src is not None else "")
            for i, h in enumerate(hits))
