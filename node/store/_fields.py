"""Helpers the SQL modules share: the field codec applied to text columns, placeholders,
a column matched against a list of values.

A protected column (``codec.protects``, PostgreSQL) holds a blind index (``index``) or
sealed bytes (``seal``); an unprotected one (SQLCipher, whose whole file is encrypted) holds
the value itself, exactly as before the codec existed, so existing files read unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.store.db import Dialect, FieldCodec
from node.store.fieldcrypt import SealedFieldError

__all__ = ["altered", "any_of", "check_placed", "index_text", "marks", "misplaced", "open_blob",
           "open_text", "seal_blob", "seal_text"]


def index_text(codec: FieldCodec, kind: str, value: str) -> str:
    """The column value to look ``value`` up by, as text (a byte index is stored as hex)."""
    out = codec.index(kind, value)
    return out if isinstance(out, str) else bytes(out).hex()


def misplaced(kind: str) -> SealedFieldError:
    """The refusal of a sealed record found in a row that is not its own."""
    return SealedFieldError(
        f"a sealed {kind} record does not belong to its row: an identifier inside it is not "
        "the one the row's blind index names (moved or copied in the database)",
        reason="sealed_field_misplaced")


def altered(kind: str) -> SealedFieldError:
    """The refusal of a row whose plain columns are not the ones sealed with its record."""
    return SealedFieldError(
        f"a {kind} row's plain columns differ from the copies sealed in its record (changed "
        "in the database)", reason="sealed_field_altered")


def check_placed(codec: FieldCodec, kind: str, index_kind: str, value: str,
                 stored_index: object) -> None:
    """Refuse a sealed record (``kind``) whose ``value`` is not what its row's blind index
    column (``index_kind``) holds.  A seal is bound to its column, not to its row: someone
    with write access to the database, who cannot read a record, can still copy it into
    another row, where it opens; its identifier then differs from the row's index, and
    the record is refused instead of being answered as that row's."""
    if index_text(codec, index_kind, value) != str(stored_index):
        raise misplaced(kind)


def seal_text(codec: FieldCodec, kind: str, value: str) -> str | bytes:
    """Text contents as stored: the text itself, or its sealed UTF-8 bytes."""
    return codec.seal(kind, value.encode()) if codec.protects else value


def open_text(codec: FieldCodec, kind: str, stored: object) -> str:
    """The inverse of :func:`seal_text` (a text value was stored unsealed)."""
    if isinstance(stored, str):
        return stored
    if isinstance(stored, bytes | bytearray | memoryview):
        return codec.open(kind, bytes(stored)).decode()
    raise TypeError(f"unexpected stored value for {kind}: {type(stored).__name__}")


def seal_blob(codec: FieldCodec, kind: str, value: bytes | None) -> bytes | None:
    return None if value is None else codec.seal(kind, value)


def open_blob(codec: FieldCodec, kind: str, stored: object) -> bytes | None:
    if stored is None:
        return None
    if not isinstance(stored, bytes | bytearray | memoryview):
        raise TypeError(f"unexpected stored value for {kind}: {type(stored).__name__}")
    return codec.open(kind, bytes(stored))


def marks(values: Sequence[object], per_row: int = 1) -> str:
    """``?`` placeholders for ``values`` (``(?,?),(?,?)`` for ``per_row`` > 1): never data."""
    if per_row == 1:
        return ",".join("?" * len(values))
    one = "(" + ",".join("?" * per_row) + ")"
    return ",".join(one for _ in values)


def any_of(dialect: Dialect, column: str, values: Sequence[object], sql_type: str = "text"
           ) -> tuple[str, tuple[object, ...]]:
    """``column`` equal to one of ``values`` (of PostgreSQL's ``sql_type``: ``text``, or
    ``bytea`` for bytes): the condition's SQL and its parameters.

    PostgreSQL: ``column = ANY(?::text[])`` with the values as one array parameter, so the
    statement's text is the same whatever their number: psycopg converts it once (a
    statement of more than 50 parameters it converts anew at every call) and prepares it on
    the server after a few uses, as it does any statement it sees again.  SQLite has no
    arrays: ``column IN (?,?,...)``, one placeholder per value.  ``column`` is the caller's
    text, never data.
    """
    if dialect == "postgresql":
        return f"{column} = ANY(?::{sql_type}[])", (list(values),)
    return f"{column} IN ({marks(values)})", tuple(values)
