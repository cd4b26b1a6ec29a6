"""Watchlist import: CSV or JSON Lines, every row validated, all or nothing.

Columns (CSV header, or JSON keys):

=============  =====================================================================
kind           ``document`` or ``person``
owner_ref      the owner's reference for this record (1-64 of A-Z a-z 0-9 . _ : @ -)
action         refuse_entry | arrest | seize_document | inform | monitor
expires        review / expiry date, YYYY-MM-DD; from that day on the record never hits
contact        optional contact point returned with a hit (default: the node's)
number         document: number (A-Z 0-9, 1-20)
issuing_state  document: ICAO 9303 state code
doc_type       document: ICAO 9303 type (P, I, A, C, V...)
loss_type      document: optional (stolen, lost, revoked, invalidated)
family_name    person: as written, original script
given_names    person
patronymic     person, optional
dob            person: YYYY, YYYY-MM or YYYY-MM-DD (00 = unknown)
nationality    person: ICAO 9303 code
sex            person: M, F or X
=============  =====================================================================
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.core.errors import BxError, InvalidInput
from node.core.model import (
    ActionCode,
    DocumentQuery,
    PartialDate,
    PersonQuery,
    Sex,
    validate_id,
)

__all__ = ["MAX_ERRORS_REPORTED", "MAX_IMPORT_FIELD", "ImportResult", "parse_file"]

MAX_ERRORS_REPORTED = 50
MAX_IMPORT_FIELD = 256
LOSS_TYPES = frozenset({"", "stolen", "lost", "revoked", "invalidated"})


@dataclass
class ImportResult:
    documents: list[tuple[str, ...]] = field(default_factory=list)
    persons: list[tuple[str, ...]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    error_count: int = 0
    rows: int = 0
    already_expired: int = 0

    def add_error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_REPORTED:
            self.errors.append((line, message))


def _s(row: dict[str, Any], key: str, required: bool = True) -> str:
    value = row.get(key)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{key} is required", reason="missing_field")
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be text", reason="bad_field")
    if len(value) > MAX_IMPORT_FIELD:
        raise InvalidInput(f"{key} is longer than {MAX_IMPORT_FIELD}", reason="bad_field")
    return value.strip()


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"expires {text!r} is not a date YYYY-MM-DD",
                           reason="bad_date") from None


def _row(row: dict[str, Any], today: dt.date, out: ImportResult) -> None:
    kind = _s(row, "kind")
    owner_ref = validate_id(_s(row, "owner_ref"), "owner_ref")
    try:
        action = ActionCode(_s(row, "action")).value
    except ValueError:
        raise InvalidInput(f"action must be one of {', '.join(a.value for a in ActionCode)}",
                           reason="bad_action") from None
    expires = _date(_s(row, "expires"))
    if expires < today:
        out.already_expired += 1
    contact = _s(row, "contact", required=False)
    if kind == "document":
        q = DocumentQuery(number=_s(row, "number"), issuing_state=_s(row, "issuing_state"),
                          doc_type=_s(row, "doc_type"))
        loss = _s(row, "loss_type", required=False)
        if loss not in LOSS_TYPES:
            raise InvalidInput(f"loss_type must be one of {sorted(LOSS_TYPES - {''})}",
                               reason="bad_field")
        out.documents.append((q.issuing_state, q.number, q.doc_type, owner_ref, action, contact,
                              expires.isoformat(), loss))
    elif kind == "person":
        try:
            sex = Sex(_s(row, "sex"))
        except ValueError:
            raise InvalidInput("sex must be M, F or X", reason="bad_field") from None
        p = PersonQuery(family_name=_s(row, "family_name"),
                        given_names=_s(row, "given_names", required=False),
                        patronymic=_s(row, "patronymic", required=False),
                        date_of_birth=PartialDate.parse(_s(row, "dob")),
                        nationality=_s(row, "nationality"), sex=sex)
        out.persons.append((owner_ref, p.family_name, p.given_names, p.patronymic,
                            str(p.date_of_birth), p.nationality, p.sex.value, action, contact,
                            expires.isoformat()))
    else:
        raise InvalidInput("kind must be 'document' or 'person'", reason="bad_kind")


def _rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """Yield (line number, row or None, error) for every data line."""
    with path.open(encoding="utf-8", newline="") as f:
        if fmt == "csv":
            reader = csv.DictReader(f, strict=True)
            try:
                for row in reader:
                    if None in row:
                        yield reader.line_num, None, "row has more fields than the header"
                        continue
                    yield reader.line_num, row, ""
            except csv.Error as exc:  # DictReader.line_num lags after a failed read
                yield reader.reader.line_num, None, f"not valid CSV ({exc})"
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


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"


def parse_file(path: Path, *, fmt: str | None = None, today: dt.date,
               progress: Any = None) -> ImportResult:
    """Validate every row of ``path``; nothing is written here.

    ``progress`` is an optional callable taking the number of rows just read.
    """
    out = ImportResult()
    fmt = detect_format(path, fmt)
    doc_lines: dict[tuple[str, ...], int] = {}
    person_lines: dict[str, int] = {}
    try:
        for line, row, error in _rows(path, fmt):
            out.rows += 1
            if progress is not None and out.rows % 1000 == 0:
                progress(1000)
            if row is None:
                out.add_error(line, error)
                continue
            docs, persons = len(out.documents), len(out.persons)
            try:
                _row(row, today, out)
            except BxError as exc:
                out.add_error(line, str(exc))
                continue
            if len(out.documents) > docs:
                d = out.documents[-1]
                first = doc_lines.setdefault(d[:4], line)
                if first != line:
                    out.add_error(line, f"record {d[3]} for the same document is already on "
                                        f"line {first}")
            if len(out.persons) > persons:
                ref = out.persons[-1][0]
                first = person_lines.setdefault(ref, line)
                if first != line:
                    out.add_error(line, f"person {ref} is already on line {first}")
    except UnicodeDecodeError:
        out.add_error(_first_non_utf8_line(path), "file is not UTF-8 text")
    return out


def _first_non_utf8_line(path: Path) -> int:
    """The line holding the first byte that is not UTF-8 (the decoder reads ahead in chunks)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return raw.count(b"\n", 0, exc.start) + 1
    return 0

