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
import gc
import re
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.core.errors import BxError, InvalidInput
from node.core.limits import MAX_DOC_NUMBER_LEN, MAX_ID_LEN
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
    CsvChunk,
    csv_row_dict,
    detect_format,
    first_non_utf8_line,
    read_csv_chunks,
    read_rows,
    text_field,
)
from node.store.db import Database as Store
from node.store.watchlist import DocumentLoader, SqlWatchlistStore

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
#: A chunk's owner references / document numbers, each followed by a newline, all good
#: (the checks of validate_id and validate_doc_number, over the whole column at once).
_IDS = re.compile(rf"(?:[A-Za-z0-9][A-Za-z0-9._:@-]{{0,{MAX_ID_LEN - 1}}}\n)+")
_NUMBERS = re.compile(rf"(?:[A-Z0-9]{{1,{MAX_DOC_NUMBER_LEN}}}\n)+")
#: The interpreter's switch interval while the import's writer thread runs: the writer
#: releases the GIL for each multi-row statement (SQLite works on the other core) and must get
#: it back soon after, not 5 ms later (the default) while this thread checks rows.
_SWITCH_S = 0.0002
_DOC_COLUMNS = ("kind", "owner_ref", "action", "expires", "number", "issuing_state",
                "doc_type")


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

    def documents(self, part: CsvChunk, out: ImportResult) -> list[tuple[str, ...]] | None:
        """The records of a chunk of document rows that are all good, checked a column at
        a time; None when the chunk holds anything else (a person, a bad or odd row, a
        field to strip), which :meth:`row` then takes row by row.  What this accepts,
        :meth:`row` accepts and makes the same record of."""
        header, rows = part.header, part.rows
        width = len(header)
        col = {name: i for i, name in enumerate(header)}  # the last of a repeated name
        if not rows or any(name not in col for name in _DOC_COLUMNS):
            return None
        n = len(rows)
        try:
            cols = list(zip(*rows, strict=True))
        except ValueError:  # rows of different lengths
            return None
        if len(cols) != width:
            return None
        kinds, owners, actions, expires, numbers, states, types = (
            cols[col[name]] for name in _DOC_COLUMNS)
        if kinds.count("document") != n or not _all_match(_IDS, owners) \
                or not _all_match(_NUMBERS, numbers) or not set(actions) <= _ACTIONS:
            return None
        contacts = cols[col["contact"]] if "contact" in col else ("",) * n
        losses = cols[col["loss_type"]] if "loss_type" in col else ("",) * n
        if not set(losses) <= LOSS_TYPES:
            return None
        dates = set(expires)
        if any(c.strip() != c or len(c) > MAX_FIELD for c in set(contacts)) or any(
                d.strip() != d for d in dates):
            return None
        try:
            for state in set(states):
                validate_state(state)
            for doc_type in set(types):
                validate_doc_type(doc_type)
            expired = [d for d in dates if self.expires(d)]
        except BxError:
            return None
        out.already_expired += sum(expires.count(d) for d in expired)
        return list(zip(states, numbers, types, owners, actions, contacts, expires, losses,
                        strict=True))

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


