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
import multiprocessing
import re
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from node.core.errors import BxError, EnvironmentFault, InvalidInput
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
_DOC_COLUMNS = ("kind", "owner_ref", "action", "expires", "number", "issuing_state",
                "doc_type")


class _Validator:
    """Row checks, fast on the common path; every field goes through the model's validators."""

    def __init__(self, today: dt.date) -> None:
        self.today = today
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
    at a time in a second process while this one writes, and repeated documents found by
    the database instead of a dict of every key read, so the import holds no per-row
    state of its own.  JSON Lines into the same database is read row by row, its
    documents written through the same loader (no dict of their keys either); into
    PostgreSQL, whose sealed columns the loader cannot compare, repeats are found by a
    temporary table of the import's transaction (:class:`ImportKeys`); only a dry run
    remembers every document's key.
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
            loader = tables.document_loader()
            if loader is None or fmt != "csv":
                try:
                    _load_rows(path, fmt, check, out, tables, chunk, progress, loader)
                finally:
                    if loader is not None:
                        loader.close()
            else:
                collecting = gc.isenabled()
                gc.disable()  # the chunks received are acyclic: see _check_csv
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
               tables: SqlWatchlistStore | None, chunk: int, progress: Any,
               loader: DocumentLoader | None = None) -> None:
    """Row by row (JSON Lines, PostgreSQL, a dry run).  Repeated documents are found by
    the database where it can (SQLCipher: ``loader``, as on the bulk path; PostgreSQL: the
    import's :class:`ImportKeys`), so a file of ten million documents holds no dict of
    their keys; only a dry run remembers every key read.  Repeated persons are found by
    remembering their references."""
    doc_lines: dict[str, int] = {}
    person_lines: dict[str, int] = {}
    docs: list[tuple[str, ...]] = []
    docs_at: list[int] = []  # the line of each of docs (with a loader)
    persons: list[tuple[str, ...]] = []
    repeats: dict[tuple[str, ...], list[int]] = {}
    keys = tables.import_keys() if tables is not None and loader is None else None

    def repeated_at(i: int) -> None:
        if len(out.errors) < MAX_ERRORS_REPORTED:
            repeats.setdefault(docs[i][:4], []).append(len(out.errors))
        out.add_error(docs_at[i], f"record {docs[i][3]} for the same document is already "
                                  "on an earlier line")

    def flush() -> None:
        if loader is not None:  # written even after an error: the database finds repeats
            repeated = loader.add([], docs)
            for i in repeated:
                repeated_at(i)
            out.document_count += len(docs) - len(repeated)
        elif keys is not None:
            fresh = keys.first_time([d[:4] for d in docs])
            for i in (i for i, first in enumerate(fresh) if not first):
                repeated_at(i)
            kept = [d for d, first in zip(docs, fresh, strict=True) if first]
            if tables is not None and not out.error_count:
                tables.insert_documents(kept)
            out.document_count += len(kept)
        else:
            if tables is not None and not out.error_count:
                tables.insert_documents(docs)
            out.document_count += len(docs)
        if tables is not None and not out.error_count:
            tables.insert_persons(persons)
        out.person_count += len(persons)
        docs.clear()
        docs_at.clear()
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
                if loader is None and keys is None:
                    first = doc_lines.setdefault("|".join(rec[:4]), line)
                    if first != line:
                        out.add_error(line, _repeated_document(rec, first))
                        continue
                docs.append(rec)
                docs_at.append(line)
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
    if repeats:  # each repeat's error names its document's first line (read again)
        for key, first in _first_lines(path, check, set(repeats), fmt=fmt).items():
            for k in repeats[key]:
                line, _ = out.errors[k]
                out.errors[k] = (line, _repeated_document(key, first))
    if loader is not None or keys is not None:  # a chunk's repeats came after its errors
        out.errors.sort(key=lambda e: e[0])


def _repeated_document(rec: tuple[str, ...], first: int) -> str:
    return f"record {rec[3]} for the same document is already on line {first}"


