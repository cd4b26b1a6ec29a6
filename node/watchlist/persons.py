"""Person matching behind the :class:`~node.watchlist.lookup.PersonMatcher` interface.

:class:`IndexMatcher` is the node's matcher: the cross-script index of
:mod:`node.matching` (ICAO 9303, national Latin alphabets, BGN/PCGN and older
European spellings; name-order swaps; patronymics; partial dates of birth).
"""

from __future__ import annotations

from node.core.model import PersonQuery
from node.matching import DEFAULT_THRESHOLD, PersonIndex

__all__ = ["IndexMatcher", "default_matcher"]


class IndexMatcher:
    def __init__(self, *, threshold: float = DEFAULT_THRESHOLD, max_candidates: int = 10) -> None:
        self.threshold = threshold
        self.max_candidates = max_candidates
        self._index = PersonIndex()

    def rebuild(self, records: list[tuple[str, PersonQuery]]) -> None:
        index = PersonIndex()
        index.add_many(records)
        self._index = index  # swapped whole: a search never sees a half-built index

    def add(self, ref: str, person: PersonQuery) -> None:
        """Index ``person`` under ``ref``, replacing what was there (a delta)."""
        self._index.add(ref, person)

    def remove(self, ref: str) -> None:
        """Forget ``ref``; nothing when it is not indexed."""
        if ref in self._index:
            self._index.remove(ref)

    def empty(self) -> IndexMatcher:
        """A new, empty matcher with these settings (a full rebuild fills it off the
        database thread while this one keeps answering)."""
        return IndexMatcher(threshold=self.threshold, max_candidates=self.max_candidates)

    def search(self, query: PersonQuery, *, threshold: float | None = None,
               max_candidates: int | None = None) -> list[str]:
        return [c.ref for c in self._index.search(
            query, threshold=self.threshold if threshold is None else threshold,
            max_candidates=self.max_candidates if max_candidates is None else max_candidates,
            explain_why=False)]


def default_matcher(*, threshold: float = DEFAULT_THRESHOLD,
                    max_candidates: int = 10) -> IndexMatcher:
    return IndexMatcher(threshold=threshold, max_candidates=max_candidates)
