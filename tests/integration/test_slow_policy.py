"""A slow policy server delays only the request it is judging (issue 10, section 1).

Policy evaluation runs off the event loop and off the database thread: while the OPA
server holds one peer's decision, another peer's lookup is answered within its own short
deadline, and the held request is answered (or refused) on its own.  That holds for every
request the policy judges: lookups, crossing confirmations and follow-up filings (whose
decisions need stored facts, read first on the database thread between batches).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from node.core.errors import RemoteError
from node.core.model import DocumentQuery, QueryKind
from node.crossings.client import confirm_crossings
from tests.federation import CTX, Federation, make_federation
from tests.integration.test_crossings import q, setup_crossings
from tests.integration.test_followup import file
from tests.unit.policy.standin_opa import StandInOpaServer

pytestmark = pytest.mark.integration


@pytest.fixture()
def slow_fed(tmp_path: Path) -> Any:
    fed = make_federation(tmp_path)
    opa = StandInOpaServer(policy_dir=fed.root / "policies")
    toml = fed.dirs["KAZ-BS"] / "node.toml"
    text = toml.read_text()
    text = re.sub(r'# opa_url = "[^"]*"', f'opa_url = "{opa.url}"', text)
    text = text.replace("cache = true", "cache = false")  # the stand-in serves decisions only
    toml.write_text(text)
    setup_crossings(fed)
    with opa:
        for n in fed.dirs:
            fed.start(n)
        try:
            yield fed, opa
        finally:
            opa.release.set()
            fed.stop_all()


def test_a_held_decision_does_not_delay_another_peers_lookup(slow_fed: Any) -> None:
    fed, opa = slow_fed
    assert isinstance(fed, Federation)
    opa.hold_for = {"KGZ-BS"}
    held: dict[str, Any] = {}

    def kyrgyz() -> None:
        client = fed.client("KGZ-BS")
        try:
            held["answer"] = client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
                                           [DocumentQuery(number="N0481516",
                                                          issuing_state="KAZ")])
        except Exception as exc:
            held["error"] = exc
        finally:
            client.close()

    t = threading.Thread(target=kyrgyz)
    t.start()
    assert opa.held.wait(10), "the Kyrgyz decision never reached the policy server"
    uzb = fed.client("UZB-BS")
    try:  # the policy server is holding KGZ's decision right now
        ans = uzb.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
                         [DocumentQuery(number="N0481516", issuing_state="KAZ")])
    finally:
        uzb.close()
    assert ans.results[0].outcome.value == "hit"
    assert t.is_alive()  # answered while KGZ still waits for its own decision
    t.join(15)  # the policy client gives up on the held decision (1.5 s, one retry)
    assert not t.is_alive()
    # The held request was refused, fail closed; it never held up anyone else.
    err = held.get("error")
    assert isinstance(err, RemoteError), f"KGZ got {held!r}"
    assert err.reason == "policy_unavailable"
    events = [(e.get("requester"), e.get("outcome")) for e in fed.audit("KAZ-BS")
              if e.get("event") == "lookup"]
    assert events == [("UZB-BS", "answered"), ("KGZ-BS", "denied")]


def held_while_another_is_answered(fed: Federation, opa: StandInOpaServer,
                                   held_call: Callable[[], object]) -> BaseException | None:
    """Run ``held_call`` (KGZ-BS's, held at the policy server) in a thread; while it is held,
    UZB-BS's lookup must be answered; return what the held call raised."""
    opa.hold_for = {"KGZ-BS"}
    held: dict[str, BaseException] = {}

    def kyrgyz() -> None:
        try:
            held_call()
        except BaseException as exc:
            held["error"] = exc

    t = threading.Thread(target=kyrgyz)
    t.start()
    assert opa.held.wait(10), "the Kyrgyz decision never reached the policy server"
    uzb = fed.client("UZB-BS")
    try:  # the policy server holds KGZ's decision right now, and the database is free
        ans = uzb.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
                         [DocumentQuery(number="N0481516", issuing_state="KAZ")])
    finally:
        uzb.close()
    assert ans.results[0].outcome.value == "hit"
    assert t.is_alive()
    t.join(15)
    assert not t.is_alive()
    return held.get("error")


def test_a_held_crossing_decision_does_not_hold_the_database(slow_fed: Any) -> None:
    fed, opa = slow_fed

    def confirm() -> None:
        client = fed.client("KGZ-BS")
        try:
            confirm_crossings(client, "KAZ-BS", CTX, [q("AC1111111", "KGZ", bcp="KAZ-KORDAI")])
        finally:
            client.close()

    err = held_while_another_is_answered(fed, opa, confirm)
    assert isinstance(err, RemoteError) and err.reason == "policy_unavailable", err
    entries = [(e.get("event"), e.get("requester"), e.get("outcome"), e.get("reason"))
               for e in fed.audit("KAZ-BS") if e.get("event") in ("lookup", "crossing_confirm")]
    assert entries == [("lookup", "UZB-BS", "answered", None),
                       ("crossing_confirm", "KGZ-BS", "denied", "policy_unavailable")]


def test_a_held_followup_decision_does_not_hold_the_database(slow_fed: Any) -> None:
    fed, opa = slow_fed
    client = fed.client("KGZ-BS")
    try:  # the hit to follow up, decided before the policy server turns slow
        hit = client.lookup("KAZ-BS", CTX, QueryKind.DOCUMENT,
                            [DocumentQuery(number="N0481516", issuing_state="KAZ")])
    finally:
        client.close()
    err = held_while_another_is_answered(
        fed, opa, lambda: file(fed, "KGZ-BS", "KAZ-BS", hit, 0, ["document_number"]))
    assert isinstance(err, RemoteError) and err.reason == "policy_unavailable", err
    filed = [e for e in fed.audit("KAZ-BS") if e.get("event") == "followup_file"]
    assert [(e["outcome"], e["reason"], e["record_kind"]) for e in filed] == [
        ("denied", "policy_unavailable", "document")]