def _load_csv(path: Path, check: _Validator, out: ImportResult, tables: SqlWatchlistStore,
              loader: DocumentLoader, chunk: int, progress: Any) -> None:
    """The bulk path, on two cores: a checking process (:func:`_check_csv`) reads the
    file and checks each chunk's documents column by column (:meth:`_Validator.documents`;
    a chunk it cannot vouch for goes row by row through :meth:`_Validator.row`, which
    names what is wrong), while this process writes the chunk before through ``loader``,
    which says which rows repeat a document this import already wrote.  Such a row's error
    names the first line of its document, found by reading the file again once at the end
    (only for the errors that are reported).  Documents are written even after an error
    (the database is what finds repeats); the transaction is rolled back in the end.

    Why a process, not a thread: the checks are Python and the writer's statements need
    the interpreter to bind their parameters, so two threads share one core's worth of
    interpreter (the import ran at about half of what SQLite alone inserts).  The chunks
    come over a pipe as the statements' parameters, ready to bind; the pipe holds about
    one, so the checker is never more than a chunk or two ahead (memory stays flat).  The
    checking process gets the file's path and the day, never the database or its key."""
    repeats: dict[tuple[str, ...], list[int]] = {}  # document -> its errors to complete
    with _Checking(path, check.today, chunk) as checking:
        for checked in checking:
            read = len(checked.lines)
            out.rows += read + (checked.end_error is not None)
            if progress is not None:
                progress(read)
            out.already_expired += checked.expired
            out.person_count += len(checked.persons)
            groups = DocumentLoader.unpack(checked.packed)
            repeated = loader.add(groups, checked.tail)
            if checked.persons and not (out.error_count or checked.errors):
                tables.insert_persons(checked.persons)  # else nothing is kept anyway
            _record(checked, groups, repeated, out, repeats)
        if checking.not_utf8:
            out.add_error(first_non_utf8_line(path), "file is not UTF-8 text")
    if repeats:
        for key, first in _first_lines(path, check, set(repeats)).items():
            for k in repeats[key]:
                line, _ = out.errors[k]
                out.errors[k] = (line, _repeated_document(key, first))


@dataclass
class _Checked:
    """One chunk, checked by the checking process: the line each row ends on, its
    documents as :meth:`DocumentLoader.pack` packs them (document ``i`` is row
    ``where[i]``, or row ``i`` when ``where`` is None), its persons, the errors found so
    far, how many of its records had already expired, and the error that ended the file
    after it, if one did."""

    lines: list[int]
    packed: str | list[list[str]]
    tail: list[tuple[str, ...]]
    where: list[int] | None
    persons: list[tuple[str, ...]]
    errors: list[tuple[int, str | tuple[str, ...]]]
    expired: int
    end_error: tuple[int, str] | None


@dataclass
class _End:
    """The checking process's last message: the file was read to its end (or to the
    first byte that is not UTF-8), or reading it failed."""

    not_utf8: bool = False
    failure: str | None = None


