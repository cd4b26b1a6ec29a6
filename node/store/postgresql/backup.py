"""Backups of a node on PostgreSQL: one REPEATABLE READ export, loaded in one transaction.

``pg_dump`` would do, but only a ``pg_dump`` at least as new as the server, which a node's
machine need not have; a consistent export through psycopg needs nothing else.  The
export reads every table of the node's schema in one ``REPEATABLE READ READ ONLY``
transaction (PostgreSQL: one snapshot for the whole transaction, so every table is as of
one moment while replicas go on writing), each with ``COPY ... TO STDOUT (FORMAT
binary)``: the rows as stored, the protected columns still under the field key.

The stream (the plaintext the backup encrypts)::

    "bxnode-pg-export/1\\n"
    per table: "T" u16 length, name; then "D" u32 length, COPY data ...; then "E"
    "Z"

:func:`import_database` loads it into the node's database in one transaction, after the
backup checked (signature, recipient, digest: the stream arrives only then): the tables in
the export must be exactly the database's (same schema; ``bxnode store migrate`` first),
each is emptied and loaded with ``COPY FROM STDIN (FORMAT binary)``, identity sequences
are moved past the loaded keys, the latest checkpoint must be the one the manifest
names, and the :class:`~node.audit.hold.RestoreHold` is written -- all or nothing.  Before
it, the database as it was is itself backed up beside the node (``pg-replaced-<time>.bxb``,
to the same backup key), since it may hold the tail a restored log lacks.

:func:`open_backup_schema` (for ``bxnode audit recover-tail``) loads a checked backup into
a schema of its own in the node's database (``bxnode_tail_<random>``, each table ``LIKE``
the node's, so the binary COPY fits), hands it out as a read-only
:class:`~node.store.db.Database` with that schema as its ``search_path``, and drops the
schema afterwards, whatever happened.  The node's role needs CREATE on its database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, cast

import nacl.public
import psycopg
from psycopg.conninfo import make_conninfo

from node.audit.checkpoint import Checkpoint
from node.audit.hold import HOLD_KEY, RestoreHold
from node.audit.note import parse_note
from node.backup.archive import BackupError, Manifest, open_backup
from node.core.errors import EnvironmentFault

if TYPE_CHECKING:
    from node.backup.ops import RestoreResult
    from node.config import NodeConfig

__all__ = ["export_database", "import_database", "open_backup_schema"]

STREAM_MAGIC: Final = b"bxnode-pg-export/1\n"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
#: The largest COPY data frame the loader accepts (psycopg hands out far smaller ones).
MAX_FRAME: Final = 16 << 20

Conn = psycopg.Connection[tuple[Any, ...]]


def _connect(cfg: NodeConfig) -> Conn:
    from node.store.open import load_pg_password

    st = cfg.storage
    assert st.dsn is not None
    password = load_pg_password(st.password_file)
    conninfo = make_conninfo(st.dsn, **({"password": password} if password else {}),
                             application_name="bxnode-backup")
    try:
        return psycopg.connect(conninfo)
    except psycopg.Error as exc:
        raise EnvironmentFault(f"cannot connect to PostgreSQL: {exc}",
                               reason="database_unavailable") from None


def _tables(conn: Conn) -> list[str]:
    return sorted(str(r[0]) for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))


def _head(conn: Conn) -> tuple[str, int, bytes]:
    row = conn.execute("SELECT size, root, note FROM audit_checkpoints ORDER BY size DESC "
                       "LIMIT 1").fetchone()
    if row is None:
        return "", 0, b""
    origin = Checkpoint.parse(parse_note(bytes(row[2])).text).origin
    return origin, int(row[0]), bytes(row[1])


class _Reader:
    """A read() over a generator of byte strings."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        take = len(self._buf) if n < 0 else min(n, len(self._buf))
        out = bytes(self._buf[:take])
        del self._buf[:take]
        return out


