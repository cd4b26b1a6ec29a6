"""The exchange pipeline, sans I/O: the real Responder and lookup handler on in-memory ports.

No database, no network, no clock of its own: every port is an adapter from
``node/store/memory``, time comes from the test, policy is the shipped Rego evaluated
in-process (regopy).  Every test asserts exact outcomes: status, reason, the audit record,
and what was (not) written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
import structlog
from structlog.testing import capture_logs

from node.core import envelope as env_mod
from node.core.envelope import Envelope
from node.core.errors import BxError, InvalidInput
from node.core.members import Member, MemberKey, StaticDirectory
from node.core.model import (
    DocumentQuery,
    LookupRequest,
    PartialDate,
    PersonQuery,
    QueryKind,
    Refusal,
    RequestHeader,
    Sex,
)
from node.core.ports import AuditRecord
from node.policy.cache import CachingPolicyEngine
from node.policy.rego import RegoPolicyEngine
from node.responder import AUDIT_LOCK, Exchange, Responder, ResponderSettings
from node.store._fields import altered
from node.store.memory import (
    MemoryAuditSink,
    MemoryReceiptStore,
    MemoryUnitOfWork,
    MemoryUsageLedger,
    MemoryWatchlistStore,
    memory_ports,
)
from node.watchlist.handler import LookupHandler
from node.watchlist.lookup import Watchlist
from node.watchlist.persons import default_matcher
from node.wire import convert
from tests.unit.policy._support import FULL, NOW, agreement, write_policy_dir

OWNER = nacl.signing.SigningKey(bytes(range(1, 33)))
ASKER = nacl.signing.SigningKey(bytes(range(2, 34)))
ASKER_KID = env_mod.key_id_for(bytes(ASKER.verify_key))
TLS = "ab" * 32
OTHER = nacl.signing.SigningKey(bytes(range(3, 35)))
OTHER_KID = env_mod.key_id_for(bytes(OTHER.verify_key))
OTHER_TLS = "cd" * 32
DAY = "2026-07-01"


@dataclass
class Rig:
    responder: Responder
    lookup: LookupHandler
    uow: MemoryUnitOfWork
    usage: MemoryUsageLedger
    receipts: MemoryReceiptStore
    audit: MemoryAuditSink
    watchlist: MemoryWatchlistStore
    clock: list[int]

    def ask(self, env: Envelope | BxError, *, tls: str | None = TLS) -> Exchange:
        return self.responder.handle(self.lookup, env, tls_fingerprint=tls)


@pytest.fixture()
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)


def kgz_policy(folder: Path, **overrides: Any) -> RegoPolicyEngine:
    return RegoPolicyEngine.from_directory(write_policy_dir(folder, {"bxnode": {
        "agreements": [agreement("KGZ-BS", **{"daily_quota": 10, **overrides})]}}))


def make_rig(tmp_path: Path, **overrides: Any) -> Rig:
    """KAZ-BS answering KGZ-BS under the shipped Rego policy; ``overrides`` change KGZ-BS's
    agreement (a daily quota of 10 unless given)."""
    policy = kgz_policy(tmp_path / "p", **overrides)
    uow, nonces, usage, receipts, audit, watchlist = memory_ports()
    watchlist.insert_documents([("KAZ", "N1234567", "P", "KZ-STOLEN-1", "seize_document", "",
                                 "2030-01-01", "stolen")])
    watchlist.insert_persons([("KZ-W-7", "YUSUPOV", "RUSTAM", "", "1980-04-02", "KAZ", "M",
                               "arrest", "", "2030-01-01")])
    clock = [NOW]
    directory = StaticDirectory(members=(Member(
        node_id="KGZ-BS", country="KGZ", agency="BS", endpoint="127.0.0.1:1", roles=("node",),
        keys=(MemberKey(ASKER_KID, bytes(ASKER.verify_key)),), tls_cert_sha256=(TLS,)),
        Member(node_id="UZB-BS", country="UZB", agency="BS", endpoint="127.0.0.1:2",
               roles=("node",), keys=(MemberKey(OTHER_KID, bytes(OTHER.verify_key)),),
               tls_cert_sha256=(OTHER_TLS,))))
    settings = ResponderSettings(node_id="KAZ-BS", max_batch=100)
    responder = Responder(settings=settings, signing_key=OWNER, directory=directory,
                          policy=policy, uow=uow, nonces=nonces, receipts=receipts, audit=audit,
                          clock_ms=lambda: clock[0])
    wl = Watchlist(store=watchlist, matcher=default_matcher(), default_contact="desk@kaz")
    import datetime as dt
    wl.reload(dt.date(2026, 7, 1))
    lookup = LookupHandler(settings=settings, key_id=responder.key_id, policy=policy,
                           usage=usage, watchlist=wl)
    return Rig(responder, lookup, uow, usage, receipts, audit, watchlist, clock)


def request(*items: Any, purpose: str = "border_check", issued_at_ms: int = NOW,
            nonce: bytes | None = None) -> Envelope:
    kind = QueryKind.BATCH if len(items) > 1 else items[0].kind
    header = RequestHeader(requester="KGZ-BS", key_id=ASKER_KID, operator="kg-0042",
                           purpose=purpose, legal_basis="Agreement 2024/7", case_ref="C-1",
                           issued_at_ms=issued_at_ms, nonce=nonce or os.urandom(16))
    payload = convert.encode_request(LookupRequest(header=header, kind=kind, items=items))
    return env_mod.sign(payload_type=env_mod.REQUEST_TYPE, payload=payload, signer="KGZ-BS",
                        key=ASKER)


STOLEN = DocumentQuery("N1234567", "KAZ")
CLEAN = DocumentQuery("N7654321", "KAZ")
WANTED = PersonQuery(family_name="Юсупов", given_names="Рустам",
                     date_of_birth=PartialDate.parse("1980-04-02"), nationality="KAZ",
                     sex=Sex.MALE)


def answer_of(ex: Exchange) -> Any:
    assert ex.response is not None
    return convert.decode_response(ex.response.payload)


def test_an_answered_lookup_writes_one_record_one_receipt_and_its_usage(rig: Rig) -> None:
    ex = rig.ask(request(STOLEN, CLEAN))
    assert ex.error is None and ex.audit_seq == 1 and (ex.items, ex.hits) == (2, 1)
    ans = answer_of(ex)
    assert [r.outcome.value for r in ans.results] == ["hit", "no_hit"]
    assert ans.results[0].reference == "KZ-STOLEN-1" and ans.audit_seq == 1
    body = rig.audit.bodies()[0]
    assert body["outcome"] == "answered" and body["status"] == "OK"
    assert body["requester"] == "KGZ-BS" and body["operator"] == "kg-0042"
    assert body["decision"] == "allow" and (body["hits"], body["no_hits"]) == (1, 1)
    assert body["response_digest"] == env_mod.digest(ex.response).hex()  # type: ignore[arg-type]
    assert "N1234567" not in repr(body)  # no document number in the audit record
    assert rig.usage.items_today("KGZ-BS", DAY) == 2
    assert [r.direction for r in rig.receipts.all()] == ["received"]
    assert rig.uow.commits == 1


def test_the_audit_lock_is_held_before_a_sequence_number_is_reserved(rig: Rig) -> None:
    seen: list[list[str]] = []
    reserve = rig.audit.reserve

    def spy() -> int:
        seen.append(list(rig.uow.locks))
        return reserve()

    rig.audit.reserve = spy  # type: ignore[method-assign]
    rig.ask(request(CLEAN))
    assert seen == [[AUDIT_LOCK]]


def test_a_replay_is_refused_signed_and_audited(rig: Rig) -> None:
    env = request(CLEAN)
    rig.ask(env)
    ex = rig.ask(env)
    assert ex.error is not None and ex.error.reason == "replayed_nonce"
    assert ex.refusal is not None
    refusal = convert.decode_response(ex.refusal.payload)
    assert isinstance(refusal, Refusal), refusal
    assert refusal.reason == "replayed_nonce" and refusal.audit_seq == 2 == ex.audit_seq
    assert [b["outcome"] for b in rig.audit.bodies()] == ["answered", "rejected"]
    assert rig.usage.items_today("KGZ-BS", DAY) == 1  # the replay used no quota


def test_a_policy_denial_uses_no_quota_and_is_audited(rig: Rig) -> None:
    ex = rig.ask(request(CLEAN, purpose="criminal_investigation"))
    assert ex.error is not None and ex.error.status == "PERMISSION_DENIED"
    body = rig.audit.bodies()[0]
    assert body["outcome"] == "denied" and body["decision"] == "deny"
    assert body["reason"] == ex.error.reason
    assert rig.usage.items_today("KGZ-BS", DAY) == 0


def test_quota_is_exact_when_another_replica_used_it_after_the_decision(rig: Rig) -> None:
    """predecide saw 0 items used; meanwhile (another replica) 9 of the 10 were used: the
    unit of work reads the real figure and the policy refuses 2 more."""
    env = request(CLEAN, DocumentQuery("N1111111", "KAZ"))
    pending = rig.responder.predecide(rig.responder.prepare(rig.lookup, env,
                                                            tls_fingerprint=TLS))
    rig.usage.add("KGZ-BS", DAY, 9)
    ex = rig.responder.complete(pending)
    assert ex.error is not None and ex.error.reason == "quota_exhausted"
    assert ex.error.status == "RESOURCE_EXHAUSTED"
    assert rig.usage.items_today("KGZ-BS", DAY) == 9


def test_a_bug_in_a_handler_becomes_internal_error_audited_and_nothing_half_written(
        rig: Rig) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        rig.usage.add("KGZ-BS", DAY, 5)  # written, then the handler fails
        raise KeyError("driver exploded on N0481516")  # a bug's text can hold a number

    rig.lookup._read = broken  # type: ignore[method-assign]  # the answer's read, in its unit of work
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:  # at debug level whatever an earlier test configured: the text's line is debug
        with capture_logs() as logs:
            ex = rig.ask(request(CLEAN))
    finally:
        structlog.configure(**saved)
    [failed] = [e for e in logs if e["event"] == "handler_failed"]
    assert (failed["log_level"], failed["error"]) == ("error", "KeyError")
    assert failed["at"].startswith("node/watchlist/handler.py:")  # our innermost frame
    assert "N0481516" not in str(failed) and len(failed["text_sha256"]) == 16
    [detail] = [e for e in logs if e["event"] == "error_text"]
    assert (detail["log_level"], detail["text_sha256"]) == ("debug", failed["text_sha256"])
    assert "N0481516" in detail["text"]
    assert ex.error is not None
    assert (ex.error.status, ex.error.reason) == ("INTERNAL", "internal_error")
    assert "driver" not in ex.error.message  # no detail to the peer
    assert ex.refusal is not None
    body = rig.audit.bodies()[0]
    assert body["outcome"] == "rejected" and body["reason"] == "internal_error"
    assert rig.usage.items_today("KGZ-BS", DAY) == 0  # the handler's writes rolled back


def test_a_failing_audit_sink_leaves_nothing_behind(rig: Rig) -> None:
    def down(record: AuditRecord, *, seq: int | None = None) -> int:
        raise OSError("disk full")

    rig.audit.append_record = down  # type: ignore[method-assign]  # a failing stand-in
    with pytest.raises(OSError):
        rig.ask(request(CLEAN))
    assert rig.usage.items_today("KGZ-BS", DAY) == 0
    assert rig.receipts.all() == [] and rig.uow.commits == 0
    rig.audit.append_record = MemoryAuditSink.append_record.__get__(rig.audit)  # type: ignore[method-assign]
    assert rig.ask(request(CLEAN)).error is None  # the nonce was not kept either


@pytest.mark.parametrize(("tls", "issued", "reason"), [
    (OTHER_TLS, NOW, "tls_identity_mismatch"),
    ("ef" * 32, NOW, "unlisted_certificate"),
    (TLS, NOW - 10 * 60_000, "stale_request"),
    (TLS, NOW + 10 * 60_000, "stale_request"),
])
def test_authentication_failures_are_refused_before_any_write(
        rig: Rig, tls: str, issued: int, reason: str) -> None:
    ex = rig.ask(request(CLEAN, issued_at_ms=issued), tls=tls)
    assert ex.error is not None and ex.error.reason == reason
    assert ex.refusal is None  # not verified: no signed refusal
    body = rig.audit.bodies()[0]
    assert body["verified"] is False and body["reason"] == reason
    assert rig.receipts.all() == [] and rig.usage.state == {}


def test_a_forgery_is_filed_under_who_sent_it_not_whom_it_claims(rig: Rig) -> None:
    """KGZ-BS's connection carries a request claiming to be UZB-BS's: the record names the
    authenticated sender as requester and keeps the claim apart."""
    header = RequestHeader(requester="UZB-BS", key_id=OTHER_KID, operator="x",
                           purpose="border_check", legal_basis="Agreement", case_ref="C-2",
                           issued_at_ms=NOW, nonce=os.urandom(16))
    payload = convert.encode_request(LookupRequest(header=header, kind=QueryKind.DOCUMENT,
                                                   items=(CLEAN,)))
    forged = env_mod.sign(payload_type=env_mod.REQUEST_TYPE, payload=payload, signer="UZB-BS",
                          key=ASKER)  # not UZB's key
    ex = rig.ask(forged)
    assert ex.error is not None and ex.error.reason == "unknown_key"
    body = rig.audit.bodies()[0]
    assert (body["requester"], body["claimed_signer"], body["verified"]) == (
        "KGZ-BS", "UZB-BS", False)


def test_an_unlisted_certificate_gets_one_reason_whatever_it_sends(rig: Rig) -> None:
    unlisted = "ef" * 32
    for env in (request(CLEAN), InvalidInput("not a request", reason="malformed_request")):
        ex = rig.ask(env, tls=unlisted)
        assert ex.error is not None and ex.error.reason == "unlisted_certificate"
    bodies = rig.audit.bodies()
    assert [(b["reason"], b["requester"], b["tls_peer"]) for b in bodies] == [
        ("unlisted_certificate", "", unlisted)] * 2
    assert "claimed_signer" not in bodies[0]  # nothing of the request was looked at


def test_a_forged_signature_is_refused(rig: Rig) -> None:
    env = request(CLEAN)
    forged = replace(env, signature=bytes(64))
    ex = rig.ask(forged)
    assert ex.error is not None and ex.error.status == "UNAUTHENTICATED"
    assert rig.audit.bodies()[0]["outcome"] == "rejected"


def test_a_person_hit_is_confirmed_against_the_store(rig: Rig) -> None:
    assert rig.ask(request(WANTED)).hits == 1
    rig.watchlist.withdraw_person("KZ-W-7")  # another replica withdrew it; index is stale
    ex = rig.ask(request(WANTED))
    assert ex.error is None and ex.hits == 0
    assert answer_of(ex).results[0].outcome.value == "no_hit"


def test_the_sent_envelope_is_what_the_receipt_keeps(rig: Rig) -> None:
    ok, refused = rig.ask(request(STOLEN)), rig.ask(request(CLEAN, purpose="visa_application"))
    assert ok.response is not None and refused.refusal is not None
    assert [r.response_env for r in rig.receipts.all()] == [ok.sent, refused.sent]
    assert ok.sent == convert.envelope_to_pb(ok.response).SerializeToString()
    assert refused.sent == convert.envelope_to_pb(refused.refusal).SerializeToString()
    assert rig.ask(request(CLEAN), tls="ef" * 32).sent == b""  # nothing signed for a stranger


@pytest.fixture()
def cached_rig(rig: Rig, tmp_path: Path) -> Rig:
    """The rig with its policy behind the decision cache, as ``bxnode serve`` runs it."""
    policy = CachingPolicyEngine(inner=rig.responder.policy, policy_dir=tmp_path / "p")
    rig.responder.policy = policy
    rig.lookup = LookupHandler(settings=rig.responder.settings, key_id=rig.responder.key_id,
                               policy=policy, usage=rig.usage, watchlist=rig.lookup.watchlist)
    return rig


def test_a_cached_decision_is_taken_without_evaluating_and_is_the_same(cached_rig: Rig
                                                                       ) -> None:
    rig, policy = cached_rig, cached_rig.responder.policy
    assert isinstance(policy, CachingPolicyEngine)
    first = rig.responder.prepare(rig.lookup, request(STOLEN), tls_fingerprint=TLS)
    assert rig.responder.predecide_cached(first) is None  # a miss: the caller evaluates
    assert (policy.misses, policy.hits) == (0, 0)  # looked, evaluated nothing
    rig.responder.complete(rig.responder.predecide(first))
    assert (policy.misses, policy.hits) == (1, 0)  # evaluated once, then cached
    second = rig.responder.prepare(rig.lookup, request(STOLEN), tls_fingerprint=TLS)
    quick, slow = rig.responder.predecide_cached(second), rig.responder.predecide(second)
    assert quick is not None and quick.verified is not None and slow.verified is not None
    assert quick.verified.decided == slow.verified.decided
    assert quick.verified.decided.decision.allow and policy.misses == 1
    ex = rig.responder.complete(quick)
    assert ex.error is None and ex.hits == 1 and rig.usage.items_today("KGZ-BS", DAY) == 2


def test_a_cached_decision_still_keeps_the_quota_exact(cached_rig: Rig) -> None:
    """A hit applies the usage figure of the request in hand: 9 of 10 used elsewhere meanwhile,
    the cached allow does not let 2 more through."""
    rig = cached_rig
    pair = (CLEAN, DocumentQuery("N1111111", "KAZ"))
    assert rig.ask(request(*pair)).error is None  # cached: allow batches of 2 today
    pending = rig.responder.predecide_cached(rig.responder.prepare(
        rig.lookup, request(*pair), tls_fingerprint=TLS))
    assert pending is not None and pending.verified is not None
    assert pending.verified.decided.decision.allow
    rig.usage.add("KGZ-BS", DAY, 7)
    ex = rig.responder.complete(pending)
    assert ex.error is not None and ex.error.reason == "quota_exhausted"
    assert rig.usage.items_today("KGZ-BS", DAY) == 9


def test_a_cached_person_lookup_needs_the_matching_parameters_cached_too(cached_rig: Rig
                                                                         ) -> None:
    rig = cached_rig
    rig.ask(request(STOLEN))  # the decision for documents only
    pending = rig.responder.prepare(rig.lookup, request(WANTED), tls_fingerprint=TLS)
    assert rig.responder.predecide_cached(pending) is None  # another decision: a miss
    assert rig.ask(request(WANTED)).hits == 1
    quick = rig.responder.predecide_cached(rig.responder.prepare(
        rig.lookup, request(WANTED), tls_fingerprint=TLS))
    assert quick is not None and quick.verified is not None
    assert quick.verified.decided.matching is not None
    assert rig.responder.complete(quick).hits == 1


def test_without_a_cache_every_decision_is_evaluated(rig: Rig) -> None:
    rig.ask(request(STOLEN))
    pending = rig.responder.prepare(rig.lookup, request(STOLEN), tls_fingerprint=TLS)
    assert rig.responder.predecide_cached(pending) is None
    refused = rig.responder.prepare(rig.lookup, request(STOLEN), tls_fingerprint="ef" * 32)
    assert rig.responder.predecide_cached(refused) is refused  # nothing to decide


# --- the answer's reads before the lock (Responder.preread; issue 16) -----------------------


def preread(rig: Rig, env: Envelope) -> Any:
    """A request as the server takes it: prepared, decided, then read before the lock."""
    r = rig.responder
    return r.preread(r.predecide(r.prefetch(r.prepare(rig.lookup, env, tls_fingerprint=TLS))))


def outcomes(ex: Exchange) -> list[tuple[str, str, str]]:
    return [(x.outcome.value, x.reference, x.action.value if x.action else "")
            for x in answer_of(ex).results]


def test_a_lookup_read_before_the_lock_is_answered_from_that_read_while_unchanged(
        rig: Rig) -> None:
    pending = preread(rig, request(STOLEN, CLEAN))
    assert pending.verified.preread is not None  # documents alone: read before the lock
    # a row changed behind the generation's back (no store does this: the generation is
    # how every change is announced) shows which read the answer used
    rig.watchlist.delete_ref("KZ-STOLEN-1")
    ex = rig.responder.complete(pending)
    assert outcomes(ex) == [("hit", "KZ-STOLEN-1", "seize_document"), ("no_hit", "", "")]
    assert rig.usage.items_today("KGZ-BS", DAY) == 2 and rig.uow.commits == 1


def test_a_change_committed_after_the_read_is_what_the_answer_says(rig: Rig) -> None:
    withdrawn = preread(rig, request(STOLEN))
    changed = preread(rig, request(STOLEN))
    rig.watchlist.delete_ref("KZ-STOLEN-1")  # withdrawn, as lifecycle does: with a new
    rig.watchlist.bump_generation("1")       # generation in the same unit of work
    assert outcomes(rig.responder.complete(withdrawn)) == [("no_hit", "", "")]
    rig.watchlist.insert_documents([("KAZ", "N1234567", "P", "KZ-STOLEN-2", "arrest", "",
                                     "2030-01-01", "stolen")])
    rig.watchlist.bump_generation("2")
    assert outcomes(rig.responder.complete(changed)) == [("hit", "KZ-STOLEN-2", "arrest")]


def test_nothing_is_read_before_the_lock_for_a_request_the_policy_refused(rig: Rig) -> None:
    pending = preread(rig, request(STOLEN, purpose="criminal_investigation"))
    assert pending.verified.decided.decision.allow is False
    assert pending.verified.preread is None
    ex = rig.responder.complete(pending)
    assert ex.error is not None and ex.error.status == "PERMISSION_DENIED"


def test_the_sources_are_read_before_the_lock_only_where_the_decision_discloses_them(
        tmp_path: Path) -> None:
    for disclose, sources in ((FULL, None), ([*FULL, "source_agency"], {"KZ-STOLEN-1": "MVD"})):
        rig = make_rig(tmp_path / str(len(disclose)), disclose=disclose)
        rig.watchlist.sources["KZ-STOLEN-1"] = "MVD"
        reads: list[Sequence[str]] = []
        sources_of = rig.watchlist.sources_of

        def counted(refs: Sequence[str], _of: Any = sources_of, _reads: Any = reads) -> Any:
            _reads.append(tuple(refs))
            return _of(refs)

        rig.watchlist.sources_of = counted  # type: ignore[method-assign,assignment]
        pending = preread(rig, request(STOLEN, CLEAN))
        assert pending.verified.preread.sources == sources
        assert reads == ([] if sources is None else [("KZ-STOLEN-1",)])
        [hit, _] = answer_of(rig.responder.complete(pending)).results
        assert hit.source_agency == ("" if sources is None else "MVD")
        assert len(reads) == (0 if sources is None else 1)  # nothing read again in the lock


def test_sources_the_read_left_out_are_read_under_the_lock_if_the_answer_discloses_them(
        tmp_path: Path) -> None:
    """The policy changed between the read and the answer (a reload), and the answer's own
    decision discloses the source: it is read under the lock, not left out."""
    rig = make_rig(tmp_path)
    rig.watchlist.sources["KZ-STOLEN-1"] = "MVD"
    pending = preread(rig, request(STOLEN))
    assert pending.verified.preread.sources is None  # FULL: no source_agency
    rig.lookup._policy = kgz_policy(tmp_path / "reloaded",
                                    disclose=[*FULL, "source_agency"])
    rig.usage.add("KGZ-BS", DAY, 1)  # another request's usage: the answer decides again
    [hit] = answer_of(rig.responder.complete(pending)).results
    assert (hit.reference, hit.source_agency) == ("KZ-STOLEN-1", "MVD")


def counting_decisions(rig: Rig) -> list[int]:
    """The usage figures the handler decides with from now on, through its own
    ``_decide``: predecide's evaluations, and the answer's deciding again under the lock."""
    figures: list[int] = []
    decide = rig.lookup._decide

    def counted(v: Any, items_today: int) -> Any:
        figures.append(items_today)
        return decide(v, items_today)

    rig.lookup._decide = counted  # type: ignore[method-assign]
    return figures


def test_requests_of_one_peer_decided_together_are_not_decided_again_under_the_lock(
        rig: Rig) -> None:
    """A batch's requests from one peer are all decided before the first is answered:
    each is decided with the usage its answer will find (the ones decided before it
    counted in), so none is decided again under the writers' lock."""
    batch = [preread(rig, request(STOLEN, CLEAN)) for _ in range(3)]
    assert [p.verified.decided.inp.items_today for p in batch] == [0, 2, 4]
    again = counting_decisions(rig)
    assert [rig.responder.complete(p).error for p in batch] == [None, None, None]
    assert again == [] and rig.usage.items_today("KGZ-BS", DAY) == 6


