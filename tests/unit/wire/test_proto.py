"""The committed stubs match proto/, and proto/ is lint-clean by buf's default rules."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from node.wire import codegen

ROOT = Path(__file__).resolve().parents[3]


def test_committed_stubs_are_fresh(tmp_path: Path) -> None:
    """The committed stubs are what proto/ generates, but for the tools' version stamps
    (grpcio-tools 1.85.4 on PyPI made stubs of 1.85.1 "stale" without a change)."""
    written = codegen.generate(tmp_path)
    assert {"bxnode_pb2.py", "bxnode_pb2.pyi", "bxnode_pb2_grpc.py"} <= {p.name for p in written}
    for p in written:
        committed = codegen.OUT_DIR / p.name
        assert codegen.without_tool_stamps(committed.read_text()) == (
            codegen.without_tool_stamps(p.read_text())), (
            f"{committed} is stale: run 'make proto' and commit the result")


def test_only_the_tools_stamps_are_blanked() -> None:
    """Each stamp is found in the committed stubs (so the blanking cannot silently stop
    matching), and nothing else of a stub is touched."""
    grpc_stub = (codegen.OUT_DIR / "bxnode_pb2_grpc.py").read_text()
    pb2 = (codegen.OUT_DIR / "bxnode_pb2.py").read_text()
    assert "GRPC_GENERATED_VERSION = '*'" in codegen.without_tool_stamps(grpc_stub)
    blanked = codegen.without_tool_stamps(pb2)
    assert "# Protobuf Python Version: *" in blanked
    assert "_runtime_version.Domain.PUBLIC, *," in blanked
    assert "'bxnode/v1/bxnode.proto'" in blanked
    assert len(blanked.splitlines()) == len(pb2.splitlines()) - 4
    changed = grpc_stub.replace("NodeService", "NodeServise", 1)
    assert codegen.without_tool_stamps(changed) != codegen.without_tool_stamps(grpc_stub)


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
