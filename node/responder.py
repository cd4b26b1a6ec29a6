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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import structlog

from node.core import envelope as env_mod
from node.core.envelope import Envelope
from node.core.errors import BxError, EnvironmentFault, PolicyDenied, Unauthenticated, for_peer
from node.core.members import Member, MemberDirectory, signing_key
from node.core.model import Refusal, RequestHeader
from node.core.ports import (
    Answer,
    AuditRecord,
    AuditSink,
    NonceLedger,
    Receipt,
    ReceiptStore,
    UnitOfWork,
    facts_of,
)
from node.core.signer import SigningKeyLike, as_signer
from node.logging import unexpected
from node.policy import PolicyEngine
from node.wire import convert

__all__ = [
    "Exchange",
    "Handler",
    "Pending",
    "Responder",
    "ResponderSettings",
    "Verified",
    "log_exchange",
]

log = structlog.get_logger("bxnode.responder")

#: The name every unit of work locks before it reserves an audit sequence number.
AUDIT_LOCK = "audit"


@dataclass(frozen=True, slots=True)
class ResponderSettings:
    node_id: str
    max_batch: int = 500
    clock_skew_ms: int = 120_000


@dataclass(frozen=True, slots=True)
class Exchange:
    """What happened to one request: the response to send, or the error and its refusal."""

    record: AuditRecord
    response: Envelope | None = None
    error: BxError | None = None
    refusal: Envelope | None = None
    audit_seq: int = 0
    hits: int = 0
    items: int = 0
    #: The serialized SignedEnvelope of ``response`` or ``refusal``, as the receipt keeps
    #: it (b"" when neither was signed): encoded once, and sent as it is.
    sent: bytes = b""

    @property
    def audit(self) -> dict[str, Any]:
        """The audit entry's body, as appended."""
        return self.record.body()


R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Verified(Generic[R]):
    """A request that passed steps 1-6: who sent it, what it says, the digest it is bound to.

    ``fetched`` is what the handler's optional ``prefetch`` step read for its decision
    (on the database thread, between batches), or None; ``decided`` is what its optional
    ``predecide`` step worked out off the database thread (the policy's decision), or None;
    ``preread`` what its optional ``preread`` step read for its answer just before the
    batch's transaction opened, or None.
    """

    member: Member
    request: R
    header: RequestHeader
    digest: bytes
    now_ms: int
    fetched: Any = None
    decided: Any = None
    preread: Any = None


@dataclass(frozen=True, slots=True)
class Pending(Generic[R]):
    """A request between :meth:`Responder.prepare` and :meth:`Responder.complete`."""

    handler: Handler[R]
    raw: Envelope | BxError
    now_ms: int
    base: AuditRecord
    verified: Verified[R] | None = None
    error: BxError | None = None

    @property
    def request_id(self) -> str:
        return self.base.request_id


class Handler(Protocol[R]):
    """One kind of signed request.  The generic steps live in :class:`Responder`.

    A handler may also define ``predecide(v: Verified[R]) -> Any``: work that needs no
    write (the policy's decision), run before the request joins a unit of work, off the
    database thread; its result reaches :meth:`answer` as ``v.decided``.  And with it
    ``predecide_cached(v) -> Any | None``: the same result when it can be had without
    blocking (the policy's answers already cached), else None.
    A decision that
    needs stored facts (the BCP map, the hit a follow-up is about) reads them first in
    ``prefetch(v: Verified[R]) -> Any``, on the database thread between batches and outside
    any unit of work; its result reaches ``predecide`` and ``answer`` as ``v.fetched``.  So
    a slow policy holds a policy thread, never the database thread every request needs.

    And ``preread(v: Verified[R]) -> Any``: reads for the answer, run on the database
    thread just before the batch's transaction opens, outside the writers' lock (the
    serial section every replica and worker shares); its result reaches :meth:`answer` as
    ``v.preread``, which must use it only after checking, under the lock, that what it
    read has not changed since (node/watchlist/lookup.py, "Read before the lock").  If it
    raises, :meth:`answer` reads under the lock as without it.
    """

    event: str
    request_type: str

    def decode(self, payload: bytes) -> R:
        """Parse and bound-check the payload (step 3); raise InvalidInput."""
        ...

    def header(self, request: R) -> RequestHeader: ...

    def describe(self, request: R) -> Mapping[str, Any]:
        """Audit fields for this request (no personal data)."""
        ...

    def answer(self, v: Verified[R], audit_seq: int) -> Answer:
        """Decide and answer (steps 8-9); raise to refuse (attach audit facts with
        :func:`node.core.ports.with_facts`).  ``audit_seq`` is the number this request's
        audit entry gets; answers carry it.

        Runs inside a savepoint: anything it wrote is rolled back if it raises.
        """
        ...