def test_a_request_never_answered_leaves_the_hint_at_its_peers_next_answer(rig: Rig) -> None:
    lost, answered = preread(rig, request(STOLEN)), preread(rig, request(STOLEN))
    again = counting_decisions(rig)
    assert rig.responder.complete(answered).error is None  # ``lost`` never is (a replay...)
    assert again == [0]  # it had counted ``lost`` in: decided again with the real figure
    after = preread(rig, request(STOLEN))
    assert after.verified.decided.inp.items_today == 1  # ``lost`` no longer counted
    assert again == [0, 1]  # ... and its predecide
    assert rig.responder.complete(after).error is None and again == [0, 1]  # none in the lock
    assert lost.verified.decided.inp.items_today == 0


def test_the_hint_never_lets_the_quota_through(rig: Rig) -> None:
    """Decided with a hint, answered with the real figure, against a daily quota of 10:
    six requests of two items decided together; the sixth is refused on its hint, but the
    third is never answered, so the sixth is decided again and answered; the next is
    refused on the real figure."""
    batch = [preread(rig, request(STOLEN, CLEAN)) for _ in range(6)]
    assert [p.verified.decided.decision.allow for p in batch] == [True] * 5 + [False]
    del batch[2]  # never answered
    assert [rig.responder.complete(p).error for p in batch] == [None] * 5
    late = rig.responder.complete(preread(rig, request(STOLEN)))
    assert late.error is not None and late.error.reason == "quota_exhausted"
    assert rig.usage.items_today("KGZ-BS", DAY) == 10


