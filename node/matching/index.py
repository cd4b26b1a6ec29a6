"""An in-memory person index: blocking keys for retrieval, then the scorer.

Retrieval (sans-I/O, no persistence: the caller rebuilds at start-up):

* pair keys — the blocking codes of a family-name form and a given-name form,
  in sorted order, so swapped names meet in the same block;
* year keys — the code of one name field, the first consonant of the other and
  the year of birth, so a misspelt field still finds its block;
* slip keys — one field's code with its first or second consonant dropped, the
  other field's code and the year of birth (symmetric deletion), so a slip in
  the first letters of a name (Vakyt for Bakyt, Nrulan for Nurlan) still finds it.

Candidates whose year of birth differs are skipped without scoring when the
threshold is above the best score a conflicting date of birth can reach.
Features are precomputed at :meth:`PersonIndex.add` time and cached by name
text, so building is a few dictionary operations per person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from node.core.errors import InvalidInput
from node.core.model import PersonQuery
from node.matching._features import PersonFeat, person_feat
from node.matching.scoring import (
    DEFAULT_THRESHOLD,
    DOB_CONFLICT,
    W_NAME,
    Memo,
    compare_features,
    explain,
)

__all__ = ["MAX_CANDIDATES_LIMIT", "MAX_REF_LEN", "Candidate", "PersonIndex"]

#: Bounds on the caller's parameters.
MAX_CANDIDATES_LIMIT = 1000
MAX_REF_LEN = 128
#: The best score a pair whose years of birth differ can reach.
_BEST_WITH_YEAR_CONFLICT = W_NAME - DOB_CONFLICT


@dataclass(frozen=True, slots=True)
class Candidate:
    ref: str
    score: float
    explanation: tuple[str, ...]


def _pair(prefix: str, a: str, b: str) -> str:
    return f"{prefix}{a}|{b}" if a <= b else f"{prefix}{b}|{a}"


def _keys(f: PersonFeat, *, query: bool = False) -> set[str]:
    """Blocking keys of a person indexed (``query=False``) or searched for.

    Slip keys are symmetric deletion split between the two sides, so that the
    index holds each deletion once: the index stores each field's codes with the
    first or second consonant dropped (``s`` keys, with the year of birth) beside
    the exact pairs (``p`` keys); a query also looks its exact codes up among the
    ``s`` keys (it dropped a consonant) and its dropped-consonant codes among the
    ``p`` keys (it added one), and both sides meet on a substituted one.
    """
    keys: set[str] = set()
    fam, giv = f.family.codes, f.given.codes
    for a in fam:
        for b in giv:
            keys.add(_pair("p", a, b))
    year = f.year
    if query:
        fam_s, giv_s = f.family.slip_codes_all, f.given.slip_codes_all
    else:
        fam_s, giv_s = f.family.slip_codes, f.given.slip_codes
    for slips, others, first in ((fam_s, giv, True), (giv_s, fam, False)):
        for a in slips:
            for b in others:
                keys.add(f"s{a}|{b}|{year}" if first else f"s{b}|{a}|{year}")
                if query:
                    keys.add(_pair("p", a, b))
    if query:
        for a in fam:
            for b in giv:
                keys.add(f"s{a}|{b}|{year}")
    for codes, others in ((fam, giv), (giv, fam)):
        initials = {o[:1] for o in others} or {""}
        for c in codes:
            for i in initials:
                keys.add(f"y{c}|{i}|{year}")
    if not giv:
        for a in fam:
            keys.add(f"p{a}|")
    return keys


class PersonIndex:
    """Persons by reference; :meth:`search` returns the best-scoring matches."""

    __slots__ = ("_blocks", "_by_ref", "_feats", "_refs")

    def __init__(self) -> None:
        self._feats: list[PersonFeat | None] = []
        self._refs: list[str] = []
        self._by_ref: dict[str, int] = {}
        # A bucket of one person is the bare index: most slip keys hold one person, and
        # a list each would cost about 60 bytes more per key.
        self._blocks: dict[str, int | list[int]] = {}

    def __len__(self) -> int:
        return len(self._by_ref)

    def __contains__(self, ref: object) -> bool:
        return ref in self._by_ref

    def add(self, ref: str, person: PersonQuery) -> None:
        """Index ``person`` under ``ref``, replacing any person already there."""
        if not (0 < len(ref) <= MAX_REF_LEN):
            raise InvalidInput(f"reference must be 1-{MAX_REF_LEN} characters",
                               reason="bad_identifier")
        if ref in self._by_ref:
            self.remove(ref)
        feat = person_feat(person)
        idx = len(self._feats)
        self._feats.append(feat)
        self._refs.append(ref)
        self._by_ref[ref] = idx
        blocks = self._blocks
        for key in _keys(feat):
            bucket = blocks.get(key)
            if bucket is None:
                blocks[key] = idx
            elif isinstance(bucket, int):
                blocks[key] = [bucket, idx]
            else:
                bucket.append(idx)

    def add_many(self, items: Iterable[tuple[str, PersonQuery]]) -> int:
        """Add every ``(ref, person)``; returns how many were added."""
        n = 0
        for ref, person in items:
            self.add(ref, person)
            n += 1
        return n

    def remove(self, ref: str) -> None:
        """Remove ``ref``; raises :class:`KeyError` when it is not indexed."""
        idx = self._by_ref.pop(ref)
        feat = self._feats[idx]
        assert feat is not None
        self._feats[idx] = None
        for key in _keys(feat):
            bucket = self._blocks.get(key)
            if isinstance(bucket, int):
                if bucket == idx:
                    del self._blocks[key]
            elif bucket is not None:
                bucket.remove(idx)
                if len(bucket) == 1:
                    self._blocks[key] = bucket[0]

    def search(self, query: PersonQuery, *, threshold: float = DEFAULT_THRESHOLD,
               max_candidates: int = 10, explain_why: bool = True) -> list[Candidate]:
        """Persons scoring at least ``threshold``, best first, at most ``max_candidates``;
        each with why it matched (``explain_why``; else an empty explanation: a lookup,
        which answers only the reference, skips comparing each candidate a second time)."""
        if not 0.0 <= threshold <= 1.0:
            raise InvalidInput("threshold must be within 0..1", reason="bad_threshold")
        if not 1 <= max_candidates <= MAX_CANDIDATES_LIMIT:
            raise InvalidInput(f"max_candidates must be 1-{MAX_CANDIDATES_LIMIT}",
                               reason="bad_max_candidates")
        q = person_feat(query)
        ids: set[int] = set()
        blocks = self._blocks
        for key in _keys(q, query=True):
            bucket = blocks.get(key)
            if isinstance(bucket, int):
                ids.add(bucket)
            elif bucket is not None:
                ids.update(bucket)
        skip_other_years = threshold > _BEST_WITH_YEAR_CONFLICT
        feats = self._feats
        memo: Memo = {}
        scored: list[tuple[float, int]] = []
        for idx in ids:
            f = feats[idx]
            if f is None or (skip_other_years and f.year != q.year):
                continue
            s = compare_features(q, f, memo)
            if s >= threshold:
                scored.append((s, idx))
        scored.sort(key=lambda x: (-x[0], self._refs[x[1]]))
        out: list[Candidate] = []
        for s, idx in scored[:max_candidates]:
            why: tuple[str, ...] = ()
            if explain_why:
                f = feats[idx]
                assert f is not None
                _, why = explain(q, f)
            out.append(Candidate(ref=self._refs[idx], score=round(s, 4), explanation=why))
        return out
