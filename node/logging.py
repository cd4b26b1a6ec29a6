"""structlog set-up: JSON lines on stderr, a request id on every line of a request.

Nothing at info level or above may carry personal data (names, document
numbers): log node ids, reason codes, counts and digests only.
"""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure"]


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    """Whatever ``sys.stderr`` is now (not at configure time): tests and tools swap it."""
    return structlog.PrintLogger(file=sys.stderr)


def configure(level: int = logging.INFO) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
