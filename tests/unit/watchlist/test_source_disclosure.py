"""The alert's source agency on the wire (issue 13): set only on a hit, only when the owner's
policy discloses ``source_agency`` to this requester, signed with the rest of the answer.

The real Responder and lookup handler on the in-memory ports, the real lookup.rego
(regopy); time comes from the test.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from node.core import envelope as env_mod
from node.core.errors import InvalidInput
from node.core.members import Member, MemberKey, StaticDirectory
from node.core.model import (
    ActionCode,
    DocumentQuery,
    ItemResult,
    LookupAnswer,
    LookupRequest,
    Outcome,
    PartialDate,
    PersonQuery,
    QueryKind,
    RequestHeader,
    Sex,
)
from node.policy.rego import RegoPolicyEngine
from node.responder import Responder, ResponderSettings
from node.store.memory import memory_ports
from node.watchlist.handler import LookupHandler
from node.watchlist.lookup import Watchlist
from node.watchlist.persons import default_matcher
from node.wire import convert
from tests.unit.policy._support import FULL, NOW, agreement, write_policy_dir

OWNER = nacl.signing.SigningKey(bytes(range(1, 33)))
KEYS = {n: nacl.signing.SigningKey(bytes(range(i, i + 32))) for i, n in
        ((2, "KGZ-BS"), (3, "UZB-BS"), (4, "TJK-BS"))}
STOLEN = DocumentQuery("N1234567", "KAZ")      # source MVD
LOST = DocumentQuery("N2222222", "KAZ")        # recorded without a source
CLEAN = DocumentQuery("N7654321", "KAZ")
WANTED = PersonQuery(family_name="Юсупов", given_names="Рустам",
                     date_of_birth=PartialDate.parse("1980-04-02"), nationality="KAZ",
                     sex=Sex.MALE)                # source KNB


def _kid(node: str) -> str:
    return env_mod.key_id_for(bytes(KEYS[node].verify_key))


class Rig:
    def __init__(self, tmp: Path) -> None:
        policy = RegoPolicyEngine.from_directory(write_policy_dir(tmp / "p", {"bxnode": {
            "agreements": [agreement("KGZ-BS", disclose=[*FULL, "source_agency"]),
                           agreement("UZB-BS"),
                           # a typo in the knob discloses nothing more (fail closed)
                           agreement("TJK-BS", disclose=[*FULL, "source_agncy"])]}}))
        uow, nonces, usage, receipts, self.audit, store = memory_ports()
        store.insert_documents([
            ("KAZ", "N1234567", "P", "KZ-STOLEN-1", "seize_document", "", "2030-01-01", "stolen"),
            ("KAZ", "N2222222", "P", "KZ-LOST-2", "inform", "", "2030-01-01", "lost")])
        store.insert_persons([("KZ-W-7", "YUSUPOV", "RUSTAM", "", "1980-04-02", "KAZ", "M",
                               "arrest", "", "2030-01-01")])
        store.sources.update({"KZ-STOLEN-1": "MVD", "KZ-W-7": "KNB"})
        directory = StaticDirectory(members=tuple(
            Member(node_id=n, country=n[:3], agency="BS", endpoint="127.0.0.1:1",
                   roles=("node",), keys=(MemberKey(_kid(n), bytes(KEYS[n].verify_key)),),
                   tls_cert_sha256=(f"{i:02x}" * 32,))
            for i, n in enumerate(KEYS)))
        settings = ResponderSettings(node_id="KAZ-BS", max_batch=100)
        self.responder = Responder(settings=settings, signing_key=OWNER, directory=directory,
                                   policy=policy, uow=uow, nonces=nonces, receipts=receipts,
                                   audit=self.audit, clock_ms=lambda: NOW)
        wl = Watchlist(store=store, matcher=default_matcher(), default_contact="desk@kaz")
        wl.reload(dt.date(2026, 7, 1))
        self.lookup = LookupHandler(settings=settings, key_id=self.responder.key_id,
                                    policy=policy, usage=usage, watchlist=wl)
        self.tls = {n: f"{i:02x}" * 32 for i, n in enumerate(KEYS)}

    def ask(self, node: str, *items: Any) -> LookupAnswer:
        header = RequestHeader(requester=node, key_id=_kid(node), operator="op-1",
                               purpose="border_check", legal_basis="Agreement 2024/7",
                               case_ref="C-1", issued_at_ms=NOW, nonce=os.urandom(16))
        kind = QueryKind.BATCH if len(items) > 1 else items[0].kind
        payload = convert.encode_request(LookupRequest(header=header, kind=kind, items=items))
        env = env_mod.sign(payload_type=env_mod.REQUEST_TYPE, payload=payload, signer=node,
                           key=KEYS[node])
        ex = self.responder.handle(self.lookup, env, tls_fingerprint=self.tls[node])
        assert ex.error is None and ex.response is not None
        env_mod.verify(ex.response, bytes(OWNER.verify_key), expected_type=env_mod.RESPONSE_TYPE)
        answer = convert.decode_response(ex.response.payload)
        assert isinstance(answer, LookupAnswer)
        return answer


@pytest.fixture()
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_disclosed_where_the_agreement_says_so_and_only_on_hits(rig: Rig) -> None:
    ans = rig.ask("KGZ-BS", STOLEN, WANTED, LOST, CLEAN)
    assert [(r.outcome, r.source_agency) for r in ans.results] == [
        (Outcome.HIT, "MVD"), (Outcome.HIT, "KNB"), (Outcome.HIT, ""), (Outcome.NO_HIT, "")]
    assert rig.audit.bodies()[-1]["disclosed"] == ["action", "contact", "reference",
                                                   "source_agency"]
    assert "MVD" not in repr(rig.audit.bodies()[-1])


@pytest.mark.parametrize("node", ["UZB-BS", "TJK-BS"])
def test_absent_by_default_and_for_a_misspelt_knob(rig: Rig, node: str) -> None:
    ans = rig.ask(node, STOLEN, WANTED)
    assert [(r.outcome, r.reference, r.source_agency) for r in ans.results] == [
        (Outcome.HIT, "KZ-STOLEN-1", ""), (Outcome.HIT, "KZ-W-7", "")]
    assert rig.audit.bodies()[-1]["disclosed"] == ["action", "contact", "reference"]


def test_the_field_round_trips_and_a_malformed_one_is_refused() -> None:
    answer = LookupAnswer(responder="KAZ-BS", key_id="00" * 8, request_digest=b"d" * 32,
                          issued_at_ms=NOW, audit_seq=3, results=(ItemResult(
                              index=0, outcome=Outcome.HIT, reference="R",
                              action=ActionCode.INFORM, source_agency="MVD"),))
    assert convert.decode_response(convert.encode_answer(answer)) == answer
    for bad in ("x" * 65, "MVD desk", "-MVD", "МВД"):
        msg = convert.pb.ResponsePayload.FromString(convert.encode_answer(answer))
        msg.lookup.results[0].source_agency = bad
        with pytest.raises(InvalidInput) as err:
            convert.decode_response(msg.SerializeToString())
        assert err.value.reason == "malformed_payload"
    ok = convert.pb.ResponsePayload.FromString(convert.encode_answer(answer))
    ok.lookup.results[0].source_agency = "A" * 64  # at the bound
    decoded = convert.decode_response(ok.SerializeToString())
    assert isinstance(decoded, LookupAnswer) and decoded.results[0].source_agency == "A" * 64
