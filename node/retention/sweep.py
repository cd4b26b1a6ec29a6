"""The erasure sweep and holds (issue 13).  No clock of its own, no thread of its own:
``serve`` runs :meth:`RetentionSweep.run` through the database thread on a schedule
(``node/server/assemble.py``), ``bxnode retention run`` by hand.

One sweep is ONE transaction and ONE audit entry (``retention_sweep``) with the count per
kind erased and the count per kind kept by a hold.  What is kept past its retention:

* a record tied to an **open follow-up** (pending): the receipts of the lookup it follows
  up (either side) and the alert behind it (withdrawn or expired);
* a record of a **case on hold** (``bxnode retention hold CASE_REF``): receipts whose
  signed request carries that case reference, follow-ups filed under it, audit bodies of it.

Receipts are erased down to their two digests (:mod:`node.store.retention`); everything
else is deleted.  After the commit, :func:`node.store.retention.compact` removes what the
WAL (SQLCipher) or dead tuples (PostgreSQL) still held.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from node.audit.log import ERASURE_KEY, ErasureRecord
from node.core import envelope as env_mod
from node.core.errors import BxError, InvalidInput, PeerError
from node.core.model import validate_id
from node.retention.checks import RETENTION_META
from node.retention.settings import DAY_MS, RETENTION_KINDS, RetentionSettings
from node.store._fields import index_text
from node.store.alerts import AlertTables
from node.store.crossings import CrossingTables
from node.store.db import Database
from node.store.followups import FollowUpTables
from node.store.retention import HoldRow, RetentionTables
from node.store.watchlist import SqlWatchlistStore
from node.wire import convert
from node.wire.convert import pb

__all__ = ["RETENTION_META", "HoldDesk", "RetentionSweep", "SweepReport"]

MAX_HOLD_REASON = 256


class AuditLog(Protocol):
    def append(self, event: dict[str, Any], *, time_ms: int) -> int: ...


class HoldError(PeerError):
    status = "FAILED_PRECONDITION"
    default_reason = "hold_state"


@dataclass
class SweepReport:
    erased: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RETENTION_KINDS, 0))
    held: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RETENTION_KINDS, 0))
    dry_run: bool = False
    time_ms: int = 0
    audit_seq: int | None = None
    compacted: str = ""
    erased_audit_seqs: list[int] = field(default_factory=list)


def _case_ref(request_env: bytes) -> str:
    try:
        env = convert.envelope_from_pb(pb.SignedEnvelope.FromString(request_env))
        return convert.decode_request_header(env.payload).case_ref
    except Exception:  # a malformed request was refused and kept as such: no case of it
        return ""


def _response_digest(response_env: bytes) -> bytes:
    return env_mod.digest(convert.envelope_from_pb(pb.SignedEnvelope.FromString(response_env)))


class RetentionSweep:
    def __init__(self, *, db: Database, audit: AuditLog, settings: RetentionSettings,
                 clock_ms: Callable[[], int]) -> None:
        self.db = db
        self.audit = audit
        self.settings = settings
        self.clock_ms = clock_ms
        self.tables = RetentionTables(db)
        self.tables.ensure_schema()
        self.alerts = AlertTables(db)
        self.alerts.ensure_schema()
        self.followups = FollowUpTables(db)
        self.followups.ensure_schema()
        CrossingTables(db).ensure_schema()  # a node that never stored a crossing has none

    def run(self, *, dry_run: bool = False, operator: str = "") -> SweepReport:
        """One sweep, in one transaction with its audit entry (a dry run writes nothing)."""
        now = self.clock_ms()
        report = SweepReport(dry_run=dry_run, time_ms=now)
        with self.db.transaction():
            self._sweep(now, report, dry_run=dry_run)
            if not dry_run:
                self.db.set_meta(RETENTION_META, str(self.settings.ms("receipts")))
                event: dict[str, Any] = {
                    "event": "retention_sweep", "erased": dict(report.erased),
                    "held": dict(report.held),
                    "retention_days": {k: self.settings.days(k) for k in RETENTION_KINDS},
                    ERASURE_KEY: ErasureRecord.of(  # what `audit verify` checks erasures by
                        erased_ms=now, retention_ms=self.settings.ms("audit_bodies"),
                        seqs=report.erased_audit_seqs).to_json()}
                if operator:
                    event["operator"] = operator
                report.audit_seq = self.audit.append(event, time_ms=now)
        return report

    def _sweep(self, now: int, report: SweepReport, *, dry_run: bool) -> None:
        s, t = self.settings, self.tables
        holds = {h.case_ref for h in t.holds()}
        pending = self.followups.all(state="pending")
        open_received = {(f.requester, f.hit_request_digest) for f in pending}
        open_refs = {f.hit_reference for f in pending}
        sent = t.sent_followups()
        open_sent = {(p, d) for p, _, state, _, _, d in sent if state == "pending"}

        # receipts: erased down to their two digests
        for r in t.receipts_before(now - s.ms("receipts")):
            tied = open_received if r.direction == "received" else open_sent
            if (r.peer, r.request_digest) in tied or _case_ref(r.request_env) in holds:
                report.held["receipts"] += 1
                continue
            report.erased["receipts"] += 1
            if not dry_run:
                t.erase_receipt(r.id, response_digest=_response_digest(r.response_env),
                                now_ms=now)

        report.erased["crossings"] = t.delete_crossings_before(now - s.ms("crossings"),
                                                               dry_run=dry_run)

        # follow-ups (and the values they released, in the signed decision): decided ones
        cutoff = now - s.ms("followups")
        for f in self.followups.all():
            if f.state == "pending" or (f.decided_ms or f.filed_ms) >= cutoff:
                continue
            if f.case_ref in holds:
                report.held["followups"] += 1
                continue
            report.erased["followups"] += 1
            if not dry_run:
                t.delete_followup(f.id)
        for peer, fid, state, case_ref, filed_ms, _ in sent:
            if state == "pending" or filed_ms >= cutoff:
                continue
            if case_ref in holds:
                report.held["followups"] += 1
                continue
            report.erased["followups"] += 1
            if not dry_run:
                t.delete_followup_sent(peer, fid)

        # withdrawn alerts
        changed = False
        codec = self.db.codec
        for w in self.alerts.withdrawn_before(now - s.ms("withdrawn_alerts")):
            if w.owner_ref in open_refs:
                report.held["withdrawn_alerts"] += 1
                continue
            report.erased["withdrawn_alerts"] += 1
            if not dry_run:
                t.delete_withdrawn(index_text(codec, "watchlist.owner_ref", w.owner_ref))

        # expired alerts: rows whose expiry day is older than the retention
        today = dt.datetime.fromtimestamp(now / 1000, dt.UTC).date()
        before = (today - dt.timedelta(days=s.days("expired_alerts"))).isoformat()
        lookup = SqlWatchlistStore(self.db)
        for ref in lookup.expired_refs(before):
            if ref in open_refs:
                report.held["expired_alerts"] += 1
                continue
            report.erased["expired_alerts"] += 1
            if not dry_run:
                lookup.delete_expired(ref, before)
                if not lookup.documents_of(ref) and lookup.person(ref) is None:
                    self.alerts.delete_meta(ref)
                changed = True
        if changed:
            self.db.lock("watchlist")
            gen = int(self.db.get_meta("watchlist_generation") or "0") + 1
            lookup.bump_generation(str(gen))

        report.erased["nonces"] = t.delete_nonces_before(now - s.ms("nonces"),
                                                         dry_run=dry_run)

        # audit bodies (the leaves stay: every root and proof still verifies)
        erase: list[int] = []
        for seq, case_ref in t.audit_bodies_before(now - s.ms("audit_bodies")):
            if case_ref and case_ref in holds:
                report.held["audit_bodies"] += 1
            else:
                erase.append(seq)
        report.erased["audit_bodies"] = len(erase)
        report.erased_audit_seqs = erase
        if not dry_run and erase:
            t.erase_audit_bodies(erase, now_ms=now)


class HoldDesk:
    """Holds on case references, each placed and lifted with an audit entry."""

    def __init__(self, *, db: Database, audit: AuditLog, clock_ms: Callable[[], int]) -> None:
        self.db = db
        self.audit = audit
        self.clock_ms = clock_ms
        self.tables = RetentionTables(db)
        self.tables.ensure_schema()

    def hold(self, case_ref: str, *, reason: str, by: str, role: str) -> HoldRow:
        now = self.clock_ms()

        def change() -> HoldRow:
            row = HoldRow(validate_id(case_ref, "case reference"), _reason(reason), by, role,
                          now)
            if not self.tables.hold(row):
                raise HoldError(f"case {case_ref} is already on hold", reason="already_held")
            return row

        return self._audited("retention_hold", case_ref, by, role, reason, now, change)

    def release(self, case_ref: str, *, reason: str, by: str, role: str) -> HoldRow:
        now = self.clock_ms()

        def change() -> HoldRow:
            _reason(reason)
            held = {h.case_ref: h for h in self.tables.holds()}.get(case_ref)
            if held is None or not self.tables.release(case_ref):
                raise HoldError(f"case {case_ref} is not on hold", reason="not_held")
            return held

        return self._audited("retention_release", case_ref, by, role, reason, now, change)

    def _audited(self, event: str, case_ref: str, by: str, role: str, reason: str, now: int,
                 change: Callable[[], HoldRow]) -> HoldRow:
        try:
            with self.db.transaction():
                row = change()
                self.audit.append({"event": event, "case_ref": case_ref, "operator": by,
                                   "role": role, "reason": reason.strip()}, time_ms=now)
            return row
        except BxError as exc:
            with self.db.transaction():
                self.audit.append({"event": f"{event}_refused", "operator": by, "role": role,
                                   "status": exc.status, "reason": exc.reason}, time_ms=now)
            raise


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not 0 < len(reason) <= MAX_HOLD_REASON:
        raise InvalidInput(f"a hold needs a reason of 1-{MAX_HOLD_REASON} characters",
                           reason="bad_reason")
    return reason


def days_ms(days: int) -> int:
    return days * DAY_MS
