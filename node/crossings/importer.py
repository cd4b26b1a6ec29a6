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

import csv
import datetime as dt
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.core.errors import BxError, InvalidInput
from node.core.model import DocumentQuery, PartialDate
from node.crossings.model import CrossingEvent, CrossingRecord, TravelMode

__all__ = ["MAX_ERRORS_REPORTED", "CrossingImport", "make_record", "parse_crossings_file",
           "parse_utc"]

MAX_ERRORS_REPORTED = 50
MAX_FIELD = 256
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


def _s(row: dict[str, Any], key: str, required: bool = True) -> str:
    value = row.get(key)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{key} is required", reason="missing_field")
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be text", reason="bad_field")
    if len(value) > MAX_FIELD:
        raise InvalidInput(f"{key} is longer than {MAX_FIELD}", reason="bad_field")
    return value.strip()


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
        record_id=_s(row, "record_id"), event=_s(row, "event"), bcp=_s(row, "bcp"),
        crossed_at_ms=parse_utc(_s(row, "time")), mode=_s(row, "mode"),
        doc_number=_s(row, "doc_number"), doc_state=_s(row, "doc_state"),
        doc_type=_s(row, "doc_type", required=False),
        family_name=_s(row, "family_name", required=False),
        given_names=_s(row, "given_names", required=False),
        dob=_s(row, "dob", required=False), nationality=_s(row, "nationality", required=False),
        own_bcps=own_bcps)


def _rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        if fmt == "csv":
            reader = csv.DictReader(f, strict=True)
            try:
                for row in reader:
                    if None in row:
                        yield reader.line_num, None, "row has more fields than the header"
                        continue
                    yield reader.line_num, row, ""
            except csv.Error as exc:
                yield reader.line_num, None, f"not valid CSV ({exc})"
        else:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    yield n, None, "not valid JSON"
                    continue
                if not isinstance(obj, dict):
                    yield n, None, "each line must be a JSON object"
                    continue
                yield n, obj, ""


def parse_crossings_file(path: Path, *, own_bcps: Collection[str],
                         fmt: str | None = None) -> CrossingImport:
    """Validate every row of ``path``; nothing is written here."""
    out = CrossingImport()
    if fmt is None:
        fmt = "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"
    first_line: dict[str, int] = {}
    rows = 0
    try:
        for line, row, error in _rows(path, fmt):
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
        out.add_error(rows + 1, "file is not UTF-8 text")
    return out
