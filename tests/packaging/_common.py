"""Shared helpers of tests/packaging: the repository root and the project's tools."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A console script of the virtual environment running the tests."""
    return str(BIN / name)
