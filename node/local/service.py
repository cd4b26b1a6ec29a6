"""What the LocalService does, once the caller is authenticated and authorised.

No gRPC here: typed values in, typed values out, the network through
:class:`~node.local.peers.ServingPeerClient` (on worker threads) and the database through
the server's group commit.  Every input is checked before the first byte goes to a peer:
bad input sends nothing.

Fan-out (``peers: ["all"]`` or a list): each peer is asked in parallel, on its own thread,
with a freshly signed request, under one overall deadline; each answer is verified on its
own (signed by that peer, bound to that request, one result per item) and reported on its
own: ANSWERED with HIT / NO_HIT per item, REFUSED with the peer's status and reason,
UNREACHABLE, UNVERIFIED, or NOT_ASKED.  Nothing is merged.

Who ``all`` is: every federation member with the role ``node`` except this node, narrowed
to those our own policy data lists an agreement with — ``responder`` the peer,
``requester`` us, in force today, covering the dataset (documents / persons) and the
purpose.  The agreements file is bilateral and shared, so it describes what each peer
agreed to answer us; asking a state we have no agreement with would hand it personal data
without a legal basis.  The others are listed as NOT_ASKED (``no_agreement_on_file``).  A
peer whose own policy refuses all the same shows as REFUSED with its signed reason.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import itertools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from node.client.peer import QueryContext
from node.core import envelope as env_mod
from node.core.errors import (
    BxError,
    EnvironmentFault,
    InvalidInput,
    RemoteError,
    Unauthenticated,
)
from node.core.members import MemberDirectory
from node.core.model import DocumentQuery, ItemResult, LookupAnswer, Query, QueryKind, validate_id
from node.crossings.client import confirm_crossings
from node.crossings.model import CrossingAnswer, CrossingQuestion
from node.crossings.reconcile import ReconcileReport, plan, reconcile
from node.crossings.store import CrossingStore
from node.followup import client as fu_client
from node.followup.owner import FollowUpDesk, NotFound
from node.followup.store import FollowUpRow, FollowUpStore, SentRow
from node.local.peers import ServingPeerClient
from node.server.group_commit import BatchWriter
from node.store.followup_confirmations import PendingApproval
from node.wire import convert
from node.wire import crossings as cwire
from node.wire.convert import pb
from node.wire.crossings import cpb

__all__ = ["MAX_PEERS", "FanOutResult", "LocalOps", "PeerAnswer", "PeerOutcome",
           "outgoing_agreements"]

LOOKUP_METHOD = "/bxnode.v1.NodeService/Lookup"
MAX_PEERS = 64
MAX_DEADLINE_MS = 60_000
MAX_QUESTIONS = 1_000


class PeerOutcome(StrEnum):
    ANSWERED = "answered"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    NOT_ASKED = "not_asked"
    UNVERIFIED = "unverified"


@dataclass(frozen=True, slots=True)
class PeerAnswer:
    peer: str
    outcome: PeerOutcome
    results: tuple[ItemResult, ...] = ()
    status: str = ""
    reason: str = ""
    refusal_verified: bool = False
    peer_audit_seq: int = 0
    request_digest: bytes = b""

    @property
    def hits(self) -> int:
        return sum(1 for r in self.results if r.outcome.value == "hit")

    def summary(self) -> dict[str, Any]:
        """For our audit entry: outcome and counts, never the hit data."""
        out: dict[str, Any] = {"peer": self.peer, "outcome": self.outcome.value}
        if self.outcome is PeerOutcome.ANSWERED:
            out.update(items=len(self.results), hits=self.hits)
        else:
            out.update(status=self.status, reason=self.reason)
        return out


@dataclass(frozen=True, slots=True)
class FanOutResult:
    peers: tuple[PeerAnswer, ...]


@dataclass
class CallFacts:
    """What one LocalService call adds to its audit entry (kinds and counts, no data)."""

    facts: dict[str, Any] = field(default_factory=dict)


def outgoing_agreements(policy_dir: Path, node_id: str) -> list[dict[str, Any]]:
    """The agreements of ``policies/data.json`` under which ``node_id`` asks."""
    path = policy_dir / "data.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    agreements = doc.get("bxnode", {}).get("agreements", []) if isinstance(doc, dict) else []
    return [a for a in agreements if isinstance(a, dict) and a.get("requester") == node_id]


def _in_force(a: dict[str, Any], today: dt.date) -> bool:
    try:
        return (dt.date.fromisoformat(str(a["valid_from"])) <= today
                <= dt.date.fromisoformat(str(a["valid_until"])))
    except (KeyError, ValueError):
        return False


def _datasets(items: Sequence[Query]) -> set[str]:
    return {"documents" if isinstance(q, DocumentQuery) else "persons" for q in items}


class LocalOps:
    def __init__(self, *, node_id: str, directory: MemberDirectory, client: ServingPeerClient,
                 writer: BatchWriter, desk: FollowUpDesk, crossings: CrossingStore,
                 followups: FollowUpStore, audit_log: Any, policy_dir: Path, max_batch: int,
                 country: str, clock_ms: Callable[[], int], default_deadline_ms: int = 10_000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.node_id = node_id
        self.country = country
        self.directory = directory
        self.client = client
        self.writer = writer
        self.desk = desk
        self.crossings = crossings
        self.followups = followups
        self.audit_log = audit_log
        self.policy_dir = policy_dir
        self.max_batch = max_batch
        self.clock_ms = clock_ms
        self.default_deadline_ms = default_deadline_ms
        self._monotonic = monotonic
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=16,
                                                           thread_name_prefix="bxnode-local")

    def close(self) -> None:
        """Stop the worker pool and close the peer client (the listener's stop)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    async def in_pool(self, fn: Callable[[], Any]) -> Any:
        """Run blocking ``fn`` (network, never the database) on a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    # --- checks (before anything is sent) -------------------------------------------------

    def context(self, operator: str, purpose: str, legal_basis: str, case_ref: str
                ) -> QueryContext:
        """The signed header's context; raises InvalidInput exactly as a peer would."""
        ctx = QueryContext(operator=operator, purpose=purpose, legal_basis=legal_basis,
                           case_ref=case_ref)
        self.client.header(ctx)  # validates operator, purpose, legal basis, case reference
        return ctx

    def peer(self, node_id: str) -> str:
        """One peer: a member with the role ``node`` other than us."""
        if not node_id:
            raise InvalidInput("name the peer to ask", reason="no_peers")
        members = {m.node_id: m for m in self.directory.members()}
        m = members.get(node_id)
        if m is None:
            raise InvalidInput(f"{node_id[:64]} is not a member of the federation",
                               reason="unknown_peer")
        if node_id == self.node_id:
            raise InvalidInput("this node does not ask itself", reason="not_a_peer")
        if "node" not in m.roles:
            raise InvalidInput(f"{node_id} is not a border node (roles: "
                               f"{', '.join(m.roles)})", reason="not_a_peer")
        return node_id

    def peer_or_country(self, text: str) -> tuple[str, str]:
        """(node id, country) of a peer named by node id or by its country code."""
        members = self.directory.members()
        for m in members:
            if m.node_id == text:
                return self.peer(text), m.country
        by_country = [m for m in members if m.country == text and m.node_id != self.node_id
                      and "node" in m.roles]
        if len(by_country) == 1:
            return by_country[0].node_id, by_country[0].country
        if len(by_country) > 1:
            raise InvalidInput(f"several members are in {text}; name the node id",
                               reason="ambiguous_peer")
        raise InvalidInput(f"{text[:64]} is not a member of the federation",
                           reason="unknown_peer")

    def resolve_peers(self, peers: Sequence[str], *, items: Sequence[Query], purpose: str
                      ) -> tuple[list[str], list[PeerAnswer]]:
        """The peers to ask, and those ``all`` leaves out (NOT_ASKED)."""
        if not peers:
            raise InvalidInput('name the peers to ask, or ["all"]', reason="no_peers")
        if len(peers) > MAX_PEERS:
            raise InvalidInput(f"at most {MAX_PEERS} peers per call", reason="bad_peer_list")
        if list(peers) != ["all"]:
            if "all" in peers:
                raise InvalidInput('"all" stands alone in a peer list', reason="bad_peer_list")
            if len(set(peers)) != len(peers):
                raise InvalidInput("a peer is named twice", reason="bad_peer_list")
            return sorted(self.peer(p) for p in peers), []
        today = dt.datetime.fromtimestamp(self.clock_ms() / 1000, dt.UTC).date()
        wanted = _datasets(items)
        agreements = outgoing_agreements(self.policy_dir, self.node_id)
        ask, skip = [], []
        for m in sorted(self.directory.members(), key=lambda m: m.node_id):
            if m.node_id == self.node_id or "node" not in m.roles:
                continue
            ok = any(a.get("responder") == m.node_id and _in_force(a, today)
                     and wanted <= set(a.get("datasets", ())) and purpose in a.get(
                         "purposes", ()) for a in agreements)
            if ok:
                ask.append(m.node_id)
            else:
                skip.append(PeerAnswer(peer=m.node_id, outcome=PeerOutcome.NOT_ASKED,
                                       reason="no_agreement_on_file"))
        return ask, skip

    def deadline_s(self, deadline_ms: int) -> float:
        """The fan-out deadline in seconds (0: the configured default; at most 60 s)."""
        if deadline_ms > MAX_DEADLINE_MS:
            raise InvalidInput(f"the deadline is at most {MAX_DEADLINE_MS} ms",
                               reason="bad_deadline")
        return (deadline_ms or self.default_deadline_ms) / 1000

    def check_items(self, items: Sequence[Query], *, batches: bool = False) -> None:
        """1..``max_batch`` items, or any number when they go in several ``batches``."""
        if not items:
            raise InvalidInput("nothing to check", reason="empty_request")
        if len(items) > self.max_batch and not batches:
            raise InvalidInput(f"a batch may hold at most {self.max_batch} items; this one "
                               f"has {len(items)}", reason="batch_too_large")

    # --- lookups -----------------------------------------------------------------------------

    async def fan_out(self, ctx: QueryContext, peers: Sequence[str], skipped: Sequence[PeerAnswer],
                      kind: QueryKind, items: Sequence[Query], deadline_s: float,
                      batches: Sequence[Sequence[Query]] | None = None) -> FanOutResult:
        """Ask ``peers`` in parallel; ``batches`` (default: ``items`` in slices of
        ``max_batch``) are sent to each peer in turn, each its own signed request."""
        end = self._monotonic() + deadline_s
        if batches is None:
            batches = [list(items[i:i + self.max_batch])
                       for i in range(0, len(items), self.max_batch)]
        if any(not b or len(b) > self.max_batch for b in batches):
            raise ValueError("every batch holds 1..max_batch items")
        loop = asyncio.get_running_loop()
        futures = {p: loop.run_in_executor(self._pool, self._ask, p, ctx, kind, batches, end)
                   for p in peers}
        answers = list(skipped)
        if futures:
            _done, pending = await asyncio.wait(futures.values(), timeout=deadline_s + 1.0)
            for p, fut in futures.items():
                if fut in pending:  # the transport overran its own deadline: not waited for
                    fut.cancel()
                    answers.append(PeerAnswer(peer=p, outcome=PeerOutcome.UNREACHABLE,
                                              status="DEADLINE_EXCEEDED",
                                              reason="deadline_exceeded"))
                else:
                    answers.append(fut.result())
        return FanOutResult(peers=tuple(sorted(answers, key=lambda a: a.peer)))

    def _ask(self, peer: str, ctx: QueryContext, kind: QueryKind,
             batches: Sequence[Sequence[Query]], end: float) -> PeerAnswer:
        """One peer, every batch, each verified; the first failure ends this peer's turn."""
        results: list[ItemResult] = []
        seq, digest = 0, b""
        offset = 0
        try:
            for batch in batches:
                remaining = end - self._monotonic()
                if remaining <= 0:
                    raise EnvironmentFault(f"peer {peer}: the deadline passed",
                                           reason="deadline_exceeded")
                bkind = kind if len(batches) == 1 else QueryKind.BATCH

                def build(b: Sequence[Query] = batch, k: QueryKind = bkind) -> env_mod.Envelope:
                    return self.client.build(ctx, k, b)

                env = build()
                digest = env_mod.digest(env)
                ex = self.client.exchange(peer, LOOKUP_METHOD, env, request_cls=pb.LookupRequest,
                                          response_cls=pb.LookupResponse,
                                          response_type=env_mod.RESPONSE_TYPE, renew=build,
                                          timeout_s=remaining)
                digest = env_mod.digest(ex.request)
                answer = convert.decode_response(ex.response.payload)
                if not isinstance(answer, LookupAnswer) or len(answer.results) != len(
                        batch) or any(r.index != i for i, r in enumerate(answer.results)):
                    raise Unauthenticated("peer's answer does not match the request items",
                                          reason="bad_response")
                self.client.keep(peer, ex.request, ex.response, outcome="answered",
                                 address=ex.address,
                                 extra={"items": len(answer.results), "hits": answer.hits,
                                        "peer_audit_seq": answer.audit_seq})
                seq = answer.audit_seq
                results.extend(ItemResult(index=r.index + offset, outcome=r.outcome,
                                          reference=r.reference, action=r.action,
                                          contact=r.contact, source_agency=r.source_agency)
                               for r in answer.results)
                offset += len(batch)
        except RemoteError as exc:
            return PeerAnswer(peer=peer, outcome=PeerOutcome.REFUSED, status=exc.status,
                              reason=exc.reason, refusal_verified=exc.refusal_verified,
                              request_digest=digest)
        except Unauthenticated as exc:
            return PeerAnswer(peer=peer, outcome=PeerOutcome.UNVERIFIED, status=exc.status,
                              reason=exc.reason, request_digest=digest)
        except EnvironmentFault as exc:
            return PeerAnswer(peer=peer, outcome=PeerOutcome.UNREACHABLE, status=exc.status,
                              reason=exc.reason, request_digest=digest)
        except BxError as exc:
            return PeerAnswer(peer=peer, outcome=PeerOutcome.UNREACHABLE, status=exc.status,
                              reason=exc.reason, request_digest=digest)
        return PeerAnswer(peer=peer, outcome=PeerOutcome.ANSWERED, results=tuple(results),
                          peer_audit_seq=seq, request_digest=digest)

    # --- crossings ---------------------------------------------------------------------------

    def check_questions(self, questions: Sequence[CrossingQuestion]) -> None:
        """1..:data:`MAX_QUESTIONS` crossing questions."""
        if not questions:
            raise InvalidInput("no questions", reason="empty_request")
        if len(questions) > MAX_QUESTIONS:
            raise InvalidInput(f"at most {MAX_QUESTIONS} questions per call",
                               reason="batch_too_large")

    async def confirm(self, peer: str, ctx: QueryContext,
                      questions: Sequence[CrossingQuestion]) -> tuple[list[CrossingAnswer], int]:
        """Ask ``peer`` the crossing ``questions`` in one signed request: (answers in
        order, the peer's audit entry); a refusal raises the peer's RemoteError."""
        resp = await self.in_pool(lambda: confirm_crossings(self.client, peer, ctx, questions))
        return list(resp.answers), int(resp.audit_seq)

    async def reconcile(self, peer: str, peer_country: str, ctx: QueryContext, *,
                        from_ms: int, to_ms: int, transit_ms: int,
                        batch_size: int) -> ReconcileReport:
        """Match our exits/entries toward ``peer_country`` in the period with ``peer``'s
        records, ``batch_size`` questions per signed request."""
        items = await self.writer.call(lambda: plan(
            self.crossings, self.crossings.bcp_map(), own_country=self.country,
            peer_country=peer_country, from_ms=from_ms, to_ms=to_ms,
            transit_ms=transit_ms))

        def run() -> ReconcileReport:
            return reconcile(items, lambda qs: confirm_crossings(self.client, peer, ctx,
                                                                 qs).answers,
                             peer=peer, from_ms=from_ms, to_ms=to_ms, batch_size=batch_size)

        report: ReconcileReport = await self.in_pool(run)
        return report

    # --- follow-ups we file --------------------------------------------------------------------

    async def send_followup(self, peer: str, ctx: QueryContext, *, reference: str,
                            lookup_digest: bytes, item_index: int,
                            fields: Sequence[str]) -> cwire.FollowUpStatus:
        """File a follow-up to the HIT ``reference`` (found in our receipts unless
        ``lookup_digest`` names the lookup); the filing is kept with its receipt."""
        if not reference:
            raise NotFound("name the hit reference", reason="unknown_hit_reference")
        if not fields or len(fields) > cwire.MAX_FIELDS:
            raise InvalidInput(f"ask for 1-{cwire.MAX_FIELDS} fields",
                               reason="no_fields_requested")
        if not lookup_digest:
            lookup_digest, item_index = await self.writer.call(
                lambda: fu_client.find_hit(self.followups.db, peer, reference))
        client, store = self.client, self.followups

        def send() -> cwire.FollowUpStatus:
            req = cwire.FollowUpFile(header=client.header(ctx), hit_request_digest=lookup_digest,
                                     hit_item_index=item_index, hit_reference=reference,
                                     fields=tuple(fields))
            env = client.sign(cwire.FOLLOWUP_FILE_TYPE, cwire.encode_followup_file(req))
            ex = client.exchange(peer, fu_client.FILE_METHOD, env,
                                 request_cls=cpb.FileFollowUpRequest,
                                 response_cls=cpb.FileFollowUpResponse,
                                 response_type=cwire.FOLLOWUP_STATUS_TYPE)
            status = cwire.decode_followup_status(ex.response.payload)

            def keep() -> None:
                with store.db.transaction():
                    store.add_sent(SentRow(
                        id=status.followup_id, peer=peer, hit_reference=reference,
                        hit_request_digest=lookup_digest, hit_item_index=item_index,
                        fields=tuple(fields), purpose=ctx.purpose,
                        legal_basis=ctx.legal_basis, case_ref=ctx.case_ref,
                        file_digest=env_mod.digest(ex.request), filed_ms=status.issued_at_ms,
                        state=status.state, deadline_ms=status.deadline_ms))
                    client.keep(peer, ex.request, ex.response, outcome="answered",
                                address=ex.address, extra={
                                    "event": "followup_sent", "followup_id": status.followup_id,
                                    "hit_request_digest": lookup_digest.hex(),
                                    "hit_item_index": item_index, "fields": sorted(fields),
                                    "peer_audit_seq": status.audit_seq})

            client.on_db(keep)
            return status

        result: cwire.FollowUpStatus = await self.in_pool(send)
        return result

    async def _sent(self, peer: str, fid: str) -> SentRow:
        sent = await self.writer.call(lambda: self.followups.sent(peer, fid))
        if sent is None:
            raise NotFound(f"we filed no follow-up {fid[:64]} with {peer}",
                           reason="unknown_followup")
        return sent

    async def poll_followup(self, peer: str, ctx: QueryContext, fid: str) -> fu_client.Answer:
        """The owner's current answer to the follow-up ``fid`` we filed, verified (a
        decision signed by the owner and bound to our filing) and kept."""
        sent = await self._sent(peer, fid)
        client, store = self.client, self.followups

        def poll() -> fu_client.Answer:
            def env() -> env_mod.Envelope:
                return fu_client._get_env(client, ctx, fid)

            ex = client.exchange(peer, fu_client.GET_METHOD, env(),
                                 request_cls=cpb.GetFollowUpRequest,
                                 response_cls=cpb.GetFollowUpResponse,
                                 response_type=cwire.FOLLOWUP_STATUS_TYPE, renew=env)
            status = cwire.decode_followup_status(ex.response.payload)

            def keep() -> fu_client.Answer:
                answer = fu_client._answer(client, store, peer, status, sent)
                client.keep(peer, ex.request, ex.response, outcome="answered",
                            address=ex.address, extra={
                                "event": "followup_polled", "followup_id": fid,
                                "state": answer.status.state,
                                "peer_audit_seq": answer.status.audit_seq})
                return answer

            return client.on_db(keep)

        answer: fu_client.Answer = await self.in_pool(poll)
        return answer

    def watch_followup(self, peer: str, ctx: QueryContext, sent: SentRow,
                       timeout_s: float) -> Iterator[fu_client.Answer]:
        """On a worker thread: the owner's stream, each message verified and kept."""
        client, store = self.client, self.followups
        fid = sent.id

        def env() -> env_mod.Envelope:
            return fu_client._get_env(client, ctx, fid)

        stream = client.open_stream(peer, fu_client.WATCH_METHOD, env(),
                                    request_cls=cpb.WatchFollowUpRequest, renew=env,
                                    timeout_s=timeout_s)
        digest = env_mod.digest(stream.request)
        messages = itertools.chain(() if stream.first is None else (stream.first,), stream.rest)
        for raw in messages:
            response = convert.envelope_from_pb(cpb.WatchFollowUpResponse.FromString(raw).envelope)
            client.verify_response(peer, response, digest,
                                   expected_type=cwire.FOLLOWUP_STATUS_TYPE)
            status = cwire.decode_followup_status(response.payload)

            def keep(status: cwire.FollowUpStatus = status,
                     response: env_mod.Envelope = response) -> fu_client.Answer:
                answer = fu_client._answer(client, store, peer, status, sent)
                if answer.decision is not None:
                    client.keep(peer, stream.request, response, outcome="answered",
                                address=stream.address, extra={
                                    "event": "followup_watched", "followup_id": fid,
                                    "state": answer.status.state,
                                    "peer_audit_seq": answer.status.audit_seq})
                return answer

            yield client.on_db(keep)

    # --- the desk (follow-ups filed with us) ----------------------------------------------------

    async def desk_list(self, state: str) -> list[tuple[FollowUpRow, PendingApproval | None]]:
        """Follow-ups filed with us (``state``: "", pending, approved, denied, overdue),
        each with its first approval when four eyes wait for a second officer."""
        if state and state not in ("pending", "approved", "denied", "overdue"):
            raise InvalidInput("state must be pending, approved, denied or overdue",
                               reason="bad_state")

        def run() -> list[tuple[FollowUpRow, PendingApproval | None]]:
            self.desk.sweep_overdue()
            rows = self.desk.store.all(state=None if state in ("", "overdue") else state)
            if state == "overdue":
                rows = [r for r in rows if r.state == "pending" and r.overdue_ms is not None]
            return [(r, self.desk.pending_approval(r.id)) for r in rows]

        out: list[tuple[FollowUpRow, PendingApproval | None]] = await self.writer.run_in_batch(
            run)
        return out

    async def desk_show(self, fid: str) -> tuple[FollowUpRow, PendingApproval | None]:
        """Follow-up ``fid`` filed with us, with its first approval when four eyes wait."""
        validate_id(fid, "followup_id")

        def run() -> tuple[FollowUpRow, PendingApproval | None]:
            self.desk.sweep_overdue()
            row = self.desk.store.get(fid)
            if row is None:
                raise NotFound(f"no follow-up {fid} was filed with us",
                               reason="unknown_followup")
            return row, self.desk.pending_approval(fid)

        out: tuple[FollowUpRow, PendingApproval | None] = await self.writer.run_in_batch(run)
        return out

    async def desk_approve(self, fid: str, fields: Sequence[str], operator: str
                           ) -> tuple[FollowUpRow, PendingApproval | None]:
        """Approve follow-up ``fid`` as ``operator`` (``fields``: narrow the release;
        empty: all requested).  Under four eyes the first approval only records itself
        (the pending approval is returned); a second, different officer releases."""

        def run() -> tuple[FollowUpRow, PendingApproval | None]:
            row = self.desk.approve(fid, fields=list(fields) or None, operator=operator)
            return row, self.desk.pending_approval(fid)

        out: tuple[FollowUpRow, PendingApproval | None] = await self.writer.run_in_batch(run)
        return out

    async def desk_deny(self, fid: str, reason: str, operator: str) -> FollowUpRow:
        """Deny follow-up ``fid`` as ``operator`` (signed, audited); ``reason`` is shown
        to the requester."""
        row: FollowUpRow = await self.writer.run_in_batch(
            lambda: self.desk.deny(fid, reason=reason, operator=operator))
        return row
