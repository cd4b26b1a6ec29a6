"""Waiting for another process: the one place the tests look again and again.

A ``bxnode serve`` subprocess, a witness's next round, a scrape that has not counted an
aborted call yet: what the test waits for happens in another process, which no injected
clock drives and no in-process event reports, so the condition is read again every
``every`` seconds until it holds.  The timeout is for a loaded machine and is never part
of what a test asserts (time *inside* the node comes from its injected clock).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["turns_until", "until", "until_file"]

T = TypeVar("T")


def until(what: str, check: Callable[[], T | None], *, timeout: float = 30,
          every: float = 0.05) -> T:
    """``check()`` once it is truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def until_file(path: Path, proc: subprocess.Popen[str] | subprocess.Popen[bytes], *,
               timeout: float = 60, on_fail: Callable[[], str] = lambda: "") -> None:
    """Until ``proc`` (a ``bxnode serve``) has written ``path`` (its serve.port, say);
    AssertionError with ``on_fail()`` if it exits first or the timeout passes."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{path.name} was not written: {on_fail()}")
        time.sleep(0.05)


async def turns_until(what: str, check: Callable[[], object], *, turns: int = 100) -> None:
    """Inside one event loop: let the other tasks run, one loop turn at a time, until
    ``check()`` holds; AssertionError naming ``what`` after ``turns`` turns.  No clock is
    involved: what a test waits for here is another coroutine's next step."""
    for _ in range(turns):
        if check():
            return
        await asyncio.sleep(0)  # one turn of the loop: the only sleep, and it is not time
    if not check():
        raise AssertionError(f"not after {turns} loop turns: {what}")