class Responder:
    """The generic exchange: authenticate, check freshness, answer, sign, audit, commit.

    It knows no SQL, no sockets and no clock of its own: storage comes through the ports
    it is given, time through ``clock_ms``.
    """

    def __init__(
        self,
        *,
        settings: ResponderSettings,
        signing_key: SigningKeyLike,
        directory: MemberDirectory,
        policy: PolicyEngine,
        uow: UnitOfWork,
        nonces: NonceLedger,
        receipts: ReceiptStore,
        audit: AuditSink,
        clock_ms: Callable[[], int],
        audit_log: Any = None,
    ) -> None:
        self.settings = settings
        self._key = as_signer(signing_key)
        self.key_id = env_mod.key_id_for(self._key.public_key)
        self.directory = directory
        self.policy = policy
        self.uow = uow
        self.nonces = nonces
        self.receipts = receipts
        self.audit = audit
        #: The Merkle log behind ``audit`` (proofs, checkpoints), for the audit services.
        self.audit_log = audit_log
        self.clock_ms = clock_ms

    def handle(self, handler: Handler[R], raw: Envelope | BxError, *,
               tls_fingerprint: str | None, request_id: str = "") -> Exchange:
        """Answer one signed request.  ``raw`` is the envelope, or the error decoding raised."""
        pending = self.prepare(handler, raw, tls_fingerprint=tls_fingerprint,
                               request_id=request_id)
        pending = self.preread(self.predecide(self.prefetch(pending)))
        ex = self.complete(pending)
        log_exchange(pending, ex)
        return ex

    def prepare(self, handler: Handler[R], raw: Envelope | BxError, *,
                tls_fingerprint: str | None, request_id: str = "") -> Pending[R]:
        """Steps 1-6, which need no database: the server runs them while a batch commits."""
        now = self.clock_ms()
        # Step 0: who is on the other end of the TLS connection.  A certificate the CA
        # signed but no member lists gets one reason, before any member-specific check, so
        # it cannot probe which node ids or keys exist.  The audit record is built once,
        # from what is known when the request leaves this step.
        event, tls_peer = handler.event, tls_fingerprint or "plaintext"
        requester = ""
        if tls_fingerprint is not None:
            try:
                requester = self.directory.sender_of(tls_fingerprint)
            except BxError as exc:
                return Pending(handler=handler, raw=raw, now_ms=now, error=exc, base=AuditRecord(
                    event=event, time_ms=now, request_id=request_id, tls_peer=tls_peer,
                    policy_digest=self.policy.digest))
        if isinstance(raw, BxError):
            return Pending(handler=handler, raw=raw, now_ms=now, error=raw, base=AuditRecord(
                event=event, time_ms=now, request_id=request_id, tls_peer=tls_peer,
                policy_digest=self.policy.digest, requester=requester))
        digest = env_mod.digest(raw)
        try:
            verified = self._authenticate(handler, raw, tls_fingerprint, now, digest)
        except BxError as exc:
            return Pending(handler=handler, raw=raw, now_ms=now, error=exc, base=AuditRecord(
                event=event, time_ms=now, request_id=request_id, tls_peer=tls_peer,
                policy_digest=self.policy.digest, requester=requester,
                claimed_signer=raw.signer, request_digest=digest.hex()))
        return Pending(handler=handler, raw=raw, now_ms=now, verified=verified, base=AuditRecord(
            event=event, time_ms=now, request_id=request_id, tls_peer=tls_peer,
            policy_digest=self.policy.digest, requester=verified.member.node_id,
            claimed_signer=raw.signer, request_digest=digest.hex(), verified=True,
            header=_header_fields(verified.header),
            described=dict(handler.describe(verified.request))))

    def prefetch(self, pending: Pending[R]) -> Pending[R]:
        """The handler's reads for its decision, if it has any; on the database thread,
        between batches (no unit of work: nothing is written)."""
        return self._step(pending, "prefetch", "fetched")

    def predecide(self, pending: Pending[R]) -> Pending[R]:
        """The handler's write-free step (policy), if it has one; off the database thread."""
        return self._step(pending, "predecide", "decided")

    def preread(self, pending: Pending[R], *, answer: bool = True) -> Pending[R]:
        """Just before the batch's transaction opens (no unit of work, no lock): the
        request's nonce announced to the ledger (read with the batch's others under the
        lock, step 7), and (``answer``) the handler's reads for its answer, if it has any.
        A failure costs nothing but the read: :meth:`complete` reads under the lock
        instead, and a refusal the read raised is raised there, after the nonce and the
        policy steps, as it always was."""
        v = pending.verified
        if v is None or pending.error is not None:
            return pending
        self.nonces.expect(v.member.node_id, v.header.nonce)
        fn = getattr(pending.handler, "preread", None) if answer else None
        if fn is None:
            return pending
        try:
            result = fn(v)
        except BxError:
            return pending
        except Exception as exc:
            log.warning("preread_failed", handler=pending.handler.event, **unexpected(exc))
            return pending
        return _with_result(pending, "preread", result)

    def _step(self, pending: Pending[R], step: str, into: str) -> Pending[R]:
        """Run the handler's optional ``step``; its result goes into ``verified.<into>``.
        A refusal it raises is kept for :meth:`complete` to audit and sign; any other
        exception (a bug, a driver error) becomes INTERNAL/internal_error likewise."""
        fn = getattr(pending.handler, step, None)
        if pending.verified is None or pending.error is not None or fn is None:
            return pending
        try:
            result = fn(pending.verified)
        except BxError as exc:
            return _with_error(pending, exc)
        except Exception as exc:
            log.error("handler_failed", handler=pending.handler.event, step=step,
                      **unexpected(exc))
            return _with_error(pending, _internal(exc))
        return _with_result(pending, into, result)

    def predecide_cached(self, pending: Pending[R]) -> Pending[R] | None:
        """:meth:`predecide` when it needs no evaluation (the handler's
        ``predecide_cached`` found the policy's answers in its cache), else None: then
        the caller runs :meth:`predecide`, off the event loop."""
        if pending.verified is None or pending.error is not None:
            return pending
        pre = getattr(pending.handler, "predecide_cached", None)
        if pre is None:
            return None if getattr(pending.handler, "predecide", None) else pending
        try:
            decided = pre(pending.verified)
        except BxError as exc:
            return _with_error(pending, exc)
        except Exception:
            return None  # the evaluation's own path (predecide) reports it
        return None if decided is None else _with_result(pending, "decided", decided)

    def complete(self, pending: Pending[R]) -> Exchange:
        """Steps 7-11 in one unit of work (a savepoint of the open batch under group commit).

        Any error that is not a :class:`BxError` (a bug, a driver error inside a handler)
        becomes INTERNAL/internal_error to the peer, with its audit entry; the detail goes
        to the error log only.
        """
        verified, now = pending.verified, pending.now_ms
        response = refusal = None
        error: BxError | None = None
        answer: Answer | None = None
        with self.uow.transaction():
            self.uow.lock(AUDIT_LOCK)
            seq = self.audit.reserve()
            try:
                if pending.error is not None:
                    raise pending.error
                assert verified is not None
                if not self.nonces.remember(                                        # 7
                        verified.member.node_id, verified.header.nonce,
                        expires_ms=now + 2 * self.settings.clock_skew_ms, now_ms=now):
                    raise Unauthenticated("this nonce was used before", reason="replayed_nonce")
                with self.uow.savepoint():
                    try:
                        answer = pending.handler.answer(verified, seq)              # 8-9
                    except BxError:
                        raise
                    except Exception as exc:
                        log.error("handler_failed", handler=pending.handler.event,
                                  **unexpected(exc))
                        raise _internal(exc) from exc
                    response, response_digest = env_mod.sign_with_digest(            # 10
                        payload_type=answer.payload_type, payload=answer.payload,
                        signer=self.settings.node_id, key=self._key, key_id=self.key_id)
                record = pending.base.done(facts=answer.facts, outcome="answered",
                                           response_digest=response_digest.hex())
            except BxError as exc:
                # The entry keeps the real reason; the peer is told one it may see.
                error, response = for_peer(exc), None
                facts = facts_of(exc)
                if error is not exc:
                    facts = {**facts, "told_status": error.status, "told_reason": error.reason}
                record = pending.base.done(
                    facts=facts,
                    outcome="denied" if isinstance(exc, PolicyDenied) else "rejected",
                    status=exc.status, reason=exc.reason,
                    reasons=tuple(getattr(exc, "reasons", (exc.reason,))))
                if verified is not None:
                    try:
                        refusal = self._refuse(error, verified.digest, now, seq)
                    except EnvironmentFault as sign_exc:  # the token is gone: refuse unsigned
                        if sign_exc.reason != "signing_key_unavailable":
                            raise
                        refusal = None
            appended = self.audit.append_record(record, seq=seq)                  # 11
            if appended != seq:
                raise RuntimeError(f"audit sequence moved under the lock ({seq} != {appended})")
            sent = response or refusal
            sent_pb = b"" if sent is None else _pack(sent)
            if verified is not None and sent is not None:
                assert isinstance(pending.raw, Envelope)
                self.receipts.put(Receipt(
                    "received", verified.member.node_id, verified.digest, _pack(pending.raw),
                    sent_pb, now))
        return Exchange(record=record, response=response, error=error, refusal=refusal,
                        audit_seq=seq, items=answer.items if answer else 0,
                        hits=answer.hits if answer else 0, sent=sent_pb)

    def record_refusals(self, records: Sequence[AuditRecord]) -> list[int]:
        """Append already-built refusal records (the over-limit refusals' aggregated entries,
        :class:`node.server.limits.OverLimitTally`) in one unit of work; their seqs."""
        seqs = []
        with self.uow.transaction():
            self.uow.lock(AUDIT_LOCK)
            for record in records:
                seqs.append(self.audit.append_record(record))
        return seqs

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
        return env_mod.sign_with_digest(payload_type=payload_type, payload=payload,
                                        signer=self.settings.node_id, key=self._key,
                                        key_id=self.key_id)[0]

    def _refuse(self, exc: BxError, digest: bytes, now: int, seq: int) -> Envelope:
        refusal = Refusal(
            responder=self.settings.node_id, key_id=self.key_id, request_digest=digest,
            issued_at_ms=now, status=exc.status, reason=exc.reason,
            reasons=tuple(getattr(exc, "reasons", (exc.reason,))), audit_seq=seq)
        return self.sign(env_mod.RESPONSE_TYPE, convert.encode_refusal(refusal))


