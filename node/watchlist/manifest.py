"""Passenger manifests for batch lookups: CSV or JSON Lines, one traveller per row.

A row with ``number`` names a document (``number``, ``issuing_state``,
``doc_type``); a row with ``family_name`` names a person (``family_name``,
``given_names``, ``patronymic``, ``dob``, ``nationality``, ``sex``).  A row that
names both is checked as both: two items of the batch, and the answer says which
of them hit (:class:`ManifestRow`).  A row naming a document and a person without a
date of birth checks the document and says the person was not checked (as a PAXLST
traveller without DTM+329 does, :mod:`node.watchlist.paxlst`); a person-only row
without one is refused.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.core import limits
from node.core.errors import BxError, InvalidInput
from node.core.model import DocumentQuery, PartialDate, PersonQuery, Query, Sex

__all__ = ["ManifestRow", "read_manifest", "read_manifest_rows", "row_from_dict"]


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One traveller of a manifest: its document, its person, or both (``line`` 1-based,
    the header is line 1).  ``person_not_checked`` says why a named person is not asked."""

    line: int
    document: DocumentQuery | None
    person: PersonQuery | None
    person_not_checked: str = ""

    @property
    def items(self) -> tuple[tuple[str, DocumentQuery | PersonQuery], ...]:
        """(``"document"`` | ``"person"``, query) in batch order: the document first."""
        out: list[tuple[str, DocumentQuery | PersonQuery]] = []
        if self.document is not None:
            out.append(("document", self.document))
        if self.person is not None:
            out.append(("person", self.person))
        return tuple(out)


def row_from_dict(row: dict[str, Any], line: int = 0) -> ManifestRow:
    def g(key: str) -> str:
        v = row.get(key) or ""
        if not isinstance(v, str):
            raise InvalidInput(f"{key} must be text", reason="bad_field")
        return v.strip()

    document = None
    if g("number"):
        document = DocumentQuery(number=g("number").upper(),
                                 issuing_state=g("issuing_state").upper(),
                                 doc_type=(g("doc_type") or "P").upper())
    if not g("family_name"):
        if document is None:
            raise InvalidInput("row is neither a document (number) nor a person "
                               "(family_name)", reason="bad_kind")
        return ManifestRow(line, document, None)
    if document is not None and not g("dob"):
        return ManifestRow(line, document, None, "no date of birth (dob)")
    try:
        sex = Sex((g("sex") or "X").upper())
    except ValueError:
        raise InvalidInput("sex must be M, F or X", reason="bad_field") from None
    person = PersonQuery(family_name=g("family_name"), given_names=g("given_names"),
                         patronymic=g("patronymic"), date_of_birth=PartialDate.parse(g("dob")),
                         nationality=g("nationality").upper(), sex=sex)
    return ManifestRow(line, document, person)


def _csv_rows(path: Path, f: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(f, strict=True)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:  # DictReader.line_num lags after a failed read
        raise InvalidInput(f"{path.name} line {reader.reader.line_num}: not valid CSV ({exc})",
                           reason="bad_manifest") from None


def _json_rows(path: Path, f: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise InvalidInput(f"{path.name} line {n}: not valid JSON",
                               reason="bad_manifest") from None
        if not isinstance(row, dict):
            raise InvalidInput(f"{path.name} line {n}: each line must be a JSON object",
                               reason="bad_manifest")
        yield n, row


def read_manifest(path: Path) -> list[Query]:
    """All items of a manifest, row by row (a row naming both gives two items)."""
    return [q for row in read_manifest_rows(path) for _, q in row.items]


def read_manifest_rows(path: Path) -> list[ManifestRow]:
    """All rows of a manifest; the first bad row raises with its line number."""
    if not path.is_file():
        raise InvalidInput(f"{path} is not a readable file", reason="missing_file")
    items: list[ManifestRow] = []
    count = 0
    with path.open(encoding="utf-8", newline="") as f:
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            rows: Any = _json_rows(path, f)
        else:
            rows = _csv_rows(path, f)
        try:
            for n, row in rows:
                if count >= limits.MAX_BATCH_ITEMS_HARD:
                    raise InvalidInput(f"a manifest may hold at most "
                                       f"{limits.MAX_BATCH_ITEMS_HARD} items",
                                       reason="batch_too_large")
                if None in row:
                    raise InvalidInput(f"{path.name} line {n}: row has more fields than the "
                                       f"header", reason="bad_manifest")
                try:
                    item = row_from_dict(row, n)
                except BxError as exc:
                    raise InvalidInput(f"{path.name} line {n}: {exc}", reason=exc.reason) from exc
                items.append(item)
                count += len(item.items)
                if count > limits.MAX_BATCH_ITEMS_HARD:
                    raise InvalidInput(f"a manifest may hold at most "
                                       f"{limits.MAX_BATCH_ITEMS_HARD} items",
                                       reason="batch_too_large")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{path.name} is not UTF-8 text", reason="bad_manifest") from exc
    if not items:
        raise InvalidInput(f"{path.name} holds no items", reason="empty_request")
    return items
