"""structlog set-up: JSON lines on stderr, a request id on every line of a request.

Nothing at info level or above may carry personal data (names, document
numbers): log node ids, reason codes, counts and digests only.
"""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure", "set_process_fields"]

#: Fields every line of this process carries, whatever thread logs it (``worker``).
_PROCESS_FIELDS: dict[str, object] = {}


def set_process_fields(**fields: object) -> None:
    _PROCESS_FIELDS.update(fields)


def _add_process_fields(_logger: object, _name: str,
                        event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    for k, v in _PROCESS_FIELDS.items():
        event.setdefault(k, v)
    return event


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    """Whatever ``sys.stderr`` is now (not at configure time): tests and tools swap it."""
    return structlog.PrintLogger(file=sys.stderr)


def configure(level: int = logging.INFO) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_process_fields,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
