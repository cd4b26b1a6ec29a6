"""Fixtures the CLI tests share: an in-process ``bxnode``, a fresh node, a running federation."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from node.cli.main import main
from tests.federation import Federation, make_federation
from tests.unit.cli._support import Bx, Run


def _follow_stderr() -> None:
    """main() binds structlog to the sys.stderr of its run (here: capsys's, closed after the
    test); log records written later (servers, load_config) go to whatever stderr is then."""
    structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BXNODE_DB_KEY", raising=False)
    monkeypatch.delenv("BXNODE_HOME", raising=False)


@pytest.fixture
def bx(capsys: pytest.CaptureFixture[str]) -> Bx:
    def run(*argv: str) -> Run:
        capsys.readouterr()
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse: --help and usage errors
            rc = int(exc.code or 0)
        finally:
            _follow_stderr()
        out, err = capsys.readouterr()
        return Run(rc, out, err)

    return run


@pytest.fixture
def node(tmp_path: Path, bx: Bx) -> Path:
    """A freshly initialised production-mode node (self-signed TLS, no development keys)."""
    d = tmp_path / "node"
    r = bx("init", "--node-dir", str(d), "--node-id", "KAZ-BS", "--country", "KAZ",
           "--listen", "127.0.0.1:0", "--operator", "officer-1")
    assert r.rc == 0, r.err
    return d


@pytest.fixture(scope="session")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """Three demo nodes (KAZ, KGZ, UZB) serving over mTLS on 127.0.0.1."""
    f = make_federation(tmp_path_factory.mktemp("clifed"))
    for n in f.dirs:
        f.start(n)
    yield f
    f.stop_all()
