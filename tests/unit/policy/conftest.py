from __future__ import annotations

from pathlib import Path

import pytest

from node.policy import RegoPolicyEngine
from tests.unit.policy._support import write_policy_dir


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    return write_policy_dir(tmp_path / "policies")


@pytest.fixture
def engine(policy_dir: Path) -> RegoPolicyEngine:
    return RegoPolicyEngine.from_directory(policy_dir)
