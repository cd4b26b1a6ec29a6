"""Crossing records import: CSV or JSON Lines, every row validated, all or nothing.

Columns (CSV header, or JSON keys), as the watchlist import:

=============  ===================================================================
record_id      the recording system's id (1-64 of A-Z a-z 0-9 . _ : @ -), unique
event          entry | exit | refused_entry
bcp            this node's BCP code (imported with ``bxnode crossings bcps``)
time           ISO 8601 in UTC, e.g. ``2026-11-20T08:15:00Z``
mode           road | rail | air | foot
doc_number     the traveller's document number (A-Z 0-9, 1-20)
doc_state      its ICAO 9303 issuing state
doc_type       its ICAO 9303 type (default P)
family_name    optional, as written
given_names    optional
dob            optional, YYYY, YYYY-MM or YYYY-MM-DD
nationality    optional, ICAO 9303 (default: the document's issuing state)
=============  ===================================================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.core.errors import BxError, InvalidInput
from node.core.model import DocumentQuery, PartialDate
from node.crossings.model import CrossingEvent, CrossingRecord, TravelMode
from node.importing import detect_format, first_non_utf8_line, read_rows, text_field

__all__ = ["MAX_ERRORS_REPORTED", "CrossingImport", "make_record", "parse_crossings_file",
           "parse_utc"]

MAX_ERRORS_REPORTED = 50
MAX_ROWS = 1_000_000


@dataclass
class CrossingImport:
    records: list[CrossingRecord] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    error_count: int = 0

    def add_error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_REPORTED:
            self.errors.append((line, message))


def parse_utc(text: str, what: str = "time") -> int:
    """ISO 8601 with an explicit UTC designator (``Z`` or ``+00:00``) -> ms since the epoch."""
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.utcoffset() != dt.timedelta(0):
        raise InvalidInput(f"{what} {text!r} is not ISO 8601 in UTC (e.g. 2026-11-20T08:15:00Z)",
                           reason="bad_time")
    return int(when.timestamp() * 1000)


def make_record(*, record_id: str, event: str, bcp: str, crossed_at_ms: int, mode: str,
                doc_number: str, doc_state: str, doc_type: str, family_name: str = "",
                given_names: str = "", dob: str = "", nationality: str = "",
                own_bcps: Collection[str]) -> CrossingRecord:
    """Validate one record from any source (file row, local gRPC call)."""
    try:
        ev = CrossingEvent(event)
    except ValueError:
        raise InvalidInput("event must be entry, exit or refused_entry",
                           reason="bad_event") from None
    try:
        md = TravelMode(mode)
    except ValueError:
        raise InvalidInput("mode must be road, rail, air or foot", reason="bad_mode") from None
    if bcp not in own_bcps:
        raise InvalidInput(f"bcp {bcp!r} is not one of this node's BCPs", reason="unknown_bcp")
    return CrossingRecord(
        record_id=record_id, event=ev, bcp=bcp, crossed_at_ms=crossed_at_ms, mode=md,
        document=DocumentQuery(number=doc_number, issuing_state=doc_state,
                               doc_type=doc_type or "P"),
        family_name=family_name, given_names=given_names,
        date_of_birth=PartialDate.parse(dob) if dob else None, nationality=nationality)


def _row(row: dict[str, Any], own_bcps: Collection[str]) -> CrossingRecord:
    return make_record(
        record_id=text_field(row, "record_id"), event=text_field(row, "event"),
        bcp=text_field(row, "bcp"),
        crossed_at_ms=parse_utc(text_field(row, "time")), mode=text_field(row, "mode"),
        doc_number=text_field(row, "doc_number"), doc_state=text_field(row, "doc_state"),
        doc_type=text_field(row, "doc_type", required=False),
        family_name=text_field(row, "family_name", required=False),
        given_names=text_field(row, "given_names", required=False),
        dob=text_field(row, "dob", required=False),
        nationality=text_field(row, "nationality", required=False),
        own_bcps=own_bcps)


def parse_crossings_file(path: Path, *, own_bcps: Collection[str],
                         fmt: str | None = None) -> CrossingImport:
    """Validate every row of ``path``; nothing is written here."""
    out = CrossingImport()
    fmt = detect_format(path, fmt)
    first_line: dict[str, int] = {}
    rows = 0
    try:
        for line, row, error in read_rows(path, fmt):
            rows += 1
            if rows > MAX_ROWS:
                out.add_error(line, f"more than {MAX_ROWS} rows; split the file")
                break
            if row is None:
                out.add_error(line, error)
                continue
            try:
                rec = _row(row, own_bcps)
            except BxError as exc:
                out.add_error(line, str(exc))
                continue
            first = first_line.setdefault(rec.record_id, line)
            if first != line:
                out.add_error(line, f"record_id {rec.record_id} is already on line {first}")
                continue
            out.records.append(rec)
    except UnicodeDecodeError:
        out.add_error(first_non_utf8_line(path), "file is not UTF-8 text")
    return out