@contextlib.contextmanager
def export_database(cfg: NodeConfig) -> Iterator[tuple[Any, str, int, bytes]]:
    """``(stream, origin, size, root)``: the export (see the module) and the latest
    signed checkpoint in it, from one snapshot."""
    conn = _connect(cfg)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            head = _head(conn)  # the first statement fixes the snapshot for all that follow
            if not head[0]:
                from node.audit.origins import log_origin

                head = (log_origin(cfg.node_id), 0, b"")
            tables = _tables(conn)

            def frames() -> Iterator[bytes]:
                yield STREAM_MAGIC
                for name in tables:
                    raw = name.encode("utf-8")
                    yield b"T" + _U16.pack(len(raw)) + raw
                    with conn.cursor().copy(f'COPY "{name}" TO STDOUT (FORMAT binary)') as cp:
                        for data in cp:
                            yield b"D" + _U32.pack(len(data)) + bytes(data)
                    yield b"E"
                yield b"Z"

            yield _Reader(frames()), *head
    except psycopg.Error as exc:
        raise EnvironmentFault(f"the PostgreSQL export failed: {exc}",
                               reason="database_unavailable") from None
    finally:
        conn.close()


class _Loader:
    """write() target of the decrypted stream: parses the frames and COPYs them in."""

    def __init__(self, conn: Conn, tables: Sequence[str]) -> None:
        self._conn = conn
        self._expected = list(tables)
        self._seen: list[str] = []
        self._buf = bytearray()
        self._copy: Any = None
        self._cm: Any = None
        self._started = False
        self.done = False

    def _fail(self, why: str) -> BackupError:
        return BackupError(f"the PostgreSQL export in the backup is unusable: {why}",
                           reason="backup_malformed")

    def write(self, data: bytes) -> int:
        self._buf += data
        self._drain()
        return len(data)

    def _drain(self) -> None:
        buf = self._buf
        while buf:
            if not self._started:
                if len(buf) < len(STREAM_MAGIC):
                    return
                if bytes(buf[:len(STREAM_MAGIC)]) != STREAM_MAGIC:
                    raise self._fail("not an export")
                del buf[:len(STREAM_MAGIC)]
                self._started = True
                continue
            kind = buf[0:1]
            if self.done:
                raise self._fail("bytes after its end")
            if kind == b"T":
                if len(buf) < 3:
                    return
                (n,) = _U16.unpack(buf[1:3])
                if len(buf) < 3 + n:
                    return
                name = bytes(buf[3:3 + n]).decode("utf-8", "replace")
                del buf[:3 + n]
                if self._copy is not None or name not in self._expected or name in self._seen:
                    raise self._fail(f"table {name!r} unexpected")
                self._seen.append(name)
                self._cm = self._conn.cursor().copy(f'COPY "{name}" FROM STDIN (FORMAT binary)')
                self._copy = self._cm.__enter__()
            elif kind == b"D":
                if len(buf) < 5:
                    return
                (n,) = _U32.unpack(buf[1:5])
                if n > MAX_FRAME or self._copy is None:
                    raise self._fail("a data frame out of place or out of bounds")
                if len(buf) < 5 + n:
                    return
                self._copy.write(bytes(buf[5:5 + n]))
                del buf[:5 + n]
            elif kind == b"E":
                if self._copy is None:
                    raise self._fail("a table end out of place")
                self._cm.__exit__(None, None, None)
                self._copy = self._cm = None
                del buf[:1]
            elif kind == b"Z":
                if self._copy is not None or sorted(self._seen) != sorted(self._expected):
                    raise self._fail("tables missing")
                self.done = True
                del buf[:1]
            else:
                raise self._fail("an unknown frame")


