"""structlog set-up: JSON lines on stderr, a request id on every line of a request.

Nothing at info level or above may carry personal data (names, document
numbers): log node ids, reason codes, counts and digests only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading

import structlog

__all__ = ["configure", "set_process_fields", "unexpected"]

_log = structlog.get_logger("bxnode.errors")


def unexpected(exc: BaseException) -> dict[str, str]:
    """The fields of an error line about an exception that is not one of ours (a bug, a
    driver's error inside a handler): its type, where in node/ it was raised, and a
    digest of its text -- never the text, which can hold a value the request carried (a
    ``KeyError`` of a document number, a name in a ``ValueError``).  The text goes to a
    debug line (``error_text``) under the same digest, for whoever runs at debug level."""
    text = str(exc)
    digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]
    at = ""
    tb = exc.__traceback__
    while tb is not None:  # the innermost frame of ours
        name = tb.tb_frame.f_code.co_filename
        if "/node/" in name:
            at = f"node/{name.rsplit('/node/', 1)[1]}:{tb.tb_lineno}"
        tb = tb.tb_next
    _log.debug("error_text", text_sha256=digest, text=text)
    return {"error": type(exc).__name__, "at": at, "text_sha256": digest}


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


def configure(level: int = logging.INFO) -> None:
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
