from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.federation import Federation, make_federation


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """Three demo nodes (KAZ, KGZ, UZB) serving over mTLS, shared by a test module."""
    f = make_federation(tmp_path_factory.mktemp("fed"))
    for n in f.dirs:
        f.start(n)
    yield f
    f.stop_all()


@pytest.fixture
def fresh_fed(tmp_path: Path) -> Iterator[Federation]:
    """A federation of its own, for tests that restart nodes or change state."""
    f = make_federation(tmp_path)
    for n in f.dirs:
        f.start(n)
    yield f
    f.stop_all()


@pytest.fixture
def no_periodic_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """The periodic flush of over-limit refusals set to an hour: only the test's own
    flushes (and the shutdown's) append, so what each one records is exact."""
    from node.server import grpc_server

    monkeypatch.setattr(grpc_server, "REFUSAL_FLUSH_S", 3600.0)
