"""PostgreSQL behind :class:`node.store.db.Database`: psycopg 3 and psycopg_pool.

:class:`PgPool` holds the connections; :class:`PgDatabase` is one thread's handle on it,
with the semantics of the SQLCipher ``Store``.  A ``PgDatabase`` holds a connection only
while a transaction is open, so another thread's handle (``pool.database()``) costs
nothing until it is used.

Durability: every connection runs with ``synchronous_commit = on``, so ``COMMIT`` returns
only once the commit record is flushed (and, where the operator runs synchronous standbys,
replicated).  Outside a transaction each statement runs in a transaction of its own, like
SQLite's autocommit.

Connection loss: a connection that broke is returned to the pool, which discards it; a
transaction that finds a stale connection at ``BEGIN`` (the server restarted while it sat
idle) takes a fresh one, since nothing was sent yet.  Loss after ``BEGIN`` raises
:class:`EnvironmentFault` with reason ``database_unavailable``; at ``COMMIT`` the outcome
is then unknown, as with any database.  Once the server was found down, the next request
first tries a direct connection, so during an outage requests fail at once (with libpq's
reason) instead of each waiting ``timeout_s`` for the pool.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.adapt import Buffer, Loader
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.array import ListBinaryDumper
from psycopg_pool import ConnectionPool, PoolTimeout

from node.core.errors import ConfigError, EnvironmentFault
from node.store.db import Dialect, FieldCodec, LockTimes
from node.store.deferred import DeferredAccess, DeferredRows
from node.store.postgresql._sql import lock_key, translate_sql

__all__ = ["PgDatabase", "PgPool", "dsn_has_password", "parse_dsn"]

# The pool's own reconnection warnings: our errors (EnvironmentFault) say the same, once,
# and the node logs JSON lines; plain text on stderr only where the process configures it.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

Conn = psycopg.Connection[tuple[Any, ...]]
MIN_SERVER_VERSION = 130000
_DISCONNECT_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def parse_dsn(dsn: str) -> dict[str, str]:
    """The DSN's parameters (libpq ``key=value`` or a ``postgresql://`` URI)."""
    try:
        return {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except psycopg.ProgrammingError:  # libpq's message may quote the DSN: not repeated
        raise ConfigError("the PostgreSQL DSN is neither libpq key=value pairs nor a "
                          "postgresql:// URI", reason="bad_dsn") from None


def dsn_has_password(dsn: str) -> bool:
    return bool(parse_dsn(dsn).get("password"))


class _IntegralNumericLoader(Loader):
    """``numeric`` as SQLite gives it: ``sum()`` of integers is an ``int``, ``avg()`` a
    ``float``.  Our portable schemas have no NUMERIC columns, so only aggregates reach it."""

    def load(self, data: Buffer) -> int | float:
        d = Decimal(bytes(data).decode())
        return int(d) if d.is_finite() and d == d.to_integral_value() else float(d)


#: SQLSTATE of a lock wait longer than ``lock_timeout`` (``lock_not_available``).
_LOCK_NOT_AVAILABLE = "55P03"


def _configure(conn: Conn, *, lock_timeout_s: float = 5.0) -> None:
    conn.autocommit = True  # we issue BEGIN / COMMIT / SAVEPOINT ourselves
    conn.execute("SET synchronous_commit = on")
    conn.execute("SET TIME ZONE 'UTC'")
    # A lock another replica or process holds (the audit lock, a migration's table lock) is
    # waited for at most [storage] busy_timeout_s, then the request fails database_locked,
    # as on SQLCipher, well inside a peer's deadline.
    conn.execute(f"SET lock_timeout = {max(1, round(lock_timeout_s * 1000))}")
    # A replica whose machine died (no FIN, no RST) must not hold its locks (the audit
    # append lock above all) for the kernel's two hours: the server probes its TCP peer
    # after 10 s of silence and drops it after 3 unanswered probes 5 s apart.
    conn.execute("SET tcp_keepalives_idle = 10")
    conn.execute("SET tcp_keepalives_interval = 5")
    conn.execute("SET tcp_keepalives_count = 3")
    conn.adapters.register_loader("numeric", _IntegralNumericLoader)
    # A list parameter (node/store/_fields.py any_of: a batch's blind indexes as one array)
    # goes in binary: psycopg's text form searches every element for characters to quote
    # and escape, about as long as the rest of a 100-number read together.
    conn.adapters.register_dumper(list, ListBinaryDumper)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line.removeprefix("connection failed: ")
    return type(exc).__name__


def _is_disconnect(exc: BaseException, conn: Conn | None) -> bool:
    if isinstance(exc, PoolTimeout) or (conn is not None and conn.broken):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _DISCONNECT_STATES


def _locked(exc: psycopg.Error) -> EnvironmentFault | None:
    """A lock waited for longer than ``lock_timeout``: ``database_locked``."""
    if exc.sqlstate != _LOCK_NOT_AVAILABLE:
        return None
    return EnvironmentFault("database: another replica or process has held a lock this "
                            "request needs for longer than [storage] busy_timeout_s",
                            reason="database_locked")


def _unavailable(what: str, exc: BaseException) -> EnvironmentFault:
    return EnvironmentFault(f"database unreachable ({what}): {_first_line(exc)}",
                            reason="database_unavailable")


def _connect_fault(exc: psycopg.Error) -> Exception:
    """A failed connection attempt: our configuration's fault, or the environment's."""
    msg = _first_line(exc)
    low = msg.lower()
    if any(s in low for s in ("password authentication failed", "no password supplied",
                              "authentication failed", "role \"")):
        return ConfigError(f"PostgreSQL refused our credentials: {msg}",
                           reason="database_auth_failed")
    if "database \"" in low and "does not exist" in low:
        return ConfigError(f"PostgreSQL has no such database: {msg}", reason="no_database")
    return EnvironmentFault(f"database unreachable: {msg}", reason="database_unavailable")


class PgPool:
    """The connections of one PostgreSQL database.  Thread-safe; use :meth:`open`."""

    dialect: Dialect = "postgresql"

    def __init__(self, *, conninfo: str, pool: ConnectionPool[Conn], codec: FieldCodec,
                 timeout_s: float) -> None:
        self._conninfo = conninfo
        self._pool = pool
        self.codec = codec
        self.timeout_s = timeout_s
        #: (schema name, DDL digest) pairs ensure_schema found current.
        self.schema_ok: set[tuple[str, str]] = set()
        self._down = False

    @classmethod
    def open(cls, *, dsn: str, password: str | None, codec: FieldCodec, min_size: int = 1,
             max_size: int = 10, timeout_s: float = 5.0, check_schema: bool = True,
             name: str = "bxnode", lock_timeout_s: float = 5.0) -> PgPool:
        """Connect (checking credentials and server first, so a mistake is named, not
        retried), open the pool and, with ``check_schema``, refuse a database whose schema
        is not this code's (``bxnode store migrate`` creates and upgrades it)."""
        params = parse_dsn(dsn)
        if params.get("password"):
            raise ConfigError("the PostgreSQL DSN must not contain a password; set "
                              "$BXNODE_PG_PASSWORD or [storage] password_file",
                              reason="dsn_has_password")
        if not codec.protects:
            raise ConfigError("a PostgreSQL database needs a field codec that protects "
                              "identifiers (KeyedCodec)", reason="unprotected_codec")
        if not 1 <= min_size <= max_size:
            raise ConfigError(f"pool sizes must satisfy 1 <= min ({min_size}) <= max "
                              f"({max_size})", reason="bad_config")
        extra: dict[str, Any] = {}
        if "connect_timeout" not in params:
            extra["connect_timeout"] = max(1, math.ceil(timeout_s))
        if "application_name" not in params:
            extra["application_name"] = name
        if password:
            extra["password"] = password
        conninfo = make_conninfo(dsn, **extra)
        try:
            probe: Conn = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise _connect_fault(exc) from None
        try:
            version = probe.info.server_version
        finally:
            probe.close()
        if version < MIN_SERVER_VERSION:
            raise ConfigError(f"PostgreSQL {version // 10000} is too old: bxnode needs "
                              f"{MIN_SERVER_VERSION // 10000} or newer",
                              reason="database_too_old")
        # reconnect_timeout=0: a failed background connect gives up at once instead of
        # backing off for minutes, so the first request after an outage connects anew.
        pool: ConnectionPool[Conn] = ConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, open=False,
            configure=functools.partial(_configure, lock_timeout_s=lock_timeout_s),
            timeout=timeout_s, reconnect_timeout=0.0, name=name, num_workers=2)
        try:
            pool.open(wait=True, timeout=timeout_s)
        except PoolTimeout as exc:
            pool.close()
            raise _unavailable("opening the pool", exc) from None
        self = cls(conninfo=conninfo, pool=pool, codec=codec, timeout_s=timeout_s)
        if check_schema:
            from node.store.postgresql.migrate import check_schema as check

            try:
                check(self.database())
            except BaseException:
                self.close()
                raise
        return self

    def database(self) -> PgDatabase:
        """A handle for one thread (cheap: it holds no connection until it is used)."""
        return PgDatabase(pool=self)

    def side_connection(self, *, statement_timeout_s: float = 2.0) -> Conn:
        """A connection outside the pool, for state that need not be durable (the shared
        per-peer buckets, node/server/db_limits.py): autocommit, ``synchronous_commit =
        off`` (a commit does not wait for the WAL's flush), each statement cut off after
        ``statement_timeout_s``.  The caller closes it."""
        try:
            conn: Conn = psycopg.connect(
                self._conninfo, autocommit=True,
                connect_timeout=max(1, math.ceil(min(self.timeout_s, 5))))
        except psycopg.Error as exc:
            raise _connect_fault(exc) from None
        try:
            conn.execute("SET synchronous_commit = off")
            conn.execute(f"SET statement_timeout = {max(1, round(statement_timeout_s * 1000))}")
            conn.execute("SET tcp_keepalives_idle = 10")
        except psycopg.Error as exc:
            conn.close()
            raise _unavailable("configuring a side connection", exc) from None
        return conn

    def close(self) -> None:
        self._pool.close()

    # --- connections (for PgDatabase) -----------------------------------------------------

    def _acquire(self) -> Conn:
        if not self._down:
            try:
                return self._pool.getconn(timeout=self.timeout_s)
            except PoolTimeout:
                pass
        # No connection in time, or the server was down a moment ago: a direct attempt
        # says why at once (server down, credentials changed); with the server reachable
        # the pool connects anew and we wait once more.
        self._probe()
        self._pool.check()
        try:
            conn = self._pool.getconn(timeout=self.timeout_s)
        except PoolTimeout:
            raise EnvironmentFault(
                f"no database connection free within {self.timeout_s:g} s (pool_max = "
                f"{self._pool.max_size})", reason="database_busy") from None
        self._down = False
        return conn

    def _probe(self) -> None:
        try:
            psycopg.connect(self._conninfo, autocommit=True,
                            connect_timeout=max(1, math.ceil(min(self.timeout_s, 5)))).close()
        except psycopg.Error as exc:
            self._down = True  # until a connection succeeds, fail fast instead of waiting
            raise _connect_fault(exc) from None

    def _release(self, conn: Conn) -> None:
        self._pool.putconn(conn)  # the pool discards a broken connection

    def _begin(self) -> Conn:
        """A connection with a transaction open on it."""
        for attempt in range(2):
            conn = self._acquire()
            try:
                conn.execute("BEGIN")
                return conn
            except psycopg.Error as exc:
                broken = conn.broken
                self._release(conn)
                if not _is_disconnect(exc, conn):
                    raise
                if attempt == 0 and broken:  # stale: the server restarted while it idled,
                    self._pool.check()  # or is down: drop its stale siblings, try once more
                    continue
                self._down = True
                raise _unavailable("begin", exc) from None
        raise AssertionError("unreachable")


