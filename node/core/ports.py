"""The ports the exchange pipeline talks through: small protocols, no I/O of their own.

The pipeline (:mod:`node.responder`) and every capability's handler receive these
through their constructors.  The adapters live under ``node/store/``: SQLCipher and
PostgreSQL (over :class:`node.store.db.Database`) and an in-memory one
(``node/store/memory/``) that drives the pipeline's unit tests, the way python-tuf tests
its client against a repository simulator.

Every port method runs inside the caller's unit of work (:class:`UnitOfWork`): what it
writes becomes durable only when the outermost transaction commits, and is rolled back
with it.  The audit sink hands out sequence numbers only while a unit of work holds the
log's append lock (``Database.lock("audit")`` on a shared database), so the number a
response carries is the one its entry gets, on every replica.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Answer",
    "AuditRecord",
    "AuditSink",
    "NonceLedger",
    "Receipt",
    "ReceiptStore",
    "UnitOfWork",
    "UsageLedger",
    "WatchlistStore",
]


class UnitOfWork(Protocol):
    """One durable transaction; nested calls are savepoints."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def savepoint(self) -> AbstractContextManager[None]: ...

    def before_commit(self, key: str, fn: Callable[[], None]) -> None: ...

    def lock(self, name: str) -> None: ...


class NonceLedger(Protocol):
    def remember(self, node_id: str, nonce: bytes, *, expires_ms: int, now_ms: int) -> bool:
        """Record a nonce; False when it was seen before and has not expired.

        On a shared database this is a unique constraint, not a cache: a nonce one
        replica accepted is refused by every other.
        """
        ...

    def expect(self, node_id: str, nonce: bytes) -> None:
        """A nonce the next transaction will :meth:`remember` (a request of the batch
        being made): the ledger may read it with the batch's others in one statement.
        Nothing is recorded; a nonce announced and never asked about costs nothing."""
        ...