def _all_match(pattern: re.Pattern[str], values: tuple[str, ...]) -> bool:
    """Whether every value matches ``pattern``'s item (none may hold a newline)."""
    text = "\n".join(values) + "\n"
    return text.count("\n") == len(values) and pattern.fullmatch(text) is not None


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

    A CSV file into a database that can say which documents it held before the import
    (SQLCipher) takes the bulk path (:func:`_load_csv`): chunks of rows checked a column
    at a time, and repeated documents found by the database instead of a dict of every
    key read, so the import holds no per-row state of its own (SQLite's in-memory temporary
    storage still grows on the largest files: benchmarks/README.md, the import target).
    """
    out = ImportResult()
    fmt = detect_format(path, fmt)
    check = _Validator(today)
    if store is None:
        _load_rows(path, fmt, check, out, None, chunk, progress)
        return out
    tables = SqlWatchlistStore(store)
    try:
        with store.transaction():
            loader = tables.document_loader() if fmt == "csv" else None
            if loader is None:
                _load_rows(path, fmt, check, out, tables, chunk, progress)
            else:
                collecting = gc.isenabled()
                gc.disable()  # see _load_csv
                try:
                    _load_csv(path, check, out, tables, loader, chunk, progress)
                finally:
                    loader.close()
                    if collecting:
                        gc.enable()
            if out.error_count or not out.rows:
                raise _Abort
            store.lock("watchlist")  # generations commit in order (the change feed's rule)
            gen = int(store.get_meta("watchlist_generation") or "0") + 1
            tables.bump_generation(str(gen))
            tables.refresh_statistics()  # the planner's view of the rows just loaded
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


def _load_rows(path: Path, fmt: str, check: _Validator, out: ImportResult,
               tables: SqlWatchlistStore | None, chunk: int, progress: Any) -> None:
    """Row by row (JSON Lines, PostgreSQL, a dry run): repeats found by remembering every
    key read."""
    doc_lines: dict[str, int] = {}
    person_lines: dict[str, int] = {}
    docs: list[tuple[str, ...]] = []
    persons: list[tuple[str, ...]] = []

    def flush() -> None:
        if tables is not None and not out.error_count:
            tables.insert_documents(docs)
            tables.insert_persons(persons)
        out.document_count += len(docs)
        out.person_count += len(persons)
        docs.clear()
        persons.clear()

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
                    out.add_error(line, _repeated_document(rec, first))
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


def _repeated_document(rec: tuple[str, ...], first: int) -> str:
    return f"record {rec[3]} for the same document is already on line {first}"


def _load_csv(path: Path, check: _Validator, out: ImportResult, tables: SqlWatchlistStore,
              loader: DocumentLoader, chunk: int, progress: Any) -> None:
    """The bulk path: each chunk's documents checked column by column
    (:meth:`_Validator.documents`; a chunk it cannot vouch for goes row by row through
    :meth:`_Validator.row`, which names what is wrong), written through ``loader``, which
    says which rows repeat a document this import already wrote.  Such a row's error
    names the first line of its document, found by reading the file again once at the end
    (only for the errors that are reported).  Documents are written even after an error
    (the database is what finds repeats); the transaction is rolled back in the end.

    The cyclic garbage collector is off meanwhile: every chunk allocates hundreds of
    thousands of lists and tuples, none in a cycle (reference counting frees them as the
    chunk is done), and each collection would walk the whole chunk again — a quarter of
    the import's time."""
    person_lines: dict[str, int] = {}
    repeats: dict[tuple[str, ...], list[int]] = {}  # document -> its errors to complete
    pending: list[tuple[Future[list[int]], _Checked]] = []

    def write(docs: list[tuple[str, ...]], groups: list[list[str]],
              persons: list[tuple[str, ...]]) -> list[int]:
        repeated = loader.add(docs, groups)
        if persons:
            tables.insert_persons(persons)
        return repeated

    def finish() -> None:  # the chunk before: its repeats, then every error in line order
        while pending:
            done, checked = pending.pop()
            _record(checked, done.result(), out, repeats)

    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watchlist-import")
    switch = sys.getswitchinterval()
    sys.setswitchinterval(_SWITCH_S)
    try:
        for part in read_csv_chunks(path, chunk):
            out.rows += len(part.rows) + (part.error is not None)
            if progress is not None:
                progress(len(part.rows))
            checked = _check_chunk(part, check, out, person_lines)
            out.person_count += len(checked.persons)
            clean = not (out.error_count or checked.errors)  # else nothing is kept anyway
            done = writer.submit(write, checked.docs, loader.groups(checked.docs),
                                 checked.persons if clean else [])
            finish()
            pending.append((done, checked))
        finish()
    except UnicodeDecodeError:
        finish()
        out.add_error(first_non_utf8_line(path), "file is not UTF-8 text")
    finally:
        writer.shutdown(wait=True, cancel_futures=True)  # the connection is ours again
        sys.setswitchinterval(switch)
    if repeats:
        for key, first in _first_lines(path, check, set(repeats)).items():
            for k in repeats[key]:
                line, _ = out.errors[k]
                out.errors[k] = (line, _repeated_document(key, first))


@dataclass
class _Checked:
    """One chunk, checked: its documents (``docs[i]`` is row ``where[i]``, or row ``i``
    when ``where`` is None), its persons and the errors found so far."""

    part: CsvChunk
    docs: list[tuple[str, ...]]
    where: list[int] | None
    persons: list[tuple[str, ...]]
    errors: list[tuple[int, str | tuple[str, ...]]]


def _check_chunk(part: CsvChunk, check: _Validator, out: ImportResult,
                 person_lines: dict[str, int]) -> _Checked:
    docs = check.documents(part, out)
    if docs is not None:
        return _Checked(part, docs, None, [], [])
    checked = _Checked(part, [], [], [], [])
    for j, row in enumerate(part.rows):
        line = part.lines[j]
        fields = csv_row_dict(part.header, row)
        if None in fields:
            checked.errors.append((line, "row has more fields than the header"))
            continue
        try:
            kind, rec = check.row(fields, out)  # type: ignore[arg-type]
        except BxError as exc:
            checked.errors.append((line, str(exc)))
            continue
        if kind == "document":
            checked.docs.append(rec)
            checked.where.append(j)  # type: ignore[union-attr]
            continue
        first = person_lines.setdefault(rec[0], line)
        if first != line:
            checked.errors.append((line, f"person {rec[0]} is already on line {first}"))
            continue
        checked.persons.append(rec)
    return checked


def _record(checked: _Checked, repeated: list[int], out: ImportResult,
            repeats: dict[tuple[str, ...], list[int]]) -> None:
    """A written chunk's count and errors (a repeat's first line left to find)."""
    part, docs, where, errors = checked.part, checked.docs, checked.where, checked.errors
    for i in repeated:
        errors.append((part.lines[i if where is None else where[i]], docs[i]))
    out.document_count += len(docs) - len(repeated)
    errors.sort(key=lambda e: e[0])
    if part.error is not None:
        errors.append(part.error)
    for line, error in errors:
        if isinstance(error, str):
            out.add_error(line, error)
            continue
        if len(out.errors) < MAX_ERRORS_REPORTED:
            repeats.setdefault(error[:4], []).append(len(out.errors))
        out.add_error(line, f"record {error[3]} for the same document is already on an "
                            "earlier line")


def _first_lines(path: Path, check: _Validator, keys: set[tuple[str, ...]]
                 ) -> dict[tuple[str, ...], int]:
    """The first line holding a good row of each document in ``keys`` (an error path)."""
    found: dict[tuple[str, ...], int] = {}
    scratch = ImportResult()
    try:
        for part in read_csv_chunks(path, 20_000):
            for line, row in zip(part.lines, part.rows, strict=True):
                fields = csv_row_dict(part.header, row)
                if None in fields:
                    continue
                try:
                    kind, rec = check.row(fields, scratch)  # type: ignore[arg-type]
                except BxError:
                    continue
                if kind == "document" and rec[:4] in keys:
                    found.setdefault(rec[:4], line)
            if len(found) == len(keys):
                break
    except UnicodeDecodeError:
        pass
    return found
