"""``.ci/run`` (issue 17 §5): lint, ``buf breaking`` against the previous commit, then the
tests; every step runs even after one failed, and the run fails if any did.  And ``make
breaking`` can fail: a wire-breaking change committed on top of the current protos is
refused by the real buf CLI, a comment-only change is not."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging._common import ROOT

CI = ROOT / ".ci" / "run"


def _recipe(target: str) -> list[str]:
    """The commands of one Makefile target."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if re.match(rf"{target}:", ln))
    out = []
    for ln in lines[start + 1:]:
        if not ln.startswith("\t"):
            break
        out.append(ln.strip())
    return out


def test_ci_runs_lint_breaking_and_the_tests_and_lint_is_ruff_mypy_buf() -> None:
    steps = [ln.split(None, 1)[1] for ln in CI.read_text().splitlines()
             if ln.startswith("step ")]
    assert steps == ["make lint", "make breaking", "make test"]
    assert _recipe("lint") == ["$(BIN)/ruff check node tests benchmarks", "$(BIN)/mypy node",
                               "$(BIN)/mypy tests", "bash scripts/buf.sh lint"]
    assert _recipe("breaking") == ["bash scripts/buf.sh breaking-previous"]
    assert "strict = true" in (ROOT / "pyproject.toml").read_text()  # mypy --strict


def test_every_step_runs_and_one_failure_fails_the_run(tmp_path: Path) -> None:
    """With a stand-in ``make`` on PATH (it records its arguments; ``breaking`` fails), the
    real .ci/run runs all three steps, names the failed one and exits 1."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    log = tmp_path / "make.log"
    fake_make = fake_bin / "make"
    fake_make.write_text(f'#!/bin/sh\necho "$*" >> {log}\n[ "$1" != breaking ]\n')
    fake_make.chmod(0o755)
    proc = subprocess.run(["bash", str(CI)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert log.read_text().splitlines() == ["lint", "breaking", "test"]
    assert proc.stdout.splitlines()[-1] == "ci: FAILED: make breaking"
    fake_make.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    proc = subprocess.run(["bash", str(CI)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"})
    assert proc.returncode == 0 and "FAILED" not in proc.stdout


def _git(repo: Path, *argv: str) -> None:
    subprocess.run(["git", "-c", "user.name=ci-test", "-c", "user.email=ci@test.invalid",
                    *argv], cwd=repo, check=True, capture_output=True, timeout=60)


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is needed to install the buf CLI")
def test_make_breaking_refuses_a_wire_breaking_commit(tmp_path: Path) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "buf.sh"), "--version"], check=True,
                   capture_output=True, timeout=300)  # installs buf into .cache/buf once
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "proto", repo / "proto")
    (repo / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "buf.sh", repo / "scripts" / "buf.sh")
    (repo / ".cache").symlink_to(ROOT / ".cache")  # the buf CLI already installed
    _git(repo, "init", "-q")
    _git(repo, "add", "proto", "scripts")
    _git(repo, "commit", "-q", "-m", "protos as they are")
    proto = repo / "proto" / "bxnode" / "v1" / "bxnode.proto"
    original = proto.read_text()

    def breaking() -> subprocess.CompletedProcess[str]:
        _git(repo, "commit", "-q", "-am", "change")
        return subprocess.run(["bash", "scripts/buf.sh", "breaking-previous"], cwd=repo,
                              capture_output=True, text=True, timeout=300)

    # a comment is not a wire change
    proto.write_text(original.replace("// Hit / no-hit lookup", "// Hit or no-hit lookup"))
    ok = breaking()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("buf breaking: proto/ is wire-compatible with ")
    # a renumbered field is: a peer built from the old protos would misread it
    renumbered = original.replace("  string payload_type = 1;", "  string payload_type = 6;")
    assert renumbered != original
    proto.write_text(renumbered)
    bad = breaking()
    assert bad.returncode != 0
    assert "SignedEnvelope" in bad.stdout + bad.stderr and "wire-compatible" not in bad.stdout
