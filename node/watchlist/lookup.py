"""Answering lookups against this node's own watchlist.

Documents are looked up exactly (number, issuing state, type) in the
encrypted store.  Persons go through a :class:`PersonMatcher` (an in-memory
index rebuilt from the store at start-up and whenever the store's watchlist
generation changes, through this process or any other replica: every lookup that
holds a person reads the generation first, one indexed read); a person the
index finds is confirmed against the store before it counts as a hit, so an
alert withdrawn or changed elsewhere never hits from a stale index.  Expired
records never hit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

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

__all__ = ["DISCLOSABLE_FIELDS", "PersonMatcher", "Watchlist", "WatchlistHit"]

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
    source_agency: str = ""


class PersonMatcher(Protocol):
    def rebuild(self, records: list[tuple[str, PersonQuery]]) -> None: ...

    def search(self, query: PersonQuery, *, threshold: float | None = None,
               max_candidates: int | None = None) -> list[str]:
        """Owner references of the records that match, best first (policy may set how
        strictly: the score needed and the number of candidates considered)."""
        ...


def person_from_row(row: tuple[str, ...]) -> PersonQuery:
    return PersonQuery(family_name=row[1], given_names=row[2], patronymic=row[3],
                       date_of_birth=PartialDate.parse(row[4]), nationality=row[5],
                       sex=Sex(row[6]))


class Watchlist:
    def __init__(self, *, store: WatchlistStore, matcher: PersonMatcher,
                 default_contact: str) -> None:
        self._store = store
        self._matcher = matcher
        self._default_contact = default_contact
        self._persons: dict[str, tuple[str, ...]] = {}
        self._generation: str | None = None

    def reload(self, today: dt.date) -> int:
        """Rebuild the person index from the store; returns how many live persons it holds."""
        generation = self._store.generation()
        records = []
        persons: dict[str, tuple[str, ...]] = {}
        for row in self._store.iter_persons(today.isoformat()):
            records.append((row[0], person_from_row(row)))
            persons[row[0]] = row
        self._matcher.rebuild(records)
        self._persons, self._generation = persons, generation
        return len(records)

    def stale(self) -> bool:
        """Has the watchlist changed since the index was built (through any replica)?"""
        return self._store.generation() != self._generation

    def check_many(self, items: Sequence[Query], today: dt.date,
                   matching: tuple[float, int] | None = None) -> list[WatchlistHit | None]:
        """Every item's hit, in order; all documents are looked up in one statement.
        ``matching`` is (score threshold, max candidates) for persons, from policy."""
        docs = [(q.number, q.issuing_state, q.doc_type) for q in items
                if isinstance(q, DocumentQuery)]
        found = self._store.find_documents_many(docs, today.isoformat()) if docs else {}
        if len(docs) < len(items) and self.stale():  # changed through any replica: follow
            self.reload(today)
        out: list[WatchlistHit | None] = []
        for q in items:
            if isinstance(q, DocumentQuery):
                rows = found.get((q.number, q.issuing_state, q.doc_type))
                out.append(self._best(rows) if rows else None)
            else:
                out.append(self._check_person(q, today, matching))
        return out

    def _best(self, rows: list[tuple[str, str, str]]) -> WatchlistHit:
        best = min(rows, key=lambda r: _SEVERITY[ActionCode(r[1])])
        return WatchlistHit(best[0], ActionCode(best[1]), best[2] or self._default_contact)

    def _check_person(self, q: PersonQuery, today: dt.date,
                      matching: tuple[float, int] | None = None) -> WatchlistHit | None:
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
            return WatchlistHit(ref, ActionCode(row[7]), row[8] or self._default_contact)
        return None

    def with_sources(self, hits: Sequence[WatchlistHit | None]) -> list[WatchlistHit | None]:
        """The hits with their source agency (one read for all of them; an alert recorded
        without a source keeps "")."""
        refs = [h.reference for h in hits if h is not None]
        sources = self._store.sources_of(refs) if refs else {}
        return [None if h is None else replace(h, source_agency=sources.get(h.reference, ""))
                for h in hits]

    @staticmethod
    def disclose(index: int, hit: WatchlistHit | None, fields: frozenset[str]) -> ItemResult:
        """Only the fields policy allows leave the node; the outcome always does."""
        if hit is None:
            return ItemResult(index=index, outcome=Outcome.NO_HIT)
        return ItemResult(
            index=index,
            outcome=Outcome.HIT,
            reference=hit.reference if "reference" in fields else "",
            action=hit.action if "action" in fields else None,
            contact=hit.contact if "contact" in fields else "",
            source_agency=hit.source_agency if "source_agency" in fields else "",
        )
