"""The CLI tests' fixtures (an in-process ``bxnode``, a fresh production-mode node)."""

from tests.unit.cli.conftest import _clean_env, bx, node

__all__ = ["_clean_env", "bx", "node"]