def log_exchange(pending: Pending[Any], ex: Exchange) -> None:
    """The request's info line: once its unit of work has committed (the caller knows
    when; under group commit, once the batch is durable, off the database thread and the
    writers' lock).  A request whose batch did not commit has no such line: its caller
    logs ``request_not_durable`` instead."""
    record = ex.record
    log.info(pending.handler.event, outcome=record.outcome, status=record.status,
             reason=record.reason, requester=record.requester, items=ex.items, hits=ex.hits,
             audit_seq=ex.audit_seq)


def _with_error(p: Pending[R], exc: BxError) -> Pending[R]:
    return Pending(handler=p.handler, raw=p.raw, now_ms=p.now_ms, base=p.base,
                   verified=p.verified, error=exc)


def _with_result(p: Pending[R], into: str, value: Any) -> Pending[R]:
    """``p`` with ``verified.fetched``, ``.decided`` or ``.preread`` (``into``) set to
    ``value``."""
    v = p.verified
    assert v is not None
    fetched, decided, preread = v.fetched, v.decided, v.preread
    if into == "fetched":
        fetched = value
    elif into == "decided":
        decided = value
    else:
        assert into == "preread", into
        preread = value
    return Pending(handler=p.handler, raw=p.raw, now_ms=p.now_ms, base=p.base, error=p.error,
                   verified=Verified(member=v.member, request=v.request, header=v.header,
                                     digest=v.digest, now_ms=v.now_ms, fetched=fetched,
                                     decided=decided, preread=preread))


def _internal(exc: Exception) -> BxError:
    err = BxError("the node failed to answer this request", reason="internal_error")
    err.status = "INTERNAL"
    return err


def _header_fields(h: RequestHeader) -> dict[str, Any]:
    return {"operator": h.operator, "purpose": h.purpose, "legal_basis": h.legal_basis,
            "case_ref": h.case_ref, "issued_at_ms": h.issued_at_ms}


def _pack(e: Envelope) -> bytes:
    return bytes(convert.envelope_to_pb(e).SerializeToString())
