"""tests/packaging: the marker for the tests that build something (a wheel, an image)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: builds a wheel or an image (tens of seconds); -m 'not slow' skips it")
