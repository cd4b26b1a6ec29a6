"""A batch answered at once (issue 16): every item's hit exactly as for a single lookup,
the most severe live record winning, and the disclosed fields decided once per batch."""

from __future__ import annotations

import datetime as dt
from itertools import combinations

import pytest

from node.core.model import ActionCode, DocumentQuery, ItemResult, Outcome
from node.store.memory import memory_ports
from node.watchlist.lookup import DISCLOSABLE_FIELDS, Watchlist, WatchlistHit
from node.watchlist.persons import default_matcher

TODAY = dt.date(2026, 7, 1)


@pytest.fixture()
def wl() -> Watchlist:
    store = memory_ports()[5]
    store.insert_documents([
        ("KAZ", "N1", "P", "R-INFORM", "inform", "", "2030-01-01", "stolen"),
        ("KAZ", "N1", "P", "R-ARREST", "arrest", "arrest@kaz", "2030-01-01", "stolen"),
        ("KAZ", "N1", "P", "R-OLD", "arrest", "", "2020-01-01", "stolen"),   # expired
        ("KAZ", "N2", "P", "R-MONITOR", "monitor", "", "2030-01-01", "lost"),
        ("KAZ", "N2", "I", "R-ID", "refuse_entry", "id@kaz", "2030-01-01", "lost"),
        ("KAZ", "N3", "P", "R-EXPIRED", "arrest", "", "2020-01-01", "lost")])
    store.sources.update({"R-ARREST": "MVD", "R-ID": "KNB"})
    wl = Watchlist(store=store, matcher=default_matcher(), default_contact="desk@kaz")
    wl.reload(TODAY)
    return wl


def test_every_item_in_order_the_most_severe_live_record_winning(wl: Watchlist) -> None:
    items = [DocumentQuery("N1", "KAZ"), DocumentQuery("N2", "KAZ"), DocumentQuery("N3", "KAZ"),
             DocumentQuery("N2", "KAZ", "I"), DocumentQuery("N1", "KGZ"),
             DocumentQuery("N1", "KAZ"), DocumentQuery("N9", "KAZ")]
    assert wl.check_many(items, TODAY) == [
        WatchlistHit("R-ARREST", ActionCode.ARREST, "arrest@kaz"),
        WatchlistHit("R-MONITOR", ActionCode.MONITOR, "desk@kaz"),
        None,  # only an expired record
        WatchlistHit("R-ID", ActionCode.REFUSE_ENTRY, "id@kaz"),
        None,  # another issuing state
        WatchlistHit("R-ARREST", ActionCode.ARREST, "arrest@kaz"),  # repeated: the same
        None]


@pytest.mark.parametrize("fields", [frozenset(c) for n in range(len(DISCLOSABLE_FIELDS) + 1)
                                    for c in combinations(sorted(DISCLOSABLE_FIELDS), n)])
def test_only_the_disclosed_fields_leave_the_node(wl: Watchlist, fields: frozenset[str]) -> None:
    hits = wl.check_many([DocumentQuery("N1", "KAZ"), DocumentQuery("N9", "KAZ"),
                          DocumentQuery("N2", "KAZ")], TODAY)
    sources = wl.sources_of(hits)
    assert sources == {"R-ARREST": "MVD"}
    on = fields.__contains__
    assert Watchlist.disclose_all(hits, fields, sources) == (
        ItemResult(index=0, outcome=Outcome.HIT, reference="R-ARREST" if on("reference") else "",
                   action=ActionCode.ARREST if on("action") else None,
                   contact="arrest@kaz" if on("contact") else "",
                   source_agency="MVD" if on("source_agency") else ""),
        ItemResult(index=1, outcome=Outcome.NO_HIT),
        ItemResult(index=2, outcome=Outcome.HIT, reference="R-MONITOR" if on("reference") else "",
                   action=ActionCode.MONITOR if on("action") else None,
                   contact="desk@kaz" if on("contact") else ""))


def test_sources_never_leave_without_the_field_nor_unread(wl: Watchlist) -> None:
    hits = wl.check_many([DocumentQuery("N1", "KAZ")], TODAY)
    assert Watchlist.disclose_all(hits, frozenset({"reference"}), {"R-ARREST": "MVD"})[0] == (
        ItemResult(index=0, outcome=Outcome.HIT, reference="R-ARREST"))
    # disclosed, but nothing read: no source (the handler reads them only when disclosed)
    assert Watchlist.disclose_all(hits, DISCLOSABLE_FIELDS)[0].source_agency == ""
    assert wl.sources_of([None, None]) == {}
