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

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.core.errors import BxError, InvalidInput
from node.core.model import (
    ActionCode,
    PartialDate,
    PersonQuery,
    Sex,
    validate_doc_number,
    validate_doc_type,
    validate_id,
    validate_state,
)
from node.importing import (
    MAX_FIELD,
    detect_format,
    first_non_utf8_line,
    read_rows,
    text_field,
)
from node.store.db import Database as Store
from node.store.watchlist import SqlWatchlistStore

__all__ = ["MAX_ERRORS_REPORTED", "MAX_IMPORT_FIELD", "ImportResult", "import_file", "parse_file"]

MAX_ERRORS_REPORTED = 50
MAX_IMPORT_FIELD = MAX_FIELD
LOSS_TYPES = frozenset({"", "stolen", "lost", "revoked", "invalidated"})


@dataclass
class ImportResult:
    document_count: int = 0
    person_count: int = 0
    written: bool = False
    errors: list[tuple[int, str]] = field(default_factory=list)
    error_count: int = 0
    rows: int = 0
    already_expired: int = 0

    def add_error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_REPORTED:
            self.errors.append((line, message))





_ACTIONS = frozenset(a.value for a in ActionCode)


class _Validator:
    """Row checks, fast on the common path; every field goes through the model's validators."""

    def __init__(self, today: dt.date) -> None:
        self._today = today.isoformat()
        self._dates: dict[str, bool] = {}  # expiry text -> already expired

    def expires(self, text: str) -> bool:
        hit = self._dates.get(text)
        if hit is None:
            try:
                hit = dt.date.fromisoformat(text).isoformat() < self._today
            except ValueError:
                raise InvalidInput(f"expires {text!r} is not a date YYYY-MM-DD",
                                   reason="bad_date") from None
            if len(text) != 10:
                raise InvalidInput(f"expires {text!r} is not a date YYYY-MM-DD",
                                   reason="bad_date")
            self._dates[text] = hit
        return hit

    def row(self, row: dict[str, Any], out: ImportResult) -> tuple[str, tuple[str, ...]]:
        kind = text_field(row, "kind")
        owner_ref = validate_id(text_field(row, "owner_ref"), "owner_ref")
        action = text_field(row, "action")
        if action not in _ACTIONS:
            raise InvalidInput(f"action must be one of {', '.join(a.value for a in ActionCode)}",
                               reason="bad_action")
        expires = text_field(row, "expires")
        if self.expires(expires):
            out.already_expired += 1
        contact = text_field(row, "contact", required=False)
        if kind == "document":
            number = validate_doc_number(text_field(row, "number"))
            state = validate_state(text_field(row, "issuing_state"))
            doc_type = validate_doc_type(text_field(row, "doc_type"))
            loss = text_field(row, "loss_type", required=False)
            if loss not in LOSS_TYPES:
                raise InvalidInput(f"loss_type must be one of {sorted(LOSS_TYPES - {''})}",
                                   reason="bad_field")
            return "document", (state, number, doc_type, owner_ref, action, contact, expires,
                                loss)
        if kind == "person":
            try:
                sex = Sex(text_field(row, "sex"))
            except ValueError:
                raise InvalidInput("sex must be M, F or X", reason="bad_field") from None
            p = PersonQuery(family_name=text_field(row, "family_name"),
                            given_names=text_field(row, "given_names", required=False),
                            patronymic=text_field(row, "patronymic", required=False),
                            date_of_birth=PartialDate.parse(text_field(row, "dob")),
                            nationality=text_field(row, "nationality"), sex=sex)
            return "person", (owner_ref, p.family_name, p.given_names, p.patronymic,
                              str(p.date_of_birth), p.nationality, p.sex.value, action, contact,
                              expires)
        raise InvalidInput("kind must be 'document' or 'person'", reason="bad_kind")


class _Abort(Exception):
    """Raised inside the import transaction to roll it back."""


def import_file(path: Path, *, store: Store | None, fmt: str | None = None, today: dt.date,
                progress: Any = None, chunk: int = 20_000,
                before_commit: Callable[[ImportResult], None] | None = None) -> ImportResult:
    """Validate every row of ``path`` and, when all are good, write them all.

    Rows are written in chunks inside ONE transaction while the file is read; a bad
    row anywhere rolls the whole transaction back, so nothing is ever half-imported.
    With ``store=None`` it only validates (a dry run).  ``progress`` is an optional
    callable taking the number of rows just read; ``before_commit`` runs inside the
    transaction once every row is good (the audit entry goes there).
    """
    out = ImportResult()
    fmt = detect_format(path, fmt)
    check = _Validator(today)
    doc_lines: dict[str, int] = {}
    person_lines: dict[str, int] = {}
    docs: list[tuple[str, ...]] = []
    persons: list[tuple[str, ...]] = []

    def flush() -> None:
        if store is not None and not out.error_count:
            tables = SqlWatchlistStore(store)
            tables.insert_documents(docs)
            tables.insert_persons(persons)
        out.document_count += len(docs)
        out.person_count += len(persons)
        docs.clear()
        persons.clear()

    def read() -> None:
        try:
            for line, row, error in read_rows(path, fmt):
                out.rows += 1
                if progress is not None and out.rows % 1000 == 0:
                    progress(1000)
                if row is None:
                    out.add_error(line, error)
                    continue
                try:
                    kind, rec = check.row(row, out)
                except BxError as exc:
                    out.add_error(line, str(exc))
                    continue
                if kind == "document":
                    first = doc_lines.setdefault("|".join(rec[:4]), line)
                    if first != line:
                        out.add_error(line, f"record {rec[3]} for the same document is already "
                                            f"on line {first}")
                        continue
                    docs.append(rec)
                else:
                    first = person_lines.setdefault(rec[0], line)
                    if first != line:
                        out.add_error(line, f"person {rec[0]} is already on line {first}")
                        continue
                    persons.append(rec)
                if len(docs) + len(persons) >= chunk:
                    flush()
            flush()
        except UnicodeDecodeError:
            out.add_error(first_non_utf8_line(path), "file is not UTF-8 text")

    if store is None:
        read()
        return out
    try:
        with store.transaction():
            read()
            if out.error_count or not out.rows:
                raise _Abort
            store.lock("watchlist")  # generations commit in order (the change feed's rule)
            gen = int(store.get_meta("watchlist_generation") or "0") + 1
            SqlWatchlistStore(store).bump_generation(str(gen))
            if before_commit is not None:
                before_commit(out)
    except _Abort:
        out.written = False
    else:
        out.written = True
    return out


def parse_file(path: Path, *, fmt: str | None = None, today: dt.date,
               progress: Any = None) -> ImportResult:
    """Validate every row of ``path``; nothing is written (a dry run)."""
    return import_file(path, store=None, fmt=fmt, today=today, progress=progress)
