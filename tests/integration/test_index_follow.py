"""Two ``bxnode serve`` replicas on PostgreSQL follow alert changes by delta (the change
feed, node/store/watchlist_feed.py): a person added through one replica's operator hits on
the other from the next lookup, a withdrawn one stops hitting at once, and neither change
makes any replica rebuild its person index (counted by its ``person_index_rebuilt`` log
lines, one each at start-up, not by timing).

The replicas, their shared private PostgreSQL cluster and the peers are the real ones of
tests/integration/test_replicas.py (mTLS on 127.0.0.1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from node.cli.main import main as bxnode
from node.core.errors import RemoteError
from node.core.model import PartialDate, PersonQuery, QueryKind, Sex
from tests.federation import CTX
from tests.integration.test_replicas import Replicated, _audit, _only, replicated

__all__ = ["replicated"]

pytestmark = pytest.mark.integration

REF = "KAZ-WNT-2026-004242"
PERSON = PersonQuery(family_name="ZHANABERGENOV", given_names="ARMAN",
                     date_of_birth=PartialDate(1979, 3, 14), nationality="KAZ", sex=Sex.MALE)


def _lookup(rep: Replicated, which: str, person: PersonQuery = PERSON) -> Any:
    client = rep.fed.client("KGZ-BS", store=False, members=_only(rep, which))
    try:
        return client.lookup("KAZ-BS", CTX, QueryKind.PERSON, [person]).results[0]
    finally:
        client.close()


def _rebuilds(rep: Replicated, which: str) -> int:
    return sum('"event": "person_index_rebuilt"' in line for line in rep.serves[which].lines)


def _change(rep: Replicated, *args: str) -> None:
    assert bxnode(["watchlist", *args, "--reason", "court order 7", "--operator", "kz-0193",
                   "--node-dir", str(rep.a)]) == 0


def test_an_alert_added_and_withdrawn_through_one_replica_is_followed_by_delta(
        replicated: Replicated) -> None:
    rep = replicated
    for which in ("A", "B"):
        rep.serves[which].wait_for("person_index_rebuilt")
        assert _lookup(rep, which).outcome.value == "no_hit"  # each has built its index
    assert (_rebuilds(rep, "A"), _rebuilds(rep, "B")) == (1, 1)

    _change(rep, "add", "--kind", "person", "--ref", REF, "--family", "Жанабергенов",
            "--given", "Арман", "--dob", "1979-03-14", "--nationality", "KAZ", "--sex", "M",
            "--action", "arrest", "--expires", "2036-01-01", "--source", "MVD")
    found = _lookup(rep, "B")  # the replica that did not make the change, at once
    assert (found.outcome.value, found.reference) == ("hit", REF)
    assert _lookup(rep, "A").reference == REF

    _change(rep, "update", REF, "--family", "Омарова", "--given", "Динара", "--sex", "F")
    renamed = PersonQuery(family_name="OMAROVA", given_names="DINARA",
                          date_of_birth=PartialDate(1979, 3, 14), nationality="KAZ",
                          sex=Sex.FEMALE)
    assert _lookup(rep, "B", renamed).reference == REF
    assert _lookup(rep, "B").outcome.value == "no_hit"  # the old names no longer hit

    _change(rep, "withdraw", REF)
    assert [_lookup(rep, w, renamed).outcome.value for w in ("B", "A")] == ["no_hit"] * 2

    # Three changes, two replicas following each: not one rebuild beyond start-up.
    assert (_rebuilds(rep, "A"), _rebuilds(rep, "B")) == (1, 1)


def test_a_bulk_import_beyond_the_feed_is_rebuilt_off_the_lookup_path(
        replicated: Replicated, tmp_path: Path) -> None:
    """More persons in one change than the feed lists: each replica rebuilds on a thread
    of its own and answers the new persons once it has swapped the index in (a no-hit
    meanwhile is refused person_index_rebuilding, never claimed)."""
    from node.store.watchlist_feed import FEED_MAX_REFS

    rep = replicated
    assert _lookup(rep, "B").outcome.value == "no_hit"
    rows = tmp_path / "bulk.csv"
    with rows.open("w") as f:
        f.write("kind,owner_ref,action,expires,family_name,given_names,dob,nationality,sex\n")
        for i in range(FEED_MAX_REFS):
            letters = "".join(chr(65 + i // 26 ** k % 26) for k in range(4))  # no digits
            f.write(f"person,KAZ-BULK-{i:06d},monitor,2036-01-01,BULK{letters}OV,IVAN,"
                    f"1950-01-01,KAZ,M\n")
        f.write(f"person,{REF},arrest,2036-01-01,Жанабергенов,Арман,1979-03-14,KAZ,M\n")
    assert bxnode(["watchlist", "import", str(rows), "--node-dir", str(rep.a)]) == 0
    refused: list[tuple[str, str]] = []
    for _ in range(3000):  # each a fresh signed request; the first after the swap hits
        try:
            found = _lookup(rep, "B")
        except RemoteError as exc:
            refused.append((exc.status, exc.reason))
            continue
        assert (found.outcome.value, found.reference) == ("hit", REF)
        break
    else:
        raise AssertionError(f"no hit after the rebuild: {refused[-3:]}")
    # The first lookup after the import starts the rebuild and is answered from the old
    # index at once: refused, since that index cannot know the imported persons.
    assert refused and set(refused) == {("UNAVAILABLE", "person_index_rebuilding")}
    assert _rebuilds(rep, "B") == 2
    # Each refusal is audited as such, with nothing answered and no quota used.
    entries = [e for e in _audit(rep) if e.get("reason") == "person_index_rebuilding"]
    assert len(entries) == len(refused)
    assert {(e["outcome"], e["status"], e["requester"]) for e in entries} == {
        ("rejected", "UNAVAILABLE", "KGZ-BS")}
    assert all("response_digest" not in e and "hits" not in e for e in entries)
    rebuilt = [json.loads(ln) for ln in rep.serves["B"].lines
               if '"event": "person_index_rebuilt"' in ln]
    assert [(r["background"], r["persons"] > FEED_MAX_REFS) for r in rebuilt] == [
        (False, False), (True, True)]
    # and the new index, once in use, frozen out of the garbage collector's way as the
    # startup heap was (node/server/heap.py): ~3 tracked objects a person
    rep.serves["B"].wait_for('"after": "person_index_rebuilt"')
    frozen = [json.loads(ln) for ln in rep.serves["B"].lines if '"heap_frozen"' in ln]
    assert [f.get("after") for f in frozen] == [None, "person_index_rebuilt"]
    assert frozen[1]["objects"] > frozen[0]["objects"] + FEED_MAX_REFS > 10_000
