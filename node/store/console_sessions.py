"""The console's sessions, pending OpenID Connect sign-ins and officers' display preferences,
in the node's database, so that every replica of a node (PostgreSQL, behind a load
balancer without sticky sessions) and every worker knows them: an officer moved to another
replica stays signed in.

A row is found by the SHA-256 of its cookie (never the cookie: a copy of the database
hands out no live session).  The record -- the CSRF token, the officer, the OpenID
Connect state, nonce and PKCE verifier -- is one JSON object, sealed on PostgreSQL under
the field key (node/store/fieldcrypt.py) and holding its own row key: someone with write
access to the database but not the field key can neither read a record nor forge one,
and one copied into another row is refused (``sealed_field_misplaced``), so nobody signs
in by writing a row.  On SQLCipher (the whole file encrypted) the record is the JSON
itself.  Callers hold the transaction; the logic (idle timeouts, pruning) is
:mod:`node.web.sessions`'.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from node.store._fields import misplaced, open_blob, seal_blob
from node.store.db import Database
from node.store.schema import register

__all__ = ["CONSOLE_SCHEMA", "CONSOLE_SCHEMA_NAME", "ConsoleTables", "StoredSession"]

CONSOLE_SCHEMA_NAME: Final = "console"
CONSOLE_SCHEMA: Final = register(CONSOLE_SCHEMA_NAME, 1, """
CREATE TABLE IF NOT EXISTS console_sessions (
    key TEXT PRIMARY KEY, record BLOB NOT NULL, signed_in INTEGER NOT NULL,
    last_ms INTEGER NOT NULL, ended_ms INTEGER
);
CREATE INDEX IF NOT EXISTS console_sessions_last ON console_sessions (last_ms);
CREATE TABLE IF NOT EXISTS console_oidc (
    key TEXT PRIMARY KEY, record BLOB NOT NULL, created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS console_prefs (
    identity TEXT PRIMARY KEY, language TEXT NOT NULL, timezone TEXT NOT NULL
)
""").ddl
#: Watchlist syncs previewed and waiting for their confirmation (node/web/admin.py): the
#: upload itself (sealed: it holds the source's records) and the difference shown.
CONSOLE_SYNCS: Final = register(CONSOLE_SCHEMA_NAME, 2, """
CREATE TABLE IF NOT EXISTS console_syncs (
    key TEXT PRIMARY KEY, record BLOB NOT NULL, data BLOB NOT NULL, created_ms INTEGER NOT NULL
)
""").ddl

_SESSION: Final = "console_sessions.record"
_OIDC: Final = "console_oidc.record"
_SYNC: Final = "console_syncs.record"
_SYNC_DATA: Final = "console_syncs.data"


@dataclass(frozen=True, slots=True)
class StoredSession:
    record: dict[str, Any]
    last_ms: int
    ended_ms: int | None


class ConsoleTables:
    """The three tables, on one database connection (callers hold the transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema(CONSOLE_SCHEMA_NAME, CONSOLE_SCHEMA)
        db.ensure_schema(CONSOLE_SCHEMA_NAME, CONSOLE_SYNCS)

    # --- sessions -------------------------------------------------------------------------

    def session(self, key: str) -> StoredSession | None:
        row = self.db.query_one("SELECT record, last_ms, ended_ms FROM console_sessions "
                                "WHERE key = ?", (key,))
        if row is None:
            return None
        return StoredSession(record=self._open(_SESSION, key, row[0]), last_ms=int(row[1]),
                             ended_ms=None if row[2] is None else int(row[2]))

    def put_session(self, key: str, record: dict[str, Any], *, signed_in: bool,
                    last_ms: int) -> None:
        self.db.execute(
            "INSERT INTO console_sessions (key, record, signed_in, last_ms, ended_ms) "
            "VALUES (?,?,?,?,NULL) ON CONFLICT (key) DO UPDATE SET record=excluded.record, "
            "signed_in=excluded.signed_in, last_ms=excluded.last_ms, ended_ms=NULL",
            (key, self._seal(_SESSION, key, record), int(signed_in), last_ms))

    def update_session(self, key: str, record: dict[str, Any], *, signed_in: bool) -> None:
        """A live session's record replaced; a dropped or ended one stays so."""
        self.db.execute("UPDATE console_sessions SET record = ?, signed_in = ? WHERE key = ? "
                        "AND ended_ms IS NULL",
                        (self._seal(_SESSION, key, record), int(signed_in), key))

    def touch(self, key: str, last_ms: int) -> None:
        self.db.execute("UPDATE console_sessions SET last_ms = ? WHERE key = ? "
                        "AND ended_ms IS NULL", (last_ms, key))

    def end(self, key: str, now_ms: int) -> None:
        """The session timed out: kept, record and all gone, only to say so once."""
        self.db.execute("UPDATE console_sessions SET ended_ms = ?, record = ?, signed_in = 0 "
                        "WHERE key = ?", (now_ms, self._seal(_SESSION, key, {}), key))

    def drop(self, key: str) -> None:
        self.db.execute("DELETE FROM console_sessions WHERE key = ?", (key,))

    def prune(self, *, now_ms: int, idle_ms: int, keep: int) -> int:
        """Sessions idle longer than ``idle_ms`` ended, ended ones older than ``idle_ms``
        gone; then, past ``keep`` live ones, the oldest anonymous ones (then the oldest
        signed-in ones) dropped.  How many rows went."""
        cut = now_ms - idle_ms
        self.db.execute("UPDATE console_sessions SET ended_ms = ?, signed_in = 0 "
                        "WHERE ended_ms IS NULL AND last_ms < ?", (now_ms, cut))
        gone = self.db.execute("DELETE FROM console_sessions WHERE ended_ms IS NOT NULL "
                               "AND ended_ms < ?", (cut,))
        (live,) = self.db.query_one("SELECT COUNT(*) FROM console_sessions "
                                    "WHERE ended_ms IS NULL") or (0,)
        if int(live) > keep:
            gone += self.db.execute(
                "DELETE FROM console_sessions WHERE key IN (SELECT key FROM console_sessions "
                "WHERE ended_ms IS NULL ORDER BY signed_in, last_ms LIMIT ?)",
                (int(live) - keep,))
        return gone

    def live_sessions(self, *, since_ms: int) -> list[dict[str, Any]]:
        """The records of the sessions used since ``since_ms`` (for counts; not a hot path)."""
        return [self._open(_SESSION, str(k), rec) for k, rec in self.db.query(
            "SELECT key, record FROM console_sessions WHERE ended_ms IS NULL "
            "AND last_ms >= ?", (since_ms,))]

    # --- OpenID Connect sign-ins under way ----------------------------------------------------

    def put_oidc(self, key: str, record: dict[str, Any], *, created_ms: int) -> None:
        self.db.execute("INSERT INTO console_oidc (key, record, created_ms) VALUES (?,?,?)",
                        (key, self._seal(_OIDC, key, record), created_ms))

    def take_oidc(self, key: str) -> tuple[dict[str, Any], int] | None:
        """The pending sign-in behind ``key``, removed (used once)."""
        row = self.db.query_one("SELECT record, created_ms FROM console_oidc WHERE key = ?",
                                (key,))
        if row is None:
            return None
        self.db.execute("DELETE FROM console_oidc WHERE key = ?", (key,))
        return self._open(_OIDC, key, row[0]), int(row[1])

    def prune_oidc(self, *, before_ms: int, keep: int) -> None:
        self.db.execute("DELETE FROM console_oidc WHERE created_ms < ?", (before_ms,))
        (n,) = self.db.query_one("SELECT COUNT(*) FROM console_oidc") or (0,)
        if int(n) >= keep:  # bounded: a flood of begun sign-ins drops the oldest
            self.db.execute("DELETE FROM console_oidc WHERE key IN (SELECT key FROM "
                            "console_oidc ORDER BY created_ms LIMIT ?)", (int(n) - keep + 1,))

    # --- watchlist syncs previewed, waiting for their confirmation ----------------------------

    def put_sync(self, key: str, record: dict[str, Any], data: bytes, *,
                 created_ms: int) -> None:
        sealed = seal_blob(self.db.codec, _SYNC_DATA, data)
        self.db.execute("INSERT INTO console_syncs (key, record, data, created_ms) "
                        "VALUES (?,?,?,?)",
                        (key, self._seal(_SYNC, key, {**record, "data_sha256": _sha256(data)}),
                         sealed, created_ms))

    def sync(self, key: str) -> tuple[dict[str, Any], bytes, int] | None:
        row = self.db.query_one("SELECT record, data, created_ms FROM console_syncs "
                                "WHERE key = ?", (key,))
        if row is None:
            return None
        record = self._open(_SYNC, key, row[0])
        data = open_blob(self.db.codec, _SYNC_DATA, row[1]) or b""
        if record.pop("data_sha256", None) != _sha256(data):  # the upload of another row
            raise misplaced(_SYNC_DATA)
        return record, data, int(row[2])

    def drop_sync(self, key: str) -> int:
        return self.db.execute("DELETE FROM console_syncs WHERE key = ?", (key,))

    def prune_syncs(self, *, before_ms: int, keep: int) -> None:
        self.db.execute("DELETE FROM console_syncs WHERE created_ms < ?", (before_ms,))
        (n,) = self.db.query_one("SELECT COUNT(*) FROM console_syncs") or (0,)
        if int(n) >= keep:  # bounded: the oldest previews go first
            self.db.execute("DELETE FROM console_syncs WHERE key IN (SELECT key FROM "
                            "console_syncs ORDER BY created_ms LIMIT ?)", (int(n) - keep + 1,))

    # --- an officer's language and time zone -------------------------------------------------

    def prefs(self, officer: str) -> tuple[str, str] | None:
        row = self.db.query_one("SELECT language, timezone FROM console_prefs "
                                "WHERE identity = ?", (officer,))
        return None if row is None else (str(row[0]), str(row[1]))

    def put_prefs(self, officer: str, language: str, timezone: str) -> None:
        self.db.execute(
            "INSERT INTO console_prefs (identity, language, timezone) VALUES (?,?,?) "
            "ON CONFLICT (identity) DO UPDATE SET language=excluded.language, "
            "timezone=excluded.timezone", (officer, language, timezone))

    # --- the record ----------------------------------------------------------------------------

    def _seal(self, kind: str, key: str, record: dict[str, Any]) -> bytes:
        text = json.dumps({**record, "_key": key}, separators=(",", ":"), sort_keys=True)
        sealed = seal_blob(self.db.codec, kind, text.encode())
        assert sealed is not None
        return sealed

    def _open(self, kind: str, key: str, stored: object) -> dict[str, Any]:
        raw = open_blob(self.db.codec, kind, stored)
        record = json.loads(raw or b"{}")
        if not isinstance(record, dict) or record.pop("_key", None) != key:
            raise misplaced(kind)
        return record


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
