"""The life of an alert: add, update, withdraw, list, export, sync and delta feeds (issue 13).

An alert is everything the lookup tables hold under one owner reference (one person, or
one or more documents) plus its source agency (:mod:`node.store.alerts`).  Every change:

* runs in ONE transaction with its audit entry; a refused change rolls back and leaves
  only its own ``watchlist_change_refused`` entry;
* bumps the watchlist generation under the ``watchlist`` lock, so every replica's person
  index follows it on its next person lookup;
* withdrawing *deletes* the alert's rows from the lookup tables (kept sealed in
  ``alerts_withdrawn`` until retention ends): documents are looked up in the store and
  every person hit is confirmed in the store, so from the commit on it never hits, on any
  replica.

Audit entries carry the operator, the reason, the kind, the source and ``alert_id``: a
keyed pseudonym of the owner reference (HMAC-SHA-256 under a key derived from the node's
signing key; ``bxnode watchlist show REF`` prints it), never the reference itself, a
name or a document number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from node.core.errors import BxError, InvalidInput, PeerError
from node.core.model import validate_id
from node.importing import detect_format, first_non_utf8_line, read_rows
from node.store.alerts import AlertTables, WithdrawnRow
from node.store.db import Database
from node.store.watchlist import SqlWatchlistStore
from node.watchlist.importer import ImportResult, _Validator

__all__ = ["MAX_REASON", "Alert", "AlertDesk", "AlertNotFound", "AlertStateError",
           "FeedResult", "SyncPlan", "alert_pseudonym", "validate_source"]

MAX_REASON = 256
_SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
#: The columns an alert is written in (import, export, sync, feeds).
COLUMNS = ("kind", "owner_ref", "action", "expires", "contact", "number", "issuing_state",
           "doc_type", "loss_type", "family_name", "given_names", "patronymic", "dob",
           "nationality", "sex")
_PERSON_COLS = ("owner_ref", "family_name", "given_names", "patronymic", "dob", "nationality",
                "sex", "action", "contact", "expires")
_DOC_COLS = ("issuing_state", "number", "doc_type", "owner_ref", "action", "contact",
             "expires", "loss_type")
MAX_FEED_EVENTS = 100_000
T = TypeVar("T")


class AuditLog(Protocol):
    def append(self, event: dict[str, Any], *, time_ms: int) -> int: ...


class AlertNotFound(PeerError):
    status = "NOT_FOUND"
    default_reason = "unknown_alert"


class AlertStateError(PeerError):
    status = "FAILED_PRECONDITION"
    default_reason = "failed_precondition"


def validate_source(source: str) -> str:
    if not _SOURCE.fullmatch(source):
        raise InvalidInput(f"source {source!r} must be 1-64 of A-Z a-z 0-9 . _ : @ - "
                           "(an agency's short name)", reason="bad_source")
    return source


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not 0 < len(reason) <= MAX_REASON:
        raise InvalidInput(f"a change needs a reason of 1-{MAX_REASON} characters",
                           reason="bad_reason")
    return reason


def alert_pseudonym(seed: bytes) -> Callable[[str], str]:
    """``alert_id`` for audit entries: HMAC-SHA-256(K, ref), 32 hex characters, with K
    derived from the node's signing key seed (stable for the node, useless to others)."""
    key = hashlib.sha256(b"bxnode alert id v1\x00" + seed).digest()

    def pseudonym(ref: str) -> str:
        return hmac.new(key, ref.encode(), hashlib.sha256).hexdigest()[:32]

    return pseudonym


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: its person row or document rows (as the lookup tables hold them)."""

    ref: str
    source: str
    documents: tuple[tuple[str, ...], ...] = ()
    person: tuple[str, ...] | None = None
    withdrawn_ms: int | None = None

    @property
    def kind(self) -> str:
        return "person" if self.person is not None else "document"

    @property
    def action(self) -> str:
        return self.person[7] if self.person is not None else self.documents[0][4]

    @property
    def expires(self) -> str:
        return self.person[9] if self.person is not None else self.documents[0][6]

    def state(self, today: str) -> str:
        if self.withdrawn_ms is not None:
            return "withdrawn"
        return "live" if self.expires >= today else "expired"

    def rows(self) -> list[dict[str, str]]:
        """The alert in import columns (one row per record), ``source`` added."""
        out: list[dict[str, str]] = []
        if self.person is not None:
            row = {"kind": "person", **dict(zip(_PERSON_COLS, self.person, strict=True))}
            out.append(row)
        for d in self.documents:
            out.append({"kind": "document", **dict(zip(_DOC_COLS, d, strict=True))})
        return [{**{c: r.get(c, "") for c in COLUMNS}, "source": self.source} for r in out]

    def record(self) -> dict[str, Any]:
        return {"documents": [list(d) for d in self.documents],
                "person": None if self.person is None else list(self.person)}

    def same_content(self, other: Alert) -> bool:
        return (sorted(self.documents) == sorted(other.documents)
                and self.person == other.person)


@dataclass
class SyncPlan:
    source: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    unchanged: int = 0
    applied: bool = False

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "changed": len(self.changed),
                "withdrawn": len(self.withdrawn), "unchanged": self.unchanged}


@dataclass
class FeedResult:
    events: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)


class _FileErrors(InvalidInput):
    """A file with bad rows: every bad line, nothing applied."""

    def __init__(self, message: str, errors: list[tuple[int, str]], *, reason: str) -> None:
        super().__init__(message, reason=reason)
        self.errors = errors


class _SourceConflict(_FileErrors):
    """A sync file holding alerts that belong to another source (``wrong_source``: a state
    conflict, FAILED_PRECONDITION like every other ``wrong_source``)."""

    status = "FAILED_PRECONDITION"


class AlertDesk:
    """Alert changes on one node database, each audited (keyword-only; ``clock_ms`` and
    ``pseudonym`` are injected)."""

    def __init__(self, *, db: Database, audit: AuditLog, clock_ms: Callable[[], int],
                 pseudonym: Callable[[str], str]) -> None:
        self.db = db
        self.audit = audit
        self.clock_ms = clock_ms
        self.pseudonym = pseudonym
        self.lookup = SqlWatchlistStore(db)
        self.tables = AlertTables(db)
        self.tables.ensure_schema()

    # --- reading --------------------------------------------------------------------------

    def get(self, ref: str) -> Alert | None:
        """The live (or expired) alert ``ref``, else the withdrawn one kept, else None."""
        docs = self.lookup.documents_of(ref)
        person = self.lookup.person(ref)
        if docs or person is not None:
            meta = self.tables.meta(ref)
            return Alert(ref, meta.source if meta else "", tuple(docs), person)
        w = self.tables.withdrawn(ref)
        if w is None:
            return None
        return _from_record(ref, w.source, w.record, withdrawn_ms=w.withdrawn_ms)

    def iter_alerts(self, *, withdrawn: bool = True) -> Iterator[Alert]:
        """Every alert, by reference (withdrawn ones too unless ``withdrawn=False``)."""
        docs: dict[str, list[tuple[str, ...]]] = {}
        for d in self.lookup.iter_documents():
            docs.setdefault(d[3], []).append(d)
        persons = {p[0]: p for p in self.lookup.iter_all_persons()}
        refs = sorted(set(docs) | set(persons))
        meta = self.tables.meta_many(refs)
        out = [Alert(r, meta[r].source if r in meta else "",
                     tuple(sorted(docs.get(r, []), key=lambda d: (d[1], d[0], d[2]))),
                     persons.get(r)) for r in refs]
        if withdrawn:
            live = set(refs)
            out += [_from_record(w.owner_ref, w.source, w.record, withdrawn_ms=w.withdrawn_ms)
                    for w in self.tables.all_withdrawn() if w.owner_ref not in live]
        yield from sorted(out, key=lambda a: a.ref)

    def stats(self, today: str) -> dict[str, Any]:
        by_state: dict[str, int] = {"live": 0, "expired": 0, "withdrawn": 0}
        by_kind: dict[str, dict[str, int]] = {}
        by_source: dict[str, dict[str, int]] = {}
        for a in self.iter_alerts():
            s = a.state(today)
            by_state[s] += 1
            by_kind.setdefault(a.kind, {}).setdefault(s, 0)
            by_kind[a.kind][s] += 1
            by_source.setdefault(a.source or "-", {}).setdefault(s, 0)
            by_source[a.source or "-"][s] += 1
        return {"alerts": sum(by_state.values()), "by_state": by_state, "by_kind": by_kind,
                "by_source": by_source, "generation": self.lookup.generation() or "0"}

    # --- single changes -------------------------------------------------------------------

    def add(self, row: dict[str, Any], *, source: str, operator: str, reason: str) -> Alert:
        """Add one alert from import columns (``kind``, ``owner_ref``, ...)."""
        def change(now: int) -> tuple[Alert, dict[str, Any]]:
            alert = self._parse_one(row, source=validate_source(source), now=now)
            if self.lookup.documents_of(alert.ref) or self.lookup.person(alert.ref):
                raise AlertStateError(f"alert {alert.ref} already exists; use "
                                      "'watchlist update'", reason="alert_exists")
            self._write(alert, now=now)
            return alert, {}

        return self._change("add", str(row.get("owner_ref", "")), operator, reason, change)

    def update(self, ref: str, changes: dict[str, str], *, operator: str, reason: str) -> Alert:
        """Change fields of a live (or expired) alert; ``source`` may change too."""
        def change(now: int) -> tuple[Alert, dict[str, Any]]:
            old = self._existing(ref, "update")
            unknown = sorted(set(changes) - set(COLUMNS) - {"source"} - {"kind", "owner_ref"})
            fixed = sorted(k for k in ("kind", "owner_ref") if k in changes
                           and changes[k] != (old.kind if k == "kind" else old.ref))
            if unknown or fixed:
                raise InvalidInput(f"{(unknown or fixed)[0]} cannot be changed "
                                   "(change the fields of the alert, not its reference or kind)",
                                   reason="bad_field")
            if not changes:
                raise InvalidInput("nothing to change", reason="no_change")
            if old.kind == "document" and len(old.documents) > 1 and any(
                    k in changes for k in ("number", "issuing_state", "doc_type")):
                raise InvalidInput(f"alert {ref} names {len(old.documents)} documents; "
                                   "withdraw it and add each document again",
                                   reason="bad_field")
            source = validate_source(changes.get("source", old.source or ""))
            rows = [{**r, **{k: v for k, v in changes.items() if k != "source"}}
                    for r in old.rows()]
            new = self._parse_rows(rows, source=source, now=now)
            if new.same_content(old) and new.source == old.source:
                raise InvalidInput("the change leaves the alert as it is", reason="no_change")
            self.lookup.delete_ref(ref)
            self._write(new, now=now)
            return new, {"fields": sorted(changes)}

        return self._change("update", ref, operator, reason, change)

    def withdraw(self, ref: str, *, operator: str, reason: str) -> Alert:
        def change(now: int) -> tuple[Alert, dict[str, Any]]:
            old = self._existing(ref, "withdraw")
            self._withdraw(old, operator=operator, now=now)
            return Alert(old.ref, old.source, old.documents, old.person, withdrawn_ms=now), {}

        return self._change("withdraw", ref, operator, reason, change)

    # --- sync: the complete list of one source ----------------------------------------------

    def plan_sync(self, path: Path, *, source: str, fmt: str | None = None) -> tuple[
            SyncPlan, dict[str, Alert]]:
        source = validate_source(source)
        now = self.clock_ms()
        wanted = self._parse_file(path, source=source, fmt=fmt, now=now)
        current = {a.ref: a for a in self.iter_alerts(withdrawn=False) if a.source == source}
        plan = SyncPlan(source=source)
        errors: list[tuple[int, str]] = []
        others = self.tables.meta_many([r for r in wanted if r not in current])
        for ref in sorted(wanted):
            if ref in current:
                if wanted[ref].same_content(current[ref]):
                    plan.unchanged += 1
                else:
                    plan.changed.append(ref)
            elif self.lookup.documents_of(ref) or self.lookup.person(ref):
                owner = others[ref].source if ref in others else ""
                errors.append((0, f"alert {ref} belongs to "
                                  + (f"source {owner}" if owner else "no source")
                                  + f", not {source}"))
            else:
                plan.added.append(ref)
        if errors:
            raise _SourceConflict(f"{len(errors)} alert(s) in {path.name} belong to another "
                                  "source", errors, reason="wrong_source")
        plan.withdrawn = sorted(set(current) - set(wanted))
        return plan, wanted

    def sync(self, path: Path, *, source: str, operator: str, max_withdraw: int,
             dry_run: bool = False, reason: str = "", fmt: str | None = None) -> SyncPlan:
        """Make ``source``'s alerts exactly those of ``path`` (the complete current list),
        in one transaction; refuse more than ``max_withdraw`` withdrawals."""
        holder: list[SyncPlan] = []

        def change(now: int) -> tuple[Alert | None, dict[str, Any]]:
            plan, wanted = self.plan_sync(path, source=source, fmt=fmt)
            holder.append(plan)
            if len(plan.withdrawn) > max_withdraw:
                raise AlertStateError(
                    f"the sync would withdraw {len(plan.withdrawn)} alerts of {plan.source}, "
                    f"more than --max-withdraw {max_withdraw}; nothing was changed",
                    reason="too_many_withdrawals")
            if dry_run:
                return None, plan.counts()
            for ref in plan.changed:
                self.lookup.delete_ref(ref)
            for ref in plan.added + plan.changed:
                self._write(wanted[ref], now=now, bump=False)
            current = {a.ref: a for a in self.iter_alerts(withdrawn=False)
                       if a.ref in set(plan.withdrawn)}
            for ref in plan.withdrawn:
                self._withdraw(current[ref], operator=operator, now=now, bump=False)
            if plan.added or plan.changed or plan.withdrawn:
                self._bump()
            plan.applied = True
            return None, {**plan.counts(), "file": path.name}

        self._change("sync", "", operator, reason or f"sync of {source} from {path.name}",
                     change, dry_run=dry_run, source=source)
        return holder[0]

    # --- delta feeds ----------------------------------------------------------------------

    def apply_feed(self, path: Path, *, operator: str) -> FeedResult:
        """JSON Lines of ``{"source", "seq", "op": add|update|withdraw, "alert" | "owner_ref",
        "reason"}``; each source's ``seq`` must continue its last applied number by exactly
        one.  All events apply in one transaction, or none."""
        result = FeedResult()

        def change(now: int) -> tuple[Alert | None, dict[str, Any]]:
            events = self._read_feed(path)
            seqs: dict[str, int] = {}
            for line, ev in events:
                source = ev["source"]
                last = seqs.get(source)
                if last is None:
                    last = self.tables.feed_seq(source)
                seq = ev["seq"]
                if seq <= last:
                    raise _FileErrors(f"line {line}: event {seq} of {source} was already "
                                      f"applied (last applied: {last}); nothing was applied",
                                      [(line, "replayed event")], reason="feed_replay")
                if seq != last + 1:
                    raise _FileErrors(f"line {line}: event {seq} of {source} does not follow "
                                      f"{last} (a gap); nothing was applied",
                                      [(line, "gap")], reason="feed_gap")
                seqs[source] = seq
                try:
                    self._feed_event(ev, now=now, operator=operator)
                except BxError as exc:
                    raise _FileErrors(f"line {line}: {exc}; nothing was applied",
                                      [(line, str(exc))], reason=exc.reason) from None
                result.by_op[ev["op"]] = result.by_op.get(ev["op"], 0) + 1
                result.events += 1
            for source, seq in seqs.items():
                self.tables.set_feed_seq(source, seq, now_ms=now)
            if result.events:
                self._bump()
            result.last_seq = seqs
            return None, {"events": result.events, "ops": dict(sorted(result.by_op.items())),
                          "last_seq": dict(sorted(seqs.items())), "file": path.name}

        self._change("feed", "", operator, f"delta feed {path.name}", change)
        return result

    def _read_feed(self, path: Path) -> list[tuple[int, dict[str, Any]]]:
        events: list[tuple[int, dict[str, Any]]] = []
        errors: list[tuple[int, str]] = []
        try:
            for line, obj, error in read_rows(path, "jsonl"):
                if obj is None:
                    errors.append((line, error))
                    continue
                problem = _feed_shape(obj)
                if problem:
                    errors.append((line, problem))
                    continue
                events.append((line, obj))
                if len(events) > MAX_FEED_EVENTS:
                    errors.append((line, f"a feed file holds at most {MAX_FEED_EVENTS} events"))
                    break
        except UnicodeDecodeError:
            errors.append((first_non_utf8_line(path), "file is not UTF-8 text"))
        if errors:
            raise _FileErrors(f"{len(errors)} bad event(s) in {path.name}; nothing was applied",
                              errors, reason="bad_feed")
        if not events:
            raise _FileErrors(f"{path.name} holds no events; nothing was applied", [],
                              reason="bad_feed")
        return events

    def _feed_event(self, ev: dict[str, Any], *, now: int, operator: str) -> None:
        op, source = ev["op"], validate_source(ev["source"])
        if op == "withdraw":
            ref = str(ev["owner_ref"])
            old = self._existing(ref, "withdraw")
            self._check_source(old, source)
            self._withdraw(old, operator=operator, now=now, bump=False)
            return
        rows = ev["alert"] if isinstance(ev["alert"], list) else [ev["alert"]]
        alert = self._parse_rows(rows, source=source, now=now)
        exists = bool(self.lookup.documents_of(alert.ref) or self.lookup.person(alert.ref))
        if op == "add" and exists:
            raise AlertStateError(f"alert {alert.ref} already exists", reason="alert_exists")
        if op == "update":
            self._check_source(self._existing(alert.ref, "update"), source)
            self.lookup.delete_ref(alert.ref)
        self._write(alert, now=now, bump=False)

    @staticmethod
    def _check_source(alert: Alert, source: str) -> None:
        if alert.source != source:
            raise AlertStateError(f"alert {alert.ref} belongs to "
                                  + (f"source {alert.source}" if alert.source else "no source")
                                  + f", not {source}", reason="wrong_source")

    # --- the one way every change is made and audited ---------------------------------------

    def _change(self, action: str, ref: str, operator: str, reason: str,
                change: Callable[[int], tuple[T, dict[str, Any]]], *, dry_run: bool = False,
                source: str | None = None) -> T:
        now = self.clock_ms()
        known_operator = ""
        try:
            validate_id(operator, "operator")
            known_operator = operator
            reason = _reason(reason)
            with self.db.transaction():
                alert, facts = change(now)
                event: dict[str, Any] = {"event": f"watchlist_{action}", "operator": operator,
                                         "reason": reason, **facts}
                if isinstance(alert, Alert):
                    event.update(alert_id=self.pseudonym(alert.ref), kind=alert.kind,
                                 source=alert.source)
                elif source is not None:
                    event["source"] = source
                if dry_run:
                    event["dry_run"] = True
                if not dry_run:
                    self.audit.append(event, time_ms=now)
            return alert
        except BxError as exc:
            refused: dict[str, Any] = {"event": "watchlist_change_refused", "action": action,
                                       "operator": known_operator, "status": exc.status,
                                       "reason": exc.reason}
            if ref:
                refused["alert_id"] = self.pseudonym(ref)
            if source is not None:
                refused["source"] = source
            if not dry_run:
                with self.db.transaction():
                    self.audit.append(refused, time_ms=now)
            raise

    def _existing(self, ref: str, action: str) -> Alert:
        alert = self.get(ref)
        if alert is None:
            raise AlertNotFound(f"no alert {ref} on this node", reason="unknown_alert")
        if alert.withdrawn_ms is not None:
            when = dt.datetime.fromtimestamp(alert.withdrawn_ms / 1000, dt.UTC)
            raise AlertStateError(f"alert {ref} was already withdrawn on "
                                  f"{when:%Y-%m-%d %H:%M:%S}Z; cannot {action} it",
                                  reason="already_withdrawn")
        return alert

    def _write(self, alert: Alert, *, now: int, bump: bool = True) -> None:
        self.lookup.insert_documents(alert.documents)
        if alert.person is not None:
            self.lookup.insert_persons([alert.person])
        self.tables.put_meta(alert.ref, kind=alert.kind, source=alert.source, now_ms=now)
        self.tables.forget_withdrawn(alert.ref)
        if bump:
            self._bump()

    def _withdraw(self, alert: Alert, *, operator: str, now: int, bump: bool = True) -> None:
        self.tables.put_withdrawn(WithdrawnRow(alert.ref, alert.kind, alert.source, now,
                                               operator, alert.record()))
        self.lookup.delete_ref(alert.ref)
        self.tables.delete_meta(alert.ref)
        if bump:
            self._bump()

    def _bump(self) -> None:
        """A new watchlist generation (every replica's person index follows it)."""
        self.db.lock("watchlist")
        gen = int(self.db.get_meta("watchlist_generation") or "0") + 1
        self.lookup.bump_generation(str(gen))

    # --- parsing --------------------------------------------------------------------------

    def _today(self, now: int) -> dt.date:
        return dt.datetime.fromtimestamp(now / 1000, dt.UTC).date()

    def _parse_one(self, row: dict[str, Any], *, source: str, now: int) -> Alert:
        return self._parse_rows([row], source=source, now=now)

    def _parse_rows(self, rows: Sequence[dict[str, Any]], *, source: str, now: int) -> Alert:
        check = _Validator(self._today(now))
        scratch = ImportResult()
        docs: list[tuple[str, ...]] = []
        person: tuple[str, ...] | None = None
        for row in rows:
            _check_row_source(row, source)
            kind, rec = check.row({k: v for k, v in row.items() if k != "source"}, scratch)
            if kind == "person":
                if person is not None:
                    raise InvalidInput(f"person {rec[0]} is given twice", reason="duplicate")
                person = rec
            else:
                if any(d[:4] == rec[:4] for d in docs):
                    raise InvalidInput(f"document {rec[3]} is given twice", reason="duplicate")
                docs.append(rec)
        refs = {d[3] for d in docs} | ({person[0]} if person else set())
        if len(refs) != 1:
            raise InvalidInput("an alert's rows must share one owner_ref", reason="bad_field")
        return Alert(refs.pop(), source, tuple(sorted(docs, key=lambda d: (d[1], d[0], d[2]))),
                     person)

    def _parse_file(self, path: Path, *, source: str, fmt: str | None,
                    now: int) -> dict[str, Alert]:
        fmt = detect_format(path, fmt)
        check = _Validator(self._today(now))
        scratch = ImportResult()
        errors: list[tuple[int, str]] = []
        docs: dict[str, list[tuple[str, ...]]] = {}
        persons: dict[str, tuple[str, ...]] = {}
        doc_lines: dict[str, int] = {}
        person_lines: dict[str, int] = {}
        rows = 0
        try:
            for line, row, error in read_rows(path, fmt):
                rows += 1
                if row is None:
                    errors.append((line, error))
                    continue
                try:
                    _check_row_source(row, source)
                    kind, rec = check.row({k: v for k, v in row.items() if k != "source"},
                                          scratch)
                except BxError as exc:
                    errors.append((line, str(exc)))
                    continue
                if kind == "document":
                    first = doc_lines.setdefault("|".join(rec[:4]), line)
                    if first != line:
                        errors.append((line, f"record {rec[3]} for the same document is "
                                             f"already on line {first}"))
                        continue
                    docs.setdefault(rec[3], []).append(rec)
                else:
                    first = person_lines.setdefault(rec[0], line)
                    if first != line:
                        errors.append((line, f"person {rec[0]} is already on line {first}"))
                        continue
                    persons[rec[0]] = rec
        except UnicodeDecodeError:
            errors.append((first_non_utf8_line(path), "file is not UTF-8 text"))
        if errors:
            raise _FileErrors(f"{len(errors)} bad row(s) in {path.name}; nothing was changed",
                              errors, reason="bad_sync_file")
        if not rows:
            raise _FileErrors(f"{path.name} holds no alerts; nothing was changed "
                              "(to withdraw every alert of a source, withdraw them one by one)",
                              [], reason="bad_sync_file")
        refs = sorted(set(docs) | set(persons))
        return {r: Alert(r, source, tuple(sorted(docs.get(r, []),
                                                 key=lambda d: (d[1], d[0], d[2]))),
                         persons.get(r)) for r in refs}


def _check_row_source(row: dict[str, Any], source: str) -> None:
    given = row.get("source")
    if given not in (None, "") and given != source:
        raise AlertStateError(f"row is for source {given!r}, not {source!r}",
                              reason="wrong_source")


def _feed_shape(obj: dict[str, Any]) -> str:
    source, seq, op = obj.get("source"), obj.get("seq"), obj.get("op")
    if not isinstance(source, str) or not _SOURCE.fullmatch(source):
        return "source must be an agency's short name"
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= 2**53 - 1:
        return "seq must be a whole number >= 1"
    if op not in ("add", "update", "withdraw"):
        return "op must be add, update or withdraw"
    if op == "withdraw":
        if not isinstance(obj.get("owner_ref"), str) or not obj["owner_ref"]:
            return "a withdraw event needs owner_ref"
    else:
        alert = obj.get("alert")
        rows = alert if isinstance(alert, list) else [alert]
        if not rows or not all(isinstance(r, dict) for r in rows):
            return f"an {op} event needs the alert (an object, or a list of objects)"
    return ""


def _from_record(ref: str, source: str, record: dict[str, Any], *,
                 withdrawn_ms: int | None) -> Alert:
    docs = tuple(tuple(str(v) for v in d) for d in record.get("documents") or ())
    person = record.get("person")
    return Alert(ref, source, docs, None if person is None else tuple(str(v) for v in person),
                 withdrawn_ms=withdrawn_ms)


def export_lines(alerts: Sequence[Alert]) -> Iterator[str]:
    """JSON Lines in the import columns plus ``source``: what ``sync`` and ``import`` read."""
    for a in alerts:
        for row in a.rows():
            yield json.dumps(row, ensure_ascii=False, sort_keys=True)
