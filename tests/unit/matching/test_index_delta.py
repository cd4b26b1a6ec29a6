"""PersonIndex.add/remove as deltas: after any sequence of them the blocking index is
exactly the one a fresh build of the remaining persons gives (no key left behind, no
person missing), and search answers the same."""

from __future__ import annotations

import pytest

from node.core.model import PartialDate, PersonQuery, Sex
from node.matching import PersonIndex

NAMES = [("YUSUPOV", "RUSTAM"), ("ЮСУПОВ", "РУСТАМ"), ("AKHMETOV", "NURLAN"),
         ("BAKIROVA", "AIGUL"), ("OMAROVA", "DINARA"), ("KENZHEBEK", "ASKAR"),
         ("TOKTOGULOV", ""), ("MUSAEVA", "ZARINA"), ("IBRAGIMOV", "FARRUKH"),
         ("NURMATOVA", "MADINA")]


def p(family: str, given: str, year: int = 1980) -> PersonQuery:
    return PersonQuery(family_name=family, given_names=given,
                       date_of_birth=PartialDate.parse(f"{year}-04-02"), nationality="KAZ",
                       sex=Sex("M"))


def blocks_by_ref(index: PersonIndex) -> dict[str, set[str]]:
    """Every blocking key with the references it holds (indices differ between builds)."""
    out: dict[str, set[str]] = {}
    for key, bucket in index._blocks.items():
        ids = [bucket] if isinstance(bucket, int) else bucket
        out[key] = {index._refs[i] for i in ids}
        assert len(ids) == len(set(ids)), key  # no index twice in one bucket
        assert all(index._feats[i] is not None for i in ids), key  # no removed person
    return out


def test_deltas_leave_the_index_a_fresh_build_would_give() -> None:
    index = PersonIndex()
    current: dict[str, PersonQuery] = {}
    for i, (fam, giv) in enumerate(NAMES):
        index.add(f"R{i}", p(fam, giv, 1970 + i % 3))
        current[f"R{i}"] = p(fam, giv, 1970 + i % 3)
    for ref in ("R1", "R4", "R9"):
        index.remove(ref)
        del current[ref]
    index.add("R2", p("SADYKOV", "TIMUR", 1990))  # replaced: new names
    current["R2"] = p("SADYKOV", "TIMUR", 1990)
    index.add("R4", p("OMAROVA", "DINARA", 1971))  # removed, then added again
    current["R4"] = p("OMAROVA", "DINARA", 1971)
    fresh = PersonIndex()
    fresh.add_many(current.items())
    assert blocks_by_ref(index) == blocks_by_ref(fresh)
    assert len(index) == len(fresh) == 8
    for ref, person in current.items():
        if person.given_names:
            assert [c.ref for c in index.search(person)][:1] == [ref]
        assert [c.ref for c in index.search(person)] == [c.ref for c in fresh.search(person)]
    assert index.search(p("AKHMETOV", "NURLAN", 1972)) == []  # R2 moved away


def test_removing_what_is_not_indexed_is_a_key_error() -> None:
    index = PersonIndex()
    index.add("R0", p("YUSUPOV", "RUSTAM"))
    index.remove("R0")
    with pytest.raises(KeyError):
        index.remove("R0")
    assert index._blocks == {} and len(index) == 0
