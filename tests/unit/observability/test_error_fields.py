"""Log lines about errors carry no value a request or a record held (node/logging.py).

PostgreSQL's error text is the case that made this a rule: psycopg's ``str()`` of a unique
or check violation carries the server's DETAIL line with the row's values.  Every log line
at info level or above that reports an exception goes through ``error_fields`` (or
``unexpected``); a scan of node/ keeps it so.
"""

from __future__ import annotations

import ast
import asyncio
import errno
import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
import structlog
from structlog.testing import capture_logs

from node.core.errors import EnvironmentFault
from node.logging import error_fields
from node.server.group_commit import BatchWriter
from tests.pgcluster import PgCluster

NODE = Path(__file__).resolve().parents[3] / "node"
SECRET = "IVANOV-AB1234567"  # a name and a document number, as a record would hold them


def _violation(pg_cluster: PgCluster, pg_dsn: str) -> psycopg.Error:
    """A real unique violation from a real server, DETAIL line and all."""
    with psycopg.connect(pg_dsn, password=pg_cluster.password, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (name TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES (%s)", (SECRET,))
        with pytest.raises(psycopg.errors.UniqueViolation) as caught:
            conn.execute("INSERT INTO t VALUES (%s)", (SECRET,))
    return caught.value


@pytest.fixture
def debug_level() -> Iterator[None]:
    """structlog at debug level for one test (another may have configured it at info)."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        yield
    finally:
        structlog.configure(**saved)


def test_a_driver_error_is_logged_by_type_and_digest_never_its_text(
        pg_cluster: PgCluster, pg_dsn: str, debug_level: None) -> None:
    exc = _violation(pg_cluster, pg_dsn)
    assert SECRET in str(exc)  # the server's DETAIL line: why the rule exists
    with capture_logs() as logs:
        fields = error_fields(exc)
    assert fields["error"] == "UniqueViolation"
    assert set(fields) == {"error", "at", "text_sha256"}
    assert SECRET not in repr(fields)
    # the text itself only at debug level, under the same digest
    [debug] = [e for e in logs if e["event"] == "error_text"]
    assert debug["log_level"] == "debug" and SECRET in debug["text"]
    assert debug["text_sha256"] == fields["text_sha256"]


def test_our_errors_keep_their_message_and_reason() -> None:
    exc = EnvironmentFault("database: the commit could not be synced to disk",
                           reason="database_unavailable")
    assert error_fields(exc) == {
        "error": "EnvironmentFault: database: the commit could not be synced to disk",
        "reason": "database_unavailable"}


def test_an_os_error_gives_its_errno_name_and_a_grpc_error_its_status() -> None:
    fields = error_fields(OSError(errno.ENOSPC, "No space left on device", f"/srv/{SECRET}"))
    assert fields["error"] == "OSError" and fields["errno"] == "ENOSPC"
    assert SECRET not in repr(fields)
    rpc = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                               grpc.aio.Metadata(), details=f"peer said {SECRET}")
    fields = error_fields(rpc)
    assert fields["code"] == "UNAVAILABLE" and SECRET not in repr(fields)


class _FailingCommit:
    """A stand-in store whose COMMIT raises the error a real server gave (the batch
    writer's log line is what is under test, not the store)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def transaction(self) -> _FailingCommit:
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        raise self.exc


def test_a_failed_batch_commit_is_logged_without_the_rows_values(
        pg_cluster: PgCluster, pg_dsn: str) -> None:
    exc = _violation(pg_cluster, pg_dsn)

    async def main() -> None:
        writer = BatchWriter(store=_FailingCommit(exc), batch_max=4, batch_ms=0)  # type: ignore[arg-type]
        writer.start()
        with capture_logs() as logs:
            with pytest.raises(psycopg.errors.UniqueViolation):
                await writer.run_in_batch(lambda: 1, peer="KGZ-BS")
        await writer.stop()
        [line] = [e for e in logs if e["event"] == "audit_batch_commit_failed"]
        assert line["log_level"] == "error" and line["error"] == "UniqueViolation"
        assert SECRET not in repr(line)
        assert writer.commit_error == "UniqueViolation"

    asyncio.run(main())


# --- the rule, kept by a scan -------------------------------------------------------------

_LEVELS = frozenset({"info", "warning", "warn", "error", "critical", "exception", "msg"})
#: Calls that may take the exception itself: they decide what of it is logged.
_VETTED = frozenset({"error_fields", "unexpected", "type", "isinstance", "getattr"})


def _raw_uses(handler: ast.ExceptHandler) -> list[ast.Call]:
    """Log calls at info level or above in ``handler`` that pass its exception (or its
    text) other than through a vetted call or an attribute (``exc.reason``)."""
    name, found = handler.name, []
    for call in ast.walk(ast.Module(body=handler.body, type_ignores=[])):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr in _LEVELS):
            continue
        vetted: set[int] = set()
        for sub in ast.walk(call):
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) \
                    and sub.func.id in _VETTED:
                vetted.update(id(a) for a in sub.args)
            if isinstance(sub, ast.Attribute):
                vetted.add(id(sub.value))
        args = [*call.args, *(k.value for k in call.keywords)]
        if any(isinstance(n, ast.Name) and n.id == name and id(n) not in vetted
               for a in args for n in ast.walk(a)):
            found.append(call)
    return found


def _tracebacks(tree: ast.AST) -> list[ast.Call]:
    """``log.exception(...)`` and ``exc_info=``: a traceback ends with the error's text."""
    return [c for c in ast.walk(tree) if isinstance(c, ast.Call)
            and ((isinstance(c.func, ast.Attribute) and c.func.attr == "exception"
                  and c.args and isinstance(c.args[0], ast.Constant))
                 or any(k.arg == "exc_info" for k in c.keywords))]


def test_no_log_line_in_node_carries_an_exceptions_text() -> None:
    offenders = []
    for path in sorted(NODE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        where = str(path.relative_to(NODE.parent))
        offenders += [f"{where}:{c.lineno} traceback" for c in _tracebacks(tree)]
        for handler in ast.walk(tree):
            if isinstance(handler, ast.ExceptHandler) and handler.name:
                offenders += [f"{where}:{c.lineno}" for c in _raw_uses(handler)]
    assert offenders == []


def test_the_scan_finds_what_it_is_for() -> None:
    bad = ast.parse("try:\n    pass\nexcept Exception as exc:\n"
                    "    log.error('x', error=str(exc))\n"
                    "    log.warning('y', error=f'{type(exc).__name__}: {exc}')\n"
                    "    log.info('z', reason=exc.reason, **error_fields(exc))\n")
    [handler] = [h for h in ast.walk(bad) if isinstance(h, ast.ExceptHandler)]
    assert [c.lineno for c in _raw_uses(handler)] == [4, 5]
    traced = ast.parse("log.exception('x')\nlog.error('y', exc_info=True)\n"
                       "task.exception()\nlog.error('z', **error_fields(exc))\n")
    assert [c.lineno for c in _tracebacks(traced)] == [1, 2]


# --- what the libraries log, and the event loop ---------------------------------------------

@pytest.fixture
def configured() -> Iterator[None]:
    """node.logging.configure() for one test, the previous set-up restored after it."""
    from node.logging import configure

    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**saved)


def test_a_librarys_record_keeps_its_format_string_never_its_values(
        configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    grpc_log = logging.getLogger("grpc._cython.cygrpc")
    grpc_log.error("Unexpected [%s] raised by servicer method [%s]", "ValueError",
                   f"/bx.Lookup/{SECRET}", exc_info=ValueError(SECRET))
    logging.getLogger("asyncio").warning(f"preformatted: {SECRET}")
    logging.getLogger("some.driver").info("chatter %s", SECRET)  # a library's info: not shown
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines()]
    assert SECRET not in repr(lines)
    assert [(ln["event"], ln["level"], ln["logger"]) for ln in lines] == [
        ("library_log", "error", "grpc._cython.cygrpc"),
        ("library_log", "warning", "asyncio")]
    assert lines[0]["template"] == "Unexpected [%s] raised by servicer method [%s]"
    assert lines[0]["error"] == "ValueError"
    assert "template" not in lines[1] and len(lines[1]["text_sha256"]) == 16


def test_a_task_failing_unseen_is_logged_without_its_text() -> None:
    import gc

    from node.logging import log_loop_exception

    async def fails() -> None:
        raise ValueError(SECRET)

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(log_loop_exception)
        task = asyncio.ensure_future(fails())
        done, _ = await asyncio.wait([task])  # it fails; wait() does not look at why
        del task, done

    with capture_logs() as logs:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(main())
            gc.collect()  # the task's finaliser reports the unretrieved exception
        finally:
            loop.close()
    [line] = [e for e in logs if e["event"] == "event_loop_error"]
    assert line["message"] == "Task exception was never retrieved"
    assert line["error"] == "ValueError" and SECRET not in repr(line)