class PgDatabase(DeferredAccess):
    """One thread's storage on a :class:`PgPool`; implements ``Database``.

    Not thread-safe, like ``Store``: one owner at a time; other threads take their own
    from ``pool.database()``.
    """

    dialect: Dialect = "postgresql"

    def __init__(self, *, pool: PgPool, owns_pool: bool = False) -> None:
        self.pool = pool
        self.codec: FieldCodec = pool.codec
        self._owns_pool = owns_pool
        self._conn: Conn | None = None
        self._depth = 0
        self._before_commit: dict[str, Callable[[], None]] = {}
        self._cursors = itertools.count(1)
        #: Advisory locks this transaction holds: name -> the savepoint depth that took it
        #: (a lock taken after a savepoint is released if it is rolled back to: PostgreSQL
        #: docs, "Explicit Locking", 13.3; advisory locks 13.3.5).  Asking again
        #: for one held is a round trip for nothing (the lock is re-entrant).
        self._held: dict[str, int] = {}
        #: Changes whenever a transaction begins, anything rolls back in SQL or deferred rows
        #: are written: what was read inside the open transaction under the same epoch
        #: still holds (the audit log's next sequence number, node/store/audit_log.py).
        self.write_epoch = 0
        #: The open transaction's deferred rows and lazy savepoints (node/store/deferred.py).
        self._deferred = DeferredRows()
        #: The ``audit`` lock: time waited for it and held, per transaction (LockTimes).
        self.lock_times = LockTimes()
        self._lock_wait: tuple[float, float] | None = None  # (waited, acquired at)

    @classmethod
    def open(cls, **kwargs: Any) -> PgDatabase:
        """A handle that owns a pool of its own (``close`` closes it); see ``PgPool.open``."""
        return cls(pool=PgPool.open(**kwargs), owns_pool=True)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:  # closed inside a transaction: it rolls back
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
            self.pool._release(conn)
            self._depth = 0
            self._before_commit.clear()
            self._held.clear()
            self._deferred.clear()
        if self._owns_pool:
            self.pool.close()

    # --- transactions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN`` ... ``COMMIT``; nested calls become savepoints."""
        if self._reading:
            raise RuntimeError("no transaction inside reading()")
        if self._depth:
            with self.savepoint():
                yield
            return
        conn = self.pool._begin()
        self._conn = conn
        self._depth = 1
        self.write_epoch += 1
        try:
            yield
            while self._before_commit:  # hooks may register further hooks
                self._before_commit.pop(next(iter(self._before_commit)))()
            self._materialize()
        except BaseException:
            self.write_epoch += 1
            self._deferred.clear()
            if self._conn is conn:  # else close() rolled back and returned it already
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
            raise
        else:
            if self._conn is not conn:
                raise RuntimeError("the database was closed inside this transaction; "
                                   "it rolled back")
            try:
                conn.execute("COMMIT")
            except psycopg.Error as exc:
                if _is_disconnect(exc, conn):
                    self.pool._down = True
                    raise _unavailable("commit; its outcome is unknown", exc) from None
                raise
        finally:
            if self._lock_wait is not None:
                waited, got = self._lock_wait
                self._lock_wait = None
                self.lock_times.add(wait_s=waited, hold_s=time.perf_counter() - got)
            if self._conn is conn:
                self._depth = 0
                self._before_commit.clear()
                self._held.clear()
                self._deferred.clear()
                self._conn = None
                self.pool._release(conn)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """One ``BEGIN`` ... ``COMMIT`` for reads only, with no lock (Database.reading):
        its statements run in it instead of one transaction each."""
        if self._depth or self._reading:
            raise RuntimeError("reading() inside a transaction")
        with self.transaction(), self._reads_only():
            yield

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @property
    def holds_writer_lock(self) -> bool:
        """Whether no other writer can change what the node's writers write until this
        transaction ends: it holds the ``audit`` lock every writer takes first."""
        return "audit" in self._held

    def before_commit(self, key: str, fn: Callable[[], None]) -> None:
        """Run ``fn`` inside the open transaction just before its outermost ``COMMIT``;
        once per ``key`` and transaction; if it raises, the transaction rolls back."""
        if not self._depth:
            raise RuntimeError("before_commit needs an open transaction")
        self._before_commit.setdefault(key, fn)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        if not self._depth:  # outside a transaction a savepoint is one
            with self.transaction():
                yield
            return
        name = f"sp{self._depth}"
        outer = self._depth
        self._deferred.open_level()  # lazy: issued once something inside writes directly
        self._depth += 1
        try:
            yield
        except BaseException:
            # locks taken inside are released with the savepoint: forget them (a lazy one
            # releases nothing, so asking again is only a round trip more)
            self._held = {k: d for k, d in self._held.items() if d <= outer}
            if self._deferred.rollback_level():
                self.write_epoch += 1
                conn = self._conn
                if conn is not None and not conn.broken:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                        conn.execute(f"RELEASE SAVEPOINT {name}")
            raise
        else:
            if self._deferred.release_level():
                self._raw(f"RELEASE SAVEPOINT {name}")
            # released into the enclosing (sub)transaction, which now holds its locks
            self._held = {k: min(d, outer) for k, d in self._held.items()}
        finally:
            self._depth -= 1

    # --- deferred rows (node/store/deferred.py) ---------------------------------------------

    def defer(self, table: str, sql: str, row: Sequence[Any], *,
              key: Hashable | None = None) -> None:
        """Write ``sql`` with ``row`` (one row of ``table``) with the transaction's other
        rows of that statement (one pipelined ``executemany``), at the latest before
        ``COMMIT``; at once outside a transaction."""
        if self._reading:
            raise RuntimeError("nothing writes inside reading()")
        if not self._depth:
            self.execute(sql, row)
            return
        self._deferred.add(table, translate_sql(sql), row, key)

    def query_past_deferred(self, sql: str, args: Sequence[Any] = ()
                            ) -> tuple[Any, ...] | None:
        """``query_one`` without writing the deferred rows first: for the owner of those
        rows, which adds what it deferred itself (:meth:`pending`)."""
        with self._statement():
            cur = self._run(translate_sql(sql), args)
            return None if cur.description is None else cur.fetchone()

    def rows_past_deferred(self, sql: str, args: Sequence[Any] = ()
                           ) -> list[tuple[Any, ...]]:
        """``query`` without writing the deferred rows first (see query_past_deferred)."""
        with self._statement():
            cur = self._run(translate_sql(sql), args)
            return [] if cur.description is None else cur.fetchall()

    def _materialize(self) -> None:
        """Write the deferred rows and issue the lazy savepoints (before a direct write, a
        read of a table with deferred rows, and ``COMMIT``)."""
        if self._deferred.dirty and self._deferred.materialize(
                self._write_many, lambda level: self._raw(f"SAVEPOINT sp{level}")):
            self.write_epoch += 1

    def _write_many(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        conn = self._conn
        assert conn is not None
        cur = conn.cursor()
        try:
            cur.executemany(sql, rows)  # pipelined by psycopg: one round trip for the rows
        except psycopg.Error as exc:
            if _is_disconnect(exc, conn):
                self.pool._down = True
                raise _unavailable("statement", exc) from None
            if (locked := _locked(exc)) is not None:
                raise locked from None
            raise
        return max(0, int(cur.rowcount))

    def lock(self, name: str) -> None:
        """``pg_advisory_xact_lock`` on SHA-256(name)'s first 8 bytes: every writer of
        ``name`` on every replica waits here until this transaction ends."""
        if not self._depth or self._reading:
            raise RuntimeError("lock needs an open transaction")
        if name in self._held:
            return
        asked = time.perf_counter()
        self._run("SELECT pg_advisory_xact_lock(%s)", (lock_key(name),))
        if self._lock_wait is None:  # the first lock of the transaction: its serial section
            got = time.perf_counter()
            self._lock_wait = (got - asked, got)
        self._held[name] = self._depth

    def ensure_schema(self, name: str, ddl: str) -> None:
        """Check that ``bxnode store migrate`` applied ``name`` at this code's version;
        never creates anything (on PostgreSQL the schema changes only in migrate)."""
        from node.store.postgresql.migrate import ensure_current

        ensure_current(self, name, ddl)

    # --- statements -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _statement(self) -> Iterator[None]:
        """The open transaction, or (outside one) a transaction for this statement alone."""
        if self._depth:
            yield
        else:
            with self.transaction():
                yield

    def _run(self, sql: str, args: Sequence[Any]) -> psycopg.Cursor[tuple[Any, ...]]:
        """Run already translated SQL on the open transaction's connection."""
        conn = self._conn
        assert conn is not None
        try:
            return conn.execute(sql, tuple(args))
        except psycopg.Error as exc:
            if _is_disconnect(exc, conn):
                self.pool._down = True
                raise _unavailable("statement", exc) from None
            if (locked := _locked(exc)) is not None:
                raise locked from None
            raise

    def _raw(self, sql: str) -> None:
        self._run(sql.replace("%", "%%"), ())

    def execute_raw(self, sql: str) -> None:
        """One statement in PostgreSQL's own dialect, without parameters (migrations)."""
        with self._statement():
            self._direct_write()
            self._raw(sql)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; returns the row count."""
        with self._statement():
            self._direct_write()
            return int(self._run(translate_sql(sql), args).rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement per row (pipelined); returns the total row count."""
        batch = [tuple(r) for r in rows]
        if not batch:
            return 0
        with self._statement():
            self._direct_write()
            return self._write_many(translate_sql(sql), batch)

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._statement():
            if self._deferred.touches(sql):
                self._materialize()
            cur = self._run(translate_sql(sql), args)
            return [] if cur.description is None else cur.fetchall()  # as SQLite: no rows

    def query_one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._statement():
            if self._deferred.touches(sql):
                self._materialize()
            cur = self._run(translate_sql(sql), args)
            return None if cur.description is None else cur.fetchone()

    def stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows one by one through a server-side cursor (2,000 rows a fetch).  Outside a
        transaction the scan reads one snapshot on a connection of its own."""
        if self._depth:
            assert self._conn is not None
            if self._deferred.touches(sql):
                self._materialize()
            yield from self._stream_on(self._conn, sql, args)
            return
        conn = self.pool._begin()
        try:
            yield from self._stream_on(conn, sql, args)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
            raise
        finally:
            self.pool._release(conn)

    def _stream_on(self, conn: Conn, sql: str, args: Sequence[Any]
                   ) -> Iterator[tuple[Any, ...]]:
        cur = conn.cursor(name=f"bx_stream_{next(self._cursors)}")
        cur.itersize = 2000
        try:
            cur.execute(translate_sql(sql), tuple(args))
            yield from cur
        except psycopg.Error as exc:
            if _is_disconnect(exc, conn):
                raise _unavailable("stream", exc) from None
            raise
        finally:
            if not conn.broken:
                with contextlib.suppress(psycopg.Error):
                    cur.close()

    # --- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.query_one("SELECT v FROM meta WHERE k=?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.execute("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) "
                     "DO UPDATE SET v = excluded.v", (key, value))
