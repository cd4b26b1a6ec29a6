"""A slow policy server delays only the request it is judging (issue 10, section 1).

Policy evaluation runs off the event loop and off the database thread: while the OPA
server holds one peer's decision, another peer's lookup is answered within its own short
deadline, and the held request is answered (or refused) on its own.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

from node.core.errors import RemoteError
from node.core.model import DocumentQuery, QueryKind
from tests.federation import CTX, Federation, make_federation
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
