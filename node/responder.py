"""The responding side of an exchange, start to finish, with no network code.

``Responder.handle_lookup`` takes the envelope as received and the TLS
identity the transport saw, and returns what to send back.  Steps, in order
(README, "What the node checks"):

1. the signer is a member and the key id is one of its live keys;
2. the Ed25519 signature verifies over PAE(type, payload), before parsing;
3. the payload parses within every bound;
4. the header names the same node and key as the envelope;
5. the TLS client certificate belongs to the signing node;
6. issued-at is within the clock-skew window;
7. the nonce was never seen (the nonce table survives restarts);
8. policy allows it (agreements, purpose, dataset, batch size, daily quota);
9. the watchlist answers, and only policy-disclosed fields are kept;
10. the response (or a refusal, once the requester is verified) is signed,
    binding SHA-256 of the request's PAE bytes;
11. nonce, usage, receipt and audit entry commit in one durable transaction.

Only then does the caller send the response.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import nacl.signing
import structlog

from node.audit.log import MerkleAuditLog
from node.core import envelope as env_mod
from node.core.envelope import Envelope
from node.core.errors import BxError, PolicyDenied, Unauthenticated
from node.core.members import Member, MemberDirectory, signing_key
from node.core.model import (
    Decision,
    LookupAnswer,
    LookupRequest,
    PersonQuery,
    PolicyInput,
    Refusal,
    RequestHeader,
)
from node.policy import PolicyEngine
from node.store.sqlcipher import ReceiptRow, Store
from node.watchlist.lookup import DISCLOSABLE_FIELDS, Watchlist
from node.wire import convert

__all__ = [
    "Exchange",
    "Handler",
    "Pending",
    "Responder",
    "ResponderSettings",
    "Verified",
]

log = structlog.get_logger("bxnode.responder")


@dataclass(frozen=True, slots=True)
class ResponderSettings:
    node_id: str
    max_batch: int = 500
    clock_skew_ms: int = 120_000


@dataclass(slots=True)
class Exchange:
    """What happened to one request: the response to send, or the error and its refusal."""

    response: Envelope | None = None
    error: BxError | None = None
    refusal: Envelope | None = None
    audit_seq: int = 0
    hits: int = 0
    items: int = 0
    audit: dict[str, object] = field(default_factory=dict)
    policy_input: PolicyInput | None = None


R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Verified(Generic[R]):
    """A request that passed steps 1-7: who sent it, what it says, the digest it is bound to."""

    member: Member
    request: R
    header: RequestHeader
    digest: bytes
    now_ms: int


@dataclass(slots=True)
class Pending(Generic[R]):
    """A request between :meth:`Responder.prepare` and :meth:`Responder.complete`."""

    handler: Handler[R]
    raw: Envelope | BxError
    now_ms: int
    ex: Exchange = field(default_factory=lambda: Exchange())
    verified: Verified[R] | None = None
    error: BxError | None = None


class Handler(Protocol[R]):
    """One kind of signed request.  The generic steps live in :class:`Responder`."""

    event: str
    request_type: str

    def decode(self, payload: bytes) -> R:
        """Parse and bound-check the payload (step 3); raise InvalidInput."""
        ...

    def header(self, request: R) -> RequestHeader: ...

    def describe(self, request: R) -> dict[str, Any]:
        """Audit fields for this request (no personal data)."""
        ...

    def answer(self, v: Verified[R], ex: Exchange) -> tuple[str, bytes]:
        """Decide and answer (steps 8-9): ``(payload_type, payload)`` to sign; raise to refuse.

        Runs inside a savepoint: anything it wrote is rolled back if it raises.
        """
        ...


class Responder:
    """The generic exchange: authenticate, check freshness, answer, sign, audit, commit."""

    def __init__(
        self,
        *,
        settings: ResponderSettings,
        signing_key: nacl.signing.SigningKey,
        directory: MemberDirectory,
        policy: PolicyEngine,
        store: Store,
        watchlist: Watchlist,
        clock_ms: Callable[[], int],
    ) -> None:
        self.settings = settings
        self._key = signing_key
        self.key_id = env_mod.key_id_for(bytes(signing_key.verify_key))
        self.directory = directory
        self.policy = policy
        self.store = store
        self.audit_log = MerkleAuditLog(store=store, node_id=settings.node_id,
                                        signing_key=signing_key)
        self.clock_ms = clock_ms
        self.lookup = LookupHandler(self, watchlist)

    def handle_lookup(self, raw: Envelope | BxError, *, tls_fingerprint: str | None,
                      request_id: str = "") -> Exchange:
        return self.handle(self.lookup, raw, tls_fingerprint=tls_fingerprint,
                           request_id=request_id)

    def handle(self, handler: Handler[R], raw: Envelope | BxError, *,
               tls_fingerprint: str | None, request_id: str = "") -> Exchange:
        """Answer one signed request.  ``raw`` is the envelope, or the error decoding raised."""
        return self.complete(self.prepare(handler, raw, tls_fingerprint=tls_fingerprint,
                                          request_id=request_id))

    def prepare(self, handler: Handler[R], raw: Envelope | BxError, *,
                tls_fingerprint: str | None, request_id: str = "") -> Pending[R]:
        """Steps 1-6, which need no database: the server runs them while a batch commits."""
        now = self.clock_ms()
        pending: Pending[R] = Pending(handler=handler, raw=raw, now_ms=now)
        a = pending.ex.audit
        a.update(event=handler.event, request_id=request_id, verified=False,
                 tls_peer=tls_fingerprint or "plaintext", policy_digest=self.policy.digest)
        try:
            if isinstance(raw, BxError):
                raise raw
            digest = env_mod.digest(raw)
            a.update(requester=raw.signer, request_digest=digest.hex())
            pending.verified = self._authenticate(handler, raw, tls_fingerprint, now, digest)
            a["verified"] = True
            a.update(_header_fields(pending.verified.header))
            a.update(handler.describe(pending.verified.request))
        except BxError as exc:
            pending.error = exc
        return pending

    def complete(self, pending: Pending[R]) -> Exchange:
        """Steps 7-11 in one transaction (a savepoint of the open batch under group commit)."""
        ex, verified, now, raw = pending.ex, pending.verified, pending.now_ms, pending.raw
        a = ex.audit
        with self.store.transaction():
            try:
                if pending.error is not None:
                    raise pending.error
                assert verified is not None
                if not self.store.remember_nonce(                                   # 7
                        verified.member.node_id, verified.header.nonce,
                        expires_ms=now + 2 * self.settings.clock_skew_ms, now_ms=now):
                    raise Unauthenticated("this nonce was used before", reason="replayed_nonce")
                with self.store.savepoint():
                    payload_type, payload = pending.handler.answer(verified, ex)
                    ex.response = self.sign(payload_type, payload)
                a.setdefault("outcome", "answered")
                a.update(status="OK", response_digest=hashlib.sha256(env_mod.pae(
                    ex.response.payload_type, ex.response.payload)).hexdigest())
            except BxError as exc:
                ex.error = exc
                ex.response = None
                a.update(outcome="denied" if isinstance(exc, PolicyDenied) else "rejected",
                         status=exc.status, reason=exc.reason,
                         reasons=list(getattr(exc, "reasons", (exc.reason,))))
                if verified is not None:
                    ex.refusal = self._refuse(exc, verified.digest, now)
            ex.audit_seq = self.audit_log.append(a, time_ms=now)
            sent = ex.response or ex.refusal
            if verified is not None and sent is not None:
                assert isinstance(raw, Envelope)
                self.store.put_receipt(ReceiptRow(
                    "received", verified.member.node_id, verified.digest, _pack(raw),
                    _pack(sent), now))
        log.info(pending.handler.event, outcome=a.get("outcome"), status=a.get("status", "OK"),
                 reason=a.get("reason", ""), requester=a.get("requester", ""),
                 items=ex.items, hits=ex.hits, audit_seq=ex.audit_seq)
        return ex

    # --- generic steps ----------------------------------------------------------------------

    def _authenticate(self, handler: Handler[R], raw: Envelope, tls_fingerprint: str | None,
                      now: int, digest: bytes) -> Verified[R]:
        member = self.directory.member(raw.signer)                           # 1
        public = signing_key(member, raw.key_id, now)                        # 1
        env_mod.verify(raw, public, expected_type=handler.request_type)      # 2
        request = handler.decode(raw.payload)                                # 3
        h = handler.header(request)
        if h.requester != raw.signer or h.key_id != raw.key_id:              # 4
            raise Unauthenticated("payload header names another signer or key",
                                  reason="signer_mismatch")
        if tls_fingerprint is not None and tls_fingerprint not in member.tls_cert_sha256:  # 5
            raise Unauthenticated("TLS client certificate does not belong to the signing node",
                                  reason="tls_identity_mismatch")
        if abs(now - h.issued_at_ms) > self.settings.clock_skew_ms:         # 6
            raise Unauthenticated("request time is outside the allowed clock skew",
                                  reason="stale_request")
        return Verified(member=member, request=request, header=h, digest=digest, now_ms=now)

    def sign(self, payload_type: str, payload: bytes) -> Envelope:
        return env_mod.sign(payload_type=payload_type, payload=payload,
                            signer=self.settings.node_id, key=self._key)

    def next_audit_seq(self) -> int:
        """The sequence number this request's audit entry will get (we hold the write lock)."""
        return self.audit_log.next_seq()

    def decide(self, v: Verified[Any], ex: Exchange, *, query_kind: str,
               datasets: tuple[str, ...], data_types: tuple[str, ...],
               batch_size: int) -> Decision:
        """Ask policy (step 8); record the decision in the audit entry; raise on deny."""
        day = dt.datetime.fromtimestamp(v.now_ms / 1000, dt.UTC).date().isoformat()
        h = v.header
        inp = PolicyInput(
            requester_node=v.member.node_id,
            requester_country=v.member.country,
            requester_agency=v.member.agency,
            operator=h.operator,
            purpose=h.purpose,
            legal_basis=h.legal_basis,
            case_ref=h.case_ref,
            query_kind=query_kind,
            datasets=datasets,
            data_types=data_types,
            batch_size=batch_size,
            items_today=self.store.items_today(v.member.node_id, day),
            time_ms=v.now_ms,
            responder_node=self.settings.node_id,
        )
        decision = self.policy.decide(inp)
        ex.policy_input = inp
        ex.audit.update(decision="allow" if decision.allow else "deny",
                        reasons=list(decision.reasons))
        if not decision.allow:
            raise PolicyDenied("the owner's policy refused this request",
                               reasons=decision.reasons)
        self.store.add_usage(v.member.node_id, day, batch_size)
        return decision

    def _refuse(self, exc: BxError, digest: bytes, now: int) -> Envelope:
        refusal = Refusal(
            responder=self.settings.node_id, key_id=self.key_id, request_digest=digest,
            issued_at_ms=now, status=exc.status, reason=exc.reason,
            reasons=tuple(getattr(exc, "reasons", (exc.reason,))),
            audit_seq=self.next_audit_seq())
        return self.sign(env_mod.RESPONSE_TYPE, convert.encode_refusal(refusal))


