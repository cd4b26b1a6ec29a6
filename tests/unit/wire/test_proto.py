"""The committed stubs match proto/, and proto/ is lint-clean by buf's default rules."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from node.wire import codegen

ROOT = Path(__file__).resolve().parents[3]


def test_committed_stubs_are_fresh(tmp_path: Path) -> None:
    written = codegen.generate(tmp_path)
    assert {"bxnode_pb2.py", "bxnode_pb2.pyi", "bxnode_pb2_grpc.py"} <= {p.name for p in written}
    for p in written:
        committed = codegen.OUT_DIR / p.name
        assert committed.read_text() == p.read_text(), (
            f"{committed} is stale: run 'make proto' and commit the result")


def test_stubs_use_relative_imports() -> None:
    text = (codegen.OUT_DIR / "bxnode_pb2_grpc.py").read_text()
    assert "from . import bxnode_pb2" in text
    assert "from bxnode.v1" not in text


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is needed to install the buf CLI")
def test_buf_lint_is_clean() -> None:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "buf.sh"), "lint"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is needed to install the buf CLI")
def test_buf_lint_catches_a_violation(tmp_path: Path) -> None:
    """The lint step can fail: an enum without an _UNSPECIFIED zero value is reported."""
    bad = tmp_path / "proto" / "bxnode" / "v1"
    bad.mkdir(parents=True)
    (tmp_path / "proto" / "buf.yaml").write_text((ROOT / "proto" / "buf.yaml").read_text())
    (bad / "bad.proto").write_text('syntax = "proto3";\npackage bxnode.v1;\n'
                                   "enum Colour { RED = 0; }\n")
    buf = ROOT / ".cache" / "buf" / "node_modules" / ".bin" / "buf"
    subprocess.run(["bash", str(ROOT / "scripts" / "buf.sh"), "--version"], check=True,
                   capture_output=True, timeout=300)
    proc = subprocess.run([str(buf), "lint"], cwd=tmp_path / "proto", capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "ENUM_ZERO_VALUE_SUFFIX" in proc.stdout + proc.stderr or "UNSPECIFIED" in proc.stdout
