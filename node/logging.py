"""structlog set-up: JSON lines on stderr, a request id on every line of a request.

Nothing at info level or above may carry personal data (names, document
numbers): log node ids, reason codes, counts and digests only.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import hashlib
import json
import logging
import re
import sys
import threading

import structlog

from node.core.errors import BxError

__all__ = ["configure", "error_fields", "log_loop_exception", "set_process_fields",
           "unexpected"]

_log = structlog.get_logger("bxnode.errors")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def unexpected(exc: BaseException) -> dict[str, str]:
    """The fields of an error line about an exception that is not one of ours (a bug, a
    driver's error inside a handler): its type, where in node/ it was raised, and a
    digest of its text -- never the text, which can hold a value the request carried (a
    ``KeyError`` of a document number, a name in a ``ValueError``).  The text goes to a
    debug line (``error_text``) under the same digest, for whoever runs at debug level."""
    text = str(exc)
    digest = _digest(text)
    at = ""
    tb = exc.__traceback__
    while tb is not None:  # the innermost frame of ours
        name = tb.tb_frame.f_code.co_filename
        if "/node/" in name:
            at = f"node/{name.rsplit('/node/', 1)[1]}:{tb.tb_lineno}"
        tb = tb.tb_next
    _log.debug("error_text", text_sha256=digest, text=text)
    return {"error": type(exc).__name__, "at": at, "text_sha256": digest}


def error_fields(exc: BaseException) -> dict[str, str]:
    """The fields of a log line at info level or above about ``exc``, whatever it is.

    One of ours (:class:`node.core.errors.BxError`): its type, message and reason -- the
    errors such lines report (storage, the audit log, the registry, witnesses) name files,
    keys, peers and reasons, never a value a request or a record carried.  Anything else
    goes through :func:`unexpected` (type, place, digest; the text at debug level only): a
    driver's text is not ours to vouch for.  PostgreSQL's is the case in point: psycopg's
    ``str()`` of a unique or check violation carries the server's DETAIL line, ``Key
    (name)=(...)`` or ``Failing row contains (...)``, the row's values.  A gRPC error adds
    its status code (a peer's details are its text, not ours); an ``OSError`` its errno's
    name."""
    if isinstance(exc, BxError):
        return {"error": f"{type(exc).__name__}: {exc}", "reason": str(exc.reason)}
    fields = unexpected(exc)
    code = getattr(exc, "code", None)
    if callable(code):  # grpc.RpcError: its StatusCode
        with contextlib.suppress(Exception):
            status = code()
            if isinstance(status, enum.Enum):
                fields["code"] = status.name
    if isinstance(exc, OSError) and exc.errno is not None:
        fields["errno"] = errno.errorcode.get(exc.errno, str(exc.errno))
    return fields


#: Fields every line of this process carries, whatever thread logs it (``worker``).
_PROCESS_FIELDS: dict[str, object] = {}


def set_process_fields(**fields: object) -> None:
    _PROCESS_FIELDS.update(fields)


def _add_process_fields(_logger: object, _name: str,
                        event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    for k, v in _PROCESS_FIELDS.items():
        event.setdefault(k, v)
    return event


class _StderrLogger:
    """Writes each rendered line to whatever ``sys.stderr`` is now (not at configure
    time: tests and tools swap it).  One instance serves every logger, so binding a logger
    per call (structlog's lazy proxies, uncached so tests can reconfigure) costs no new
    object and no per-file lock look-up."""

    __slots__ = ()

    def msg(self, message: str) -> None:
        with _WRITE_LOCK:  # one line at a time, whichever thread logs
            f = sys.stderr
            f.write(message + "\n")
            f.flush()

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


_WRITE_LOCK = threading.Lock()
_STDERR = _StderrLogger()


def _stderr_logger(*_args: object) -> _StderrLogger:
    return _STDERR


#: One encoder for every line: ``json.dumps`` with keyword arguments (what structlog's
#: JSONRenderer calls) builds a new JSONEncoder each time.  The same output, byte for byte.
_ENCODER = json.JSONEncoder(default=structlog.processors._json_fallback_handler)


def _json(obj: object, **_kw: object) -> str:
    return _ENCODER.encode(obj)


class _LibraryLines(logging.Handler):
    """The standard library's log records (gRPC's, asyncio's, a driver's), as our JSON
    lines and under the same rule: a record's format string is the library's constant text
    and is kept; its arguments, a message formatted before logging, and its exception are
    not (gRPC logs ``Unexpected [%s] raised by servicer method [%s]`` with the traceback,
    asyncio ``Task exception was never retrieved`` with the task's repr, which holds the
    exception's text).  Those go to a debug line under a digest."""

    _lines = structlog.get_logger("bxnode.library")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            fields: dict[str, str] = {"logger": record.name, "text_sha256": _digest(text)}
            if record.args and isinstance(record.msg, str):
                fields["template"] = record.msg
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None:
                fields.update(error_fields(exc))
            level = min(max(record.levelno, logging.INFO), logging.CRITICAL)
            self._lines.log(level, "library_log", **fields)
            self._lines.debug("library_log_text", text_sha256=fields["text_sha256"], text=text)
        except Exception:  # a log line must never take the process down
            self.handleError(record)


def log_loop_exception(_loop: object, context: dict[str, object]) -> None:
    """The event loop's exception handler (``loop.set_exception_handler``): asyncio's
    default prints the failed task's repr and traceback, the error's text within them."""
    exc = context.get("exception")
    fields = error_fields(exc) if isinstance(exc, BaseException) else {}
    log = structlog.get_logger("bxnode.loop")
    # asyncio's own sentence, cut before the first repr it appends ("Exception in callback
    # <Handle ...(args)>")
    message = re.split(r"[\n(<:]", str(context.get("message", "")), maxsplit=1)[0]
    log.error("event_loop_error", message=message.strip()[:80], **fields)


def configure(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _LibraryLines)]:
        root.removeHandler(handler)
    root.addHandler(_LibraryLines())
    root.setLevel(max(level, logging.WARNING))  # as before: a library's info stays out
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_process_fields,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_json),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
