"""Reconciliation with a neighbour: who left one country and never arrived in the other?

For a period, this node's exits at BCPs facing the neighbour are asked about as entries
at the facing BCP(s), within ``transit`` after the exit; this node's entries from the
neighbour are asked about as exits there, within ``transit`` before the entry.  The
questions go in signed batches (:func:`node.crossings.client.confirm_crossings`).  Refused
entries are not crossings and are left out.  The core here does no I/O: ``ask`` sends one
batch and returns its answers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from node.crossings.bcps import BcpMap
from node.crossings.model import (
    CrossingAnswer,
    CrossingEvent,
    CrossingQuestion,
    CrossingRecord,
    Direction,
)
from node.crossings.store import CrossingStore

__all__ = ["ReconcileLine", "ReconcileReport", "plan", "reconcile", "write_detail"]

MATCHED = "matched"
EXIT_WITHOUT_ENTRY = "exit_without_entry"
ENTRY_WITHOUT_EXIT = "entry_without_exit"


@dataclass(frozen=True, slots=True)
class ReconcileLine:
    outcome: str
    record_id: str
    event: str
    bcp: str
    crossed_at: str
    doc_number: str
    doc_state: str
    doc_type: str
    peer_bcp: str = ""
    peer_crossed_at: str = ""


@dataclass
class ReconcileReport:
    peer: str
    from_ms: int
    to_ms: int
    lines: list[ReconcileLine] = field(default_factory=list)
    batches: int = 0

    def count(self, outcome: str) -> int:
        return sum(1 for ln in self.lines if ln.outcome == outcome)

    def summary(self) -> dict[str, object]:
        return {"peer": self.peer, "from": _iso(self.from_ms), "to": _iso(self.to_ms),
                "checked": len(self.lines), "batches": self.batches,
                MATCHED: self.count(MATCHED),
                EXIT_WITHOUT_ENTRY: self.count(EXIT_WITHOUT_ENTRY),
                ENTRY_WITHOUT_EXIT: self.count(ENTRY_WITHOUT_EXIT)}


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan(store: CrossingStore, bmap: BcpMap, *, own_country: str, peer_country: str,
         from_ms: int, to_ms: int,
         transit_ms: int) -> list[tuple[CrossingRecord, CrossingQuestion]]:
    """Every own exit toward / entry from ``peer_country`` in the period, with its question."""
    facing: dict[str, list[tuple[str, str]]] = {}
    for f in bmap.facing(own_country):
        if bmap.bcps[f.other].country == peer_country:
            facing.setdefault(f.own, []).append((f.other, f.section))
    out = []
    for event in (CrossingEvent.EXIT, CrossingEvent.ENTRY):
        for rec in store.records(bcps=sorted(facing), event=event, from_ms=from_ms,
                                 to_ms=to_ms):
            others = facing[rec.bcp]
            where = ({"bcp": others[0][0]} if len(others) == 1
                     else {"section": others[0][1]})
            if event is CrossingEvent.EXIT:  # did they enter there, after leaving here?
                q = CrossingQuestion(subject=rec.document, direction=Direction.ENTRY,
                                     window_start_ms=rec.crossed_at_ms,
                                     window_end_ms=rec.crossed_at_ms + transit_ms, **where)
            else:  # did they leave there, before entering here?
                q = CrossingQuestion(subject=rec.document, direction=Direction.EXIT,
                                     window_start_ms=rec.crossed_at_ms - transit_ms,
                                     window_end_ms=rec.crossed_at_ms, **where)
            out.append((rec, q))
    return out


def reconcile(items: Sequence[tuple[CrossingRecord, CrossingQuestion]],
              ask: Callable[[list[CrossingQuestion]], Sequence[CrossingAnswer]], *,
              peer: str, from_ms: int, to_ms: int, batch_size: int) -> ReconcileReport:
    report = ReconcileReport(peer=peer, from_ms=from_ms, to_ms=to_ms)
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        answers = ask([q for _, q in chunk])
        report.batches += 1
        for (rec, _), a in zip(chunk, answers, strict=True):
            if a.confirmed:
                outcome = MATCHED
            elif rec.event is CrossingEvent.EXIT:
                outcome = EXIT_WITHOUT_ENTRY
            else:
                outcome = ENTRY_WITHOUT_EXIT
            d = rec.document
            report.lines.append(ReconcileLine(
                outcome=outcome, record_id=rec.record_id, event=rec.event.value, bcp=rec.bcp,
                crossed_at=_iso(rec.crossed_at_ms), doc_number=d.number,
                doc_state=d.issuing_state, doc_type=d.doc_type,
                peer_bcp=a.bcp if a.confirmed else "",
                peer_crossed_at=_iso(a.crossed_at_ms) if a.confirmed else ""))
    return report


def write_detail(report: ReconcileReport, path: Path) -> None:
    """The detail file: JSON (``.json``: summary + lines) or CSV (anything else)."""
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps({"summary": report.summary(),
                                    "lines": [asdict(ln) for ln in report.lines]},
                                   ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return
    buf = io.StringIO()
    names = list(ReconcileLine.__dataclass_fields__)
    w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    w.writeheader()
    for ln in report.lines:
        w.writerow(asdict(ln))
    path.write_text(buf.getvalue(), encoding="utf-8")