class LookupHandler:
    """Hit / no-hit lookups of documents, persons and manifests."""

    event = "lookup"
    request_type = env_mod.REQUEST_TYPE

    def __init__(self, responder: Responder, watchlist: Watchlist) -> None:
        self._r = responder
        self.watchlist = watchlist

    def decode(self, payload: bytes) -> LookupRequest:
        return convert.decode_request(payload, max_items=self._r.settings.max_batch)

    def header(self, request: LookupRequest) -> RequestHeader:
        return request.header

    def describe(self, req: LookupRequest) -> dict[str, Any]:
        return {"query_kind": req.kind.value, "datasets": list(req.datasets),
                "data_types": list(req.data_types), "items": len(req.items)}

    def answer(self, v: Verified[LookupRequest], ex: Exchange) -> tuple[str, bytes]:
        req = v.request
        decision = self._r.decide(v, ex, query_kind=req.kind.value, datasets=req.datasets,
                                  data_types=req.data_types, batch_size=len(req.items))
        day = dt.datetime.fromtimestamp(v.now_ms / 1000, dt.UTC).date()
        fields = decision.disclose & DISCLOSABLE_FIELDS
        params = None
        if any(isinstance(item, PersonQuery) for item in req.items):
            assert ex.policy_input is not None
            params = matching_params(self._r.policy, ex.policy_input)
            ex.audit.update(match_threshold=params[0], max_candidates=params[1])
        results = tuple(
            Watchlist.disclose(i, hit, fields)
            for i, hit in enumerate(self.watchlist.check_many(req.items, day, params))
        )
        ex.items = len(results)
        ex.hits = sum(1 for r in results if r.outcome.value == "hit")
        ex.audit.update(hits=ex.hits, no_hits=ex.items - ex.hits, disclosed=sorted(fields))
        answer = LookupAnswer(
            responder=self._r.settings.node_id, key_id=self._r.key_id, request_digest=v.digest,
            issued_at_ms=v.now_ms, results=results, audit_seq=self._r.next_audit_seq())
        return env_mod.RESPONSE_TYPE, convert.encode_answer(answer)


