"""Passenger manifests for batch lookups: CSV or JSON Lines, one item per row.

A row with ``number`` is a document (``number``, ``issuing_state``,
``doc_type``); a row with ``family_name`` is a person (``family_name``,
``given_names``, ``patronymic``, ``dob``, ``nationality``, ``sex``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from node.core import limits
from node.core.errors import BxError, InvalidInput
from node.core.model import DocumentQuery, PartialDate, PersonQuery, Query, Sex

__all__ = ["item_from_row", "read_manifest"]


def item_from_row(row: dict[str, Any]) -> Query:
    def g(key: str) -> str:
        v = row.get(key) or ""
        if not isinstance(v, str):
            raise InvalidInput(f"{key} must be text", reason="bad_field")
        return v.strip()

    if g("number"):
        return DocumentQuery(number=g("number").upper(), issuing_state=g("issuing_state").upper(),
                             doc_type=(g("doc_type") or "P").upper())
    if g("family_name"):
        try:
            sex = Sex((g("sex") or "X").upper())
        except ValueError:
            raise InvalidInput("sex must be M, F or X", reason="bad_field") from None
        return PersonQuery(family_name=g("family_name"), given_names=g("given_names"),
                           patronymic=g("patronymic"), date_of_birth=PartialDate.parse(g("dob")),
                           nationality=g("nationality").upper(), sex=sex)
    raise InvalidInput("row is neither a document (number) nor a person (family_name)",
                       reason="bad_kind")


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
    """All items of a manifest; the first bad row raises with its line number."""
    if not path.is_file():
        raise InvalidInput(f"{path} is not a readable file", reason="missing_file")
    items: list[Query] = []
    with path.open(encoding="utf-8", newline="") as f:
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            rows: Any = _json_rows(path, f)
        else:
            rows = _csv_rows(path, f)
        try:
            for n, row in rows:
                if len(items) >= limits.MAX_BATCH_ITEMS_HARD:
                    raise InvalidInput(f"a manifest may hold at most "
                                       f"{limits.MAX_BATCH_ITEMS_HARD} items",
                                       reason="batch_too_large")
                if None in row:
                    raise InvalidInput(f"{path.name} line {n}: row has more fields than the "
                                       f"header", reason="bad_manifest")
                try:
                    items.append(item_from_row(row))
                except BxError as exc:
                    raise InvalidInput(f"{path.name} line {n}: {exc}", reason=exc.reason) from exc
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{path.name} is not UTF-8 text", reason="bad_manifest") from exc
    if not items:
        raise InvalidInput(f"{path.name} holds no items", reason="empty_request")
    return items