class UsageLedger(Protocol):
    def items_today(self, node_id: str, day: str) -> int: ...

    def add(self, node_id: str, day: str, items: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Receipt:
    """A signed request and the signed answer (or refusal) it got, as sent."""

    direction: str  # "received" (we answered) or "sent" (we asked)
    peer: str
    request_digest: bytes
    request_env: bytes
    response_env: bytes
    created_ms: int


class ReceiptStore(Protocol):
    def put(self, receipt: Receipt) -> None: ...

    def all(self, *, direction: str | None = None) -> list[Receipt]: ...


#: A document row as the watchlist store returns it: (owner_ref, action, contact).
DocumentHit = tuple[str, str, str]
#: A person row: (owner_ref, family, given, patronymic, dob, nationality, sex, action,
#: contact, expires).
PersonRow = tuple[str, ...]


class WatchlistStore(Protocol):
    def find_documents_many(self, keys: Sequence[tuple[str, str, str]],
                            today: str) -> dict[tuple[str, str, str], list[DocumentHit]]:
        """Live records for many (number, issuing_state, doc_type) keys."""
        ...

    def iter_persons(self, today: str) -> Iterator[PersonRow]: ...

    def live_persons(self, owner_refs: Sequence[str], today: str) -> dict[str, PersonRow]:
        """The listed persons still live in the store (a hit is confirmed here before it is
        answered, so an alert changed on another replica never hits from a stale index)."""
        ...

    def generation(self) -> str | None:
        """Changes whenever the watchlist changes (the person index follows it)."""
        ...

    def sources_of(self, owner_refs: Sequence[str]) -> dict[str, str]:
        """The source agency of each listed alert that has one (issue 13)."""
        ...

    def person_changes(self, since: str | None, until: str | None,
                       today: str) -> dict[str, PersonRow | None] | None:
        """The persons changed after generation ``since`` up to ``until`` (the change feed),
        each with its live row now or None (withdrawn, expired); None when the feed cannot
        say (too far behind, too many changes): the person index then rebuilds fully."""
        ...

    def insert_documents(self, rows: Iterable[tuple[str, ...]]) -> int: ...

    def insert_persons(self, rows: Iterable[tuple[str, ...]]) -> int: ...

    def bump_generation(self, value: str) -> None: ...

    def counts(self) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit entry, built once from typed parts when the request is done.

    ``body()`` gives the mapping that is canonicalised into the Merkle log; its keys are
    the README's audit fields.  No personal data of travellers goes in here: handlers'
    ``facts`` hold counts, kinds, digests and references, never names or numbers.
    """

    event: str
    time_ms: int
    request_id: str = ""
    verified: bool = False
    tls_peer: str = "plaintext"
    policy_digest: str = ""
    #: The member the TLS client certificate belongs to (who really sent it), or "" when
    #: the transport named no member; the envelope's claimed signer is kept apart, so an
    #: auditor filtering by a peer sees only what that peer sent.
    requester: str = ""
    claimed_signer: str = ""
    request_digest: str = ""
    header: Mapping[str, Any] = field(default_factory=dict)
    described: Mapping[str, Any] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)
    outcome: str = "answered"
    status: str = "OK"
    reason: str = ""
    reasons: tuple[str, ...] = ()
    response_digest: str = ""

    def done(self, *, facts: Mapping[str, Any], outcome: str, status: str = "OK",
             reason: str = "", reasons: tuple[str, ...] = (), response_digest: str = ""
             ) -> AuditRecord:
        """This record with how the request ended (``dataclasses.replace`` does the same
        at about three times the cost: it looks the fields up on every call)."""
        return AuditRecord(
            event=self.event, time_ms=self.time_ms, request_id=self.request_id,
            verified=self.verified, tls_peer=self.tls_peer, policy_digest=self.policy_digest,
            requester=self.requester, claimed_signer=self.claimed_signer,
            request_digest=self.request_digest, header=self.header, described=self.described,
            facts=facts, outcome=outcome, status=status, reason=reason, reasons=reasons,
            response_digest=response_digest)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.event, "request_id": self.request_id,
                               "verified": self.verified, "tls_peer": self.tls_peer,
                               "policy_digest": self.policy_digest}
        out["requester"] = self.requester
        if self.request_digest:
            out["request_digest"] = self.request_digest
        if self.claimed_signer and self.claimed_signer != self.requester:
            out["claimed_signer"] = self.claimed_signer
        out.update(self.header)
        out.update(self.described)
        out.update(self.facts)
        out["event"] = self.facts.get("event", self.event)
        out.update(outcome=self.outcome, status=self.status)
        if self.outcome == "answered":
            out["response_digest"] = self.response_digest
        else:
            out.update(reason=self.reason, reasons=list(self.reasons))
        return out


class AuditSink(Protocol):
    def reserve(self) -> int:
        """The sequence number the next :meth:`append` in this unit of work will get."""
        ...

    def append_record(self, record: AuditRecord, *, seq: int | None = None) -> int:
        """Append within the caller's unit of work; returns the entry's sequence number.

        ``seq``: the number :meth:`reserve` gave in this unit of work, under its lock, so
        the sink need not read the log's end again (a wrong one fails: a taken number is a
        duplicate key, a gap stops the checkpoint that would seal it)."""
        ...


@dataclass(frozen=True, slots=True)
class Answer:
    """What a capability's handler returns: the payload to sign, and what to audit."""

    payload_type: str
    payload: bytes
    facts: Mapping[str, Any] = field(default_factory=dict)
    items: int = 0
    hits: int = 0


def facts_of(exc: BaseException) -> Mapping[str, Any]:
    """Audit facts a handler attached to the error it refused with (``exc.facts``)."""
    facts = getattr(exc, "facts", None)
    return facts if isinstance(facts, Mapping) else {}


def with_facts(exc: Exception, **facts: Any) -> Exception:
    """Attach audit facts to a refusal before raising it: ``raise with_facts(err, ...)``."""
    merged = dict(facts_of(exc))
    merged.update(facts)
    exc.facts = merged  # type: ignore[attr-defined]
    return exc


Facts = Sequence[tuple[str, Any]]
