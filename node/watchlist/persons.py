"""Person matching behind the :class:`~node.watchlist.lookup.PersonMatcher` interface."""

from __future__ import annotations

import unicodedata

from node.core.model import PersonQuery

__all__ = ["ExactNameMatcher", "default_matcher"]


def _fold(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalpha())


class ExactNameMatcher:
    """Matches on folded family + given names, compatible date of birth and nationality."""

    def __init__(self) -> None:
        self._by_name: dict[tuple[str, str], list[tuple[str, PersonQuery]]] = {}

    def rebuild(self, records: list[tuple[str, PersonQuery]]) -> None:
        index: dict[tuple[str, str], list[tuple[str, PersonQuery]]] = {}
        for ref, p in records:
            index.setdefault((_fold(p.family_name), _fold(p.given_names)), []).append((ref, p))
        self._by_name = index

    def search(self, query: PersonQuery) -> list[str]:
        found = self._by_name.get((_fold(query.family_name), _fold(query.given_names)), [])
        return [ref for ref, p in found
                if p.date_of_birth.compatible(query.date_of_birth)
                and p.nationality == query.nationality]


def default_matcher() -> ExactNameMatcher:
    return ExactNameMatcher()