def test_a_lookup_with_a_person_is_read_under_the_lock(rig: Rig) -> None:
    for items in ((WANTED,), (STOLEN, WANTED)):
        pending = preread(rig, request(*items))
        assert pending.verified.preread is None
        assert rig.responder.complete(pending).error is None


def test_a_failing_read_before_the_lock_costs_only_that_read(rig: Rig) -> None:
    calls: list[str] = []
    check_many = rig.lookup.watchlist.check_many

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append("read")
        if len(calls) == 1:
            raise KeyError("N1234567")  # a bug's text can hold a number
        return check_many(*args, **kwargs)

    rig.lookup.watchlist.check_many = flaky  # type: ignore[method-assign]
    with capture_logs() as logs:
        pending = preread(rig, request(STOLEN))
    [failed] = [e for e in logs if e["event"] == "preread_failed"]
    assert (failed["log_level"], failed["error"]) == ("warning", "KeyError")
    assert "N1234567" not in str(failed)
    assert pending.verified.preread is None and pending.error is None
    ex = rig.responder.complete(pending)
    assert outcomes(ex) == [("hit", "KZ-STOLEN-1", "seize_document")] and calls == ["read"] * 2


def test_a_refusal_reading_raises_waits_for_the_policy(rig: Rig) -> None:
    """A store that refuses to read (a sealed row found altered) tells a peer the policy
    refuses nothing: the read before the lock keeps no error; the answer reads again
    after the policy's step and raises it there."""
    def corrupt(*_: Any, **__: Any) -> Any:
        raise altered("document")

    rig.lookup.watchlist.check_many = corrupt  # type: ignore[method-assign]
    denied = rig.responder.complete(preread(rig, request(STOLEN, purpose="criminal_investigation")))
    assert denied.error is not None and denied.error.status == "PERMISSION_DENIED"
    allowed = rig.responder.complete(preread(rig, request(STOLEN)))
    assert allowed.error is not None  # the peer is told INTERNAL; the entry says why
    assert (allowed.error.status, allowed.error.reason) == ("INTERNAL", "internal_error")
    assert [(b["outcome"], b["status"], b["reason"]) for b in rig.audit.bodies()] == [
        ("denied", "PERMISSION_DENIED", denied.error.reason),
        ("rejected", "DATA_LOSS", "sealed_field_altered")]
