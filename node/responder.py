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

import nacl.signing
import structlog

from node.audit.chain import HashChainLog
from node.core import envelope as env_mod
from node.core.envelope import Envelope
from node.core.errors import BxError, InvalidInput, PolicyDenied, Unauthenticated
from node.core.members import Member, MemberDirectory, signing_key
from node.core.model import LookupAnswer, LookupRequest, PolicyInput, Refusal
from node.policy import PolicyEngine
from node.store.sqlcipher import ReceiptRow, Store
from node.watchlist.lookup import DISCLOSABLE_FIELDS, Watchlist
from node.wire import convert

__all__ = ["Exchange", "Responder", "ResponderSettings"]

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


class Responder:
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
        self._s = settings
        self._key = signing_key
        self._key_id = env_mod.key_id_for(bytes(signing_key.verify_key))
        self._directory = directory
        self._policy = policy
        self._store = store
        self._audit = HashChainLog(store=store)
        self._watchlist = watchlist
        self._clock_ms = clock_ms

    @property
    def key_id(self) -> str:
        return self._key_id

    def handle_lookup(self, raw: Envelope | BxError, *, tls_fingerprint: str | None,
                      request_id: str = "") -> Exchange:
        """Answer one lookup.  ``raw`` is the envelope, or the error its decoding raised."""
        now = self._clock_ms()
        ex = Exchange()
        a = ex.audit
        a.update(event="lookup", request_id=request_id, verified=False,
                 tls_peer=tls_fingerprint or "plaintext", policy_digest=self._policy.digest)
        request: LookupRequest | None = None
        member: Member | None = None
        digest = b""
        with self._store.transaction():
            try:
                if isinstance(raw, BxError):
                    raise raw
                digest = env_mod.digest(raw)
                a.update(requester=raw.signer, request_digest=digest.hex())
                member, request = self._authenticate(raw, tls_fingerprint, now)
                a["verified"] = True
                self._describe(a, request)
                if not self._store.remember_nonce(
                        member.node_id, request.header.nonce,
                        expires_ms=now + 2 * self._s.clock_skew_ms, now_ms=now):
                    raise Unauthenticated("this nonce was used before", reason="replayed_nonce")
                with self._store.savepoint():
                    ex.response = self._answer(request, member, digest, now, ex)
            except BxError as exc:
                ex.error = exc
                a.update(outcome="denied" if isinstance(exc, PolicyDenied) else "rejected",
                         status=exc.status, reason=exc.reason,
                         reasons=list(getattr(exc, "reasons", (exc.reason,))))
                if request is not None:
                    ex.refusal = self._refuse(exc, digest, now)
            seq = self._audit.append(a, time_ms=now)
            ex.audit_seq = seq
            sent = ex.response or ex.refusal
            if request is not None and member is not None and sent is not None:
                assert isinstance(raw, Envelope)
                self._store.put_receipt(ReceiptRow(
                    "received", member.node_id, digest, _pack(raw), _pack(sent), now))
        log.info("lookup", outcome=a.get("outcome"), status=a.get("status", "OK"),
                 reason=a.get("reason", ""), requester=a.get("requester", ""),
                 items=ex.items, hits=ex.hits, audit_seq=ex.audit_seq)
        return ex

    # --- steps ------------------------------------------------------------------------------

    def _authenticate(self, raw: Envelope, tls_fingerprint: str | None,
                      now: int) -> tuple[Member, LookupRequest]:
        member = self._directory.member(raw.signer)                          # 1
        public = signing_key(member, raw.key_id, now)                        # 1
        env_mod.verify(raw, public, expected_type=env_mod.REQUEST_TYPE)      # 2
        request = convert.decode_request(raw.payload, max_items=self._s.max_batch)  # 3
        h = request.header
        if h.requester != raw.signer or h.key_id != raw.key_id:              # 4
            raise Unauthenticated("payload header names another signer or key",
                                  reason="signer_mismatch")
        if tls_fingerprint is not None and tls_fingerprint not in member.tls_cert_sha256:  # 5
            raise Unauthenticated("TLS client certificate does not belong to the signing node",
                                  reason="tls_identity_mismatch")
        if abs(now - h.issued_at_ms) > self._s.clock_skew_ms:               # 6
            raise Unauthenticated("request time is outside the allowed clock skew",
                                  reason="stale_request")
        return member, request

    def _answer(self, req: LookupRequest, member: Member, digest: bytes, now: int,
                ex: Exchange) -> Envelope:
        day = dt.datetime.fromtimestamp(now / 1000, dt.UTC).date()
        used = self._store.items_today(member.node_id, day.isoformat())
        decision = self._policy.decide(PolicyInput(
            requester_node=member.node_id,
            requester_country=member.country,
            requester_agency=member.agency,
            operator=req.header.operator,
            purpose=req.header.purpose,
            legal_basis=req.header.legal_basis,
            case_ref=req.header.case_ref,
            query_kind=req.kind.value,
            datasets=req.datasets,
            data_types=req.data_types,
            batch_size=len(req.items),
            items_today=used,
            time_ms=now,
            responder_node=self._s.node_id,
        ))
        ex.audit.update(decision="allow" if decision.allow else "deny",
                        reasons=list(decision.reasons))
        if not decision.allow:
            raise PolicyDenied("the owner's policy refused this request",
                               reasons=decision.reasons)
        fields = decision.disclose & DISCLOSABLE_FIELDS
        results = tuple(
            Watchlist.disclose(i, self._watchlist.check(item, day), fields)
            for i, item in enumerate(req.items)
        )
        self._store.add_usage(member.node_id, day.isoformat(), len(req.items))
        ex.items = len(results)
        ex.hits = sum(1 for r in results if r.outcome.value == "hit")
        answer = LookupAnswer(
            responder=self._s.node_id, key_id=self._key_id, request_digest=digest,
            issued_at_ms=now, results=results, audit_seq=self._audit_next())
        response = env_mod.sign(payload_type=env_mod.RESPONSE_TYPE,
                                payload=convert.encode_answer(answer),
                                signer=self._s.node_id, key=self._key)
        ex.audit.update(outcome="answered", status="OK", hits=ex.hits,
                        no_hits=ex.items - ex.hits, disclosed=sorted(fields),
                        response_digest=hashlib.sha256(env_mod.pae(
                            response.payload_type, response.payload)).hexdigest())
        return response

    def _refuse(self, exc: BxError, digest: bytes, now: int) -> Envelope:
        refusal = Refusal(
            responder=self._s.node_id, key_id=self._key_id, request_digest=digest,
            issued_at_ms=now, status=exc.status, reason=exc.reason,
            reasons=tuple(getattr(exc, "reasons", (exc.reason,))),
            audit_seq=self._audit_next())
        return env_mod.sign(payload_type=env_mod.RESPONSE_TYPE,
                            payload=convert.encode_refusal(refusal),
                            signer=self._s.node_id, key=self._key)

    def _audit_next(self) -> int:
        tail = self._store.audit_tail()
        return 1 if tail is None else tail[0] + 1

    @staticmethod
    def _describe(a: dict[str, object], req: LookupRequest) -> None:
        h = req.header
        a.update(operator=h.operator, purpose=h.purpose, legal_basis=h.legal_basis,
                 case_ref=h.case_ref, query_kind=req.kind.value, datasets=list(req.datasets),
                 data_types=list(req.data_types), items=len(req.items),
                 issued_at_ms=h.issued_at_ms)


def _pack(e: Envelope) -> bytes:
    return convert.envelope_to_pb(e).SerializeToString()


def decode_error_to_bx(exc: Exception) -> BxError:
    if isinstance(exc, BxError):
        return exc
    return InvalidInput("request could not be decoded", reason="malformed_payload")
