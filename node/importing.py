"""Reading operator-supplied record files (CSV or JSON Lines) with line numbers.

Shared by every all-or-nothing import (watchlist, crossing records): the readers
yield each data line with its 1-based line number, or the reason it is unreadable,
so the importers can name every bad line and write nothing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.core.errors import InvalidInput

__all__ = ["MAX_FIELD", "CsvChunk", "csv_row_dict", "detect_format", "first_non_utf8_line",
           "read_csv_chunks", "read_rows", "text_field"]

#: The longest value any import field may hold, in characters.
MAX_FIELD = 256


def text_field(row: dict[str, Any], key: str, required: bool = True) -> str:
    """A field as stripped text; missing, non-text or over-long values raise."""
    value = row.get(key)
    if value.__class__ is str and 0 < len(value) <= MAX_FIELD:  # the common case
        return str(value).strip()
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{key} is required", reason="missing_field")
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be text", reason="bad_field")
    if len(value) > MAX_FIELD:
        raise InvalidInput(f"{key} is longer than {MAX_FIELD}", reason="bad_field")
    return value.strip()


def read_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
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
                except (ValueError, RecursionError):  # RecursionError: nested too deep
                    yield n, None, "not valid JSON"
                    continue
                if not isinstance(obj, dict):
                    yield n, None, "each line must be a JSON object"
                    continue
                if "\\u" in line and _has_lone_surrogate(obj):  # a \ud800 escape: no database
                    yield n, None, "holds a \\ud800-\\udfff escape that is no character"
                    continue
                yield n, obj, ""


@dataclass
class CsvChunk:
    """Consecutive CSV data rows as lists of fields (blank lines left out), each with the
    line it ends on; ``error`` is the (line, reason) that ended the file early."""

    header: list[str]
    rows: list[list[str]]
    lines: list[int]
    error: tuple[int, str] | None = None


def read_csv_chunks(path: Path, size: int) -> Iterator[CsvChunk]:
    """The CSV file's data rows, ``size`` at a time, read as :func:`read_rows` reads them
    (the same reader, the same refusals) but without a dict per row: the importer checks
    a chunk's columns at once and turns a row into a dict (:func:`csv_row_dict`) only to
    name what is wrong with it."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield CsvChunk([], [], [], (reader.line_num, f"not valid CSV ({exc})"))
            return
        while True:
            rows: list[list[str]] = []
            lines: list[int] = []
            add, mark = rows.append, lines.append
            try:
                for row in reader:
                    if row:
                        add(row)
                        mark(reader.line_num)
                        if len(rows) == size:
                            break
            except csv.Error as exc:
                yield CsvChunk(header, rows, lines, (reader.line_num, f"not valid CSV ({exc})"))
                return
            if rows:
                yield CsvChunk(header, rows, lines)
            if len(rows) < size:
                return


def csv_row_dict(header: list[str], row: list[str]) -> dict[str | None, Any]:
    """A row as :class:`csv.DictReader` makes it: missing trailing fields are None, extra
    ones are listed under the key None."""
    d: dict[str | None, Any] = dict(zip(header, row, strict=False))
    if len(row) > len(header):
        d[None] = row[len(header):]
    else:
        for key in header[len(row):]:
            d[key] = None
    return d


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a string with a lone surrogate (not UTF-8 text)."""
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"


def first_non_utf8_line(path: Path) -> int:
    """The line holding the first byte that is not UTF-8 (the decoder reads ahead in chunks)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return raw.count(b"\n", 0, exc.start) + 1
    return 0