class _Checking:
    """The checking process of one import (:func:`_check_csv`), as a context manager;
    iterate for its chunks in order.  Leaving the block ends the process however the
    import ends; a process that dies or fails is an error of the import."""

    def __init__(self, path: Path, today: dt.date, chunk: int) -> None:
        ctx = multiprocessing.get_context("forkserver")
        # The fork server (started once per process) holds this module already: each
        # import's checking process is a fork of it, not a new interpreter.
        ctx.set_forkserver_preload([__name__])
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_check_csv, name="bxnode-import-check",
                                 args=(send, str(path), today.isoformat(), chunk),
                                 daemon=True)
        try:
            self._proc.start()
        finally:
            send.close()  # the child's end: when the child is gone, recv() says so
        self.not_utf8 = False

    def __enter__(self) -> _Checking:
        return self

    def __iter__(self) -> Iterator[_Checked]:
        while True:
            try:
                msg = self._recv.recv()
            except EOFError:
                self._proc.join(5)
                raise EnvironmentFault(
                    "the import's checking process stopped (exit code "
                    f"{self._proc.exitcode}); nothing was written") from None
            if isinstance(msg, _End):
                if msg.failure is not None:
                    raise EnvironmentFault(f"reading the file failed: {msg.failure}")
                self.not_utf8 = msg.not_utf8
                return
            yield msg

    def __exit__(self, *exc: object) -> None:
        self._recv.close()
        self._proc.join(5 if exc[0] is None else 0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()


def _check_csv(send: Connection, path: str, today: str, chunk: int) -> None:
    """The checking process: each chunk of the CSV file checked (:func:`_check_chunk`)
    and sent, then an :class:`_End`.

    The cyclic garbage collector is off: every chunk allocates hundreds of thousands of
    lists and tuples, none in a cycle (reference counting frees them as the chunk is
    sent), and each collection would walk the whole chunk again.  Ctrl-C is the importing
    process's to handle (it ends this one)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()
    check = _Validator(dt.date.fromisoformat(today))
    person_lines: dict[str, int] = {}
    try:
        for part in read_csv_chunks(Path(path), chunk):
            send.send(_check_chunk(part, check, person_lines))
        send.send(_End())
    except UnicodeDecodeError:
        send.send(_End(not_utf8=True))
    except (OSError, MemoryError) as exc:  # (read_csv_chunks reports bad CSV itself)
        send.send(_End(failure=f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()


def _check_chunk(part: CsvChunk, check: _Validator,
                 person_lines: dict[str, int]) -> _Checked:
    counts = ImportResult()  # this chunk's already-expired records
    docs = check.documents(part, counts)
    where: list[int] | None = None
    persons: list[tuple[str, ...]] = []
    errors: list[tuple[int, str | tuple[str, ...]]] = []
    if docs is None:
        docs, where = [], []
        for j, row in enumerate(part.rows):
            line = part.lines[j]
            fields = csv_row_dict(part.header, row)
            if None in fields:
                errors.append((line, "row has more fields than the header"))
                continue
            try:
                kind, rec = check.row(fields, counts)  # type: ignore[arg-type]
            except BxError as exc:
                errors.append((line, str(exc)))
                continue
            if kind == "document":
                docs.append(rec)
                where.append(j)
                continue
            first = person_lines.setdefault(rec[0], line)
            if first != line:
                errors.append((line, f"person {rec[0]} is already on line {first}"))
                continue
            persons.append(rec)
    packed, tail = DocumentLoader.pack(docs)
    return _Checked(part.lines, packed, tail, where, persons, errors, counts.already_expired,
                    part.error)


def _record(checked: _Checked, groups: list[list[str]], repeated: list[int],
            out: ImportResult, repeats: dict[tuple[str, ...], list[int]]) -> None:
    """A written chunk's count and errors (a repeat's first line left to find); ``groups``:
    its packed statements, unpacked."""
    lines, where, errors = checked.lines, checked.where, checked.errors
    for i in repeated:
        errors.append((lines[i if where is None else where[i]],
                       DocumentLoader.row_at(groups, checked.tail, i)))
    out.document_count += DocumentLoader.count(groups, checked.tail) - len(repeated)
    errors.sort(key=lambda e: e[0])
    if checked.end_error is not None:
        errors.append(checked.end_error)
    for line, error in errors:
        if isinstance(error, str):
            out.add_error(line, error)
            continue
        if len(out.errors) < MAX_ERRORS_REPORTED:
            repeats.setdefault(error[:4], []).append(len(out.errors))
        out.add_error(line, f"record {error[3]} for the same document is already on an "
                            "earlier line")


def _first_lines(path: Path, check: _Validator, keys: set[tuple[str, ...]], *,
                 fmt: str = "csv") -> dict[tuple[str, ...], int]:
    """The first line holding a good row of each document in ``keys`` (an error path)."""
    found: dict[tuple[str, ...], int] = {}
    scratch = ImportResult()
    try:
        for line, fields in _good_rows(path, fmt):
            try:
                kind, rec = check.row(fields, scratch)
            except BxError:
                continue
            if kind == "document" and rec[:4] in keys:
                found.setdefault(rec[:4], line)
                if len(found) == len(keys):
                    break
    except UnicodeDecodeError:
        pass
    return found


def _good_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, fields) of each row of ``path`` that parses (CSV read in chunks, fast)."""
    if fmt != "csv":
        for line, fields, _error in read_rows(path, fmt):
            if fields is not None:
                yield line, fields
        return
    for part in read_csv_chunks(path, 20_000):
        for line, row in zip(part.lines, part.rows, strict=True):
            got = csv_row_dict(part.header, row)
            if None not in got:
                yield line, got  # type: ignore[misc]