MATCHING_QUERY = "data.bxnode.lookup.matching"


def matching_params(policy: PolicyEngine, inp: PolicyInput) -> tuple[float, int]:
    """The owner's policy says how strictly person lookups match (issue 6): the score a
    candidate needs (0..1) and how many candidates a query may consider (1..1000).
    Anything else is a policy error: the request is refused, never matched loosely."""
    answer = policy.decide_query(MATCHING_QUERY, inp.as_document())
    threshold, limit = answer.get("threshold"), answer.get("max_candidates")
    if (answer.get("allow") is not True or isinstance(threshold, bool)
            or not isinstance(threshold, int | float) or not 0 < threshold <= 1
            or isinstance(limit, bool) or not isinstance(limit, int | float)
            or limit != int(limit) or not 1 <= limit <= 1000):
        raise PolicyDenied("the owner's policy gave no valid matching parameters",
                           reasons=("policy_error",))
    return float(threshold), int(limit)


def _header_fields(h: RequestHeader) -> dict[str, Any]:
    return {"operator": h.operator, "purpose": h.purpose, "legal_basis": h.legal_basis,
            "case_ref": h.case_ref, "issued_at_ms": h.issued_at_ms}


def _pack(e: Envelope) -> bytes:
    return bytes(convert.envelope_to_pb(e).SerializeToString())