def import_database(cfg: NodeConfig, file: Path, *, key: nacl.public.PrivateKey,
                    verify_keys: Sequence[bytes], now_ms: int,
                    hold_for: Callable[[Manifest, int], RestoreHold]) -> RestoreResult:
    """See the module."""
    from node.backup.archive import check_backup
    from node.backup.ops import RestoreResult, take_backup
    from node.keys import load_signer

    with open(file, "rb") as f:  # every check but decrypting, before touching anything
        manifest = check_backup(f, verify_keys=verify_keys, node_id=cfg.node_id, key=key)
    if manifest.backend != "postgresql":
        raise BackupError(f"the backup is of a {manifest.backend} database; this node stores "
                          "in PostgreSQL", reason="backup_other_backend")
    stamp = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = cfg.db_path.parent / f"pg-replaced-{stamp}.bxb"  # in the node directory
    n = 1
    while aside.exists():  # never over an earlier one (it may be the very file restored)
        n += 1
        aside = cfg.db_path.parent / f"pg-replaced-{stamp}-{n}.bxb"
    take_backup(cfg, out=aside, recipient=key.public_key,
                signing_key=load_signer(cfg.signing_key), now_ms=now_ms)
    conn = _connect(cfg)
    try:
        with conn.transaction():
            tables = _tables(conn)
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables))
            loader = _Loader(conn, tables)
            with open(file, "rb") as f:
                manifest = open_backup(f, cast(BinaryIO, loader), verify_keys=verify_keys,
                                       node_id=cfg.node_id, key=key)
            if not loader.done:
                raise BackupError("the PostgreSQL export in the backup ends early",
                                  reason="backup_malformed")
            for table, column in conn.execute(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall():
                conn.execute(f'SELECT setval(pg_get_serial_sequence(%s, %s), '  # noqa: S608
                             f'coalesce((SELECT max("{column}") FROM "{table}"), 0) + 1, false)',
                             (f'"{table}"', str(column)))
            origin, size, root = _head(conn)
            if (origin or manifest.audit_origin, size, root.hex()) != (
                    manifest.audit_origin, manifest.audit_size, manifest.audit_root):
                raise BackupError("the restored database does not hold the audit log its "
                                  "signed manifest names", reason="backup_tampered")
            hold = hold_for(manifest, now_ms)
            conn.execute("INSERT INTO meta (k, v) VALUES (%s, %s) ON CONFLICT (k) DO UPDATE "
                         "SET v = excluded.v", (HOLD_KEY, hold.to_json()))
    except psycopg.Error as exc:
        raise EnvironmentFault(f"the PostgreSQL restore failed, nothing was changed: {exc}",
                               reason="database_unavailable") from None
    finally:
        conn.close()
    return RestoreResult(manifest, aside, hold)


@contextlib.contextmanager
def open_backup_schema(cfg: NodeConfig, file: Path, *, key: nacl.public.PrivateKey,
                       verify_keys: Sequence[bytes]) -> Iterator[tuple[Manifest, Any]]:
    """A PostgreSQL backup, checked and loaded into a schema of its own (see the module):
    ``(manifest, Database over it)``, the schema dropped on exit."""
    from node.backup.archive import check_backup
    from node.store.fieldcrypt import KeyedCodec, load_field_key
    from node.store.open import load_pg_password
    from node.store.postgresql import PgDatabase

    with open(file, "rb") as f:  # every check but decrypting, before creating anything
        manifest = check_backup(f, verify_keys=verify_keys, node_id=cfg.node_id, key=key)
    if manifest.backend != "postgresql":
        raise BackupError(f"the backup is of a {manifest.backend} database; this node stores "
                          "in PostgreSQL", reason="backup_other_backend")
    schema = f"bxnode_tail_{secrets.token_hex(6)}"
    conn = _connect(cfg)
    try:
        try:
            with conn.transaction():
                tables = _tables(conn)
                home = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
                conn.execute(f'CREATE SCHEMA "{schema}"')
                for t in tables:
                    conn.execute(f'CREATE TABLE "{schema}"."{t}" (LIKE "{home}"."{t}")')
                conn.execute(f'SET LOCAL search_path TO "{schema}"')
                loader = _Loader(conn, tables)
                with open(file, "rb") as f:
                    open_backup(f, cast(BinaryIO, loader), verify_keys=verify_keys,
                                node_id=cfg.node_id, key=key)
                if not loader.done:
                    raise BackupError("the PostgreSQL export in the backup ends early",
                                      reason="backup_malformed")
        except psycopg.Error as exc:
            raise EnvironmentFault(f"cannot load the backup beside the node's tables: {exc}",
                                   reason="database_unavailable") from None
        st = cfg.storage
        assert st.dsn is not None
        source = PgDatabase.open(
            dsn=make_conninfo(st.dsn, options=f"-c search_path={schema}"),
            password=load_pg_password(st.password_file),
            codec=KeyedCodec.from_key(load_field_key(st.field_key_file)), min_size=1,
            max_size=1, timeout_s=float(st.connect_timeout_s), check_schema=False,
            name="bxnode-tail")
        try:
            yield manifest, source
        finally:
            source.close()
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.commit()
        conn.close()
