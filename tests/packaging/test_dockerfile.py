"""The Dockerfile: hadolint-clean, multi-stage, non-root, no keys in the build context;
built where a daemonless builder and the base image are at hand, else only linted."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging._common import ROOT, tool

DOCKERFILE = ROOT / "Dockerfile"
BASE_IMAGE = "python:3.11-slim-bookworm"


def hadolint(path: Path) -> list[dict[str, object]]:
    out = subprocess.run([tool("hadolint"), "--no-color", "--no-fail", "-t", "style",
                          "-f", "json", str(path)], capture_output=True, text=True,
                         check=True, timeout=60)
    findings: list[dict[str, object]] = json.loads(out.stdout)
    return findings


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    assert hadolint(DOCKERFILE) == []


def test_hadolint_runs_for_real(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nADD . /src\nUSER root\n")
    assert {f["code"] for f in hadolint(bad)} == {"DL3006", "DL3020", "DL3002", "DL3066"}


def test_two_stages_and_a_non_root_user() -> None:
    lines = [ln.strip() for ln in DOCKERFILE.read_text().splitlines()]
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert froms == ["FROM ${PYTHON_IMAGE} AS build", "FROM ${PYTHON_IMAGE} AS runtime"]
    runtime = lines[lines.index(froms[1]):]
    users = [ln for ln in runtime if ln.startswith("USER ")]
    assert users == ["USER 10001:10001"]
    assert 'ENTRYPOINT ["bxnode"]' in runtime
    assert "PYTHONDONTWRITEBYTECODE=1 \\" in runtime  # nothing written to a read-only root
    copies = [ln for ln in lines if ln.startswith("COPY ")]
    assert not [c for c in copies if "keys" in c]


def _ignored(rel: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern decides (``!`` re-admits);
    a pattern matches a path or any of its parent folders."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for negate, pat in patterns:
        regex = re.escape(pat).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, p) for p in prefixes):
            ignored = not negate
    return ignored


def build_context() -> set[str]:
    patterns: list[tuple[bool, str]] = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            patterns.append((negate, line.lstrip("!").rstrip("/")))
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return {f for f in listed if not _ignored(f, patterns)}


def test_the_build_context_holds_no_key_and_all_the_dockerfile_copies() -> None:
    context = build_context()
    assert not [f for f in context if f.startswith("keys/") or f.endswith(".key")]
    assert "pyproject.toml" in context
    assert "node/cli/main.py" in context and "node/py.typed" in context
    assert {f for f in context if f.startswith("policies/")} == {
        f"policies/bxnode/{p.name}" for p in (ROOT / "policies/bxnode").iterdir()}
    assert not [f for f in context if f.startswith(("tests/", "benchmarks/", ".ci/"))]
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            for src in line.split()[1:-1]:
                assert [f for f in context if fnmatch.fnmatch(f, src)
                        or f.startswith(src.rstrip("/") + "/")], src


def _builder() -> tuple[str | None, str]:
    """A daemonless builder that can build here, or why none can."""
    for name in ("buildah", "podman"):
        exe = shutil.which(name)
        if exe is None:
            continue
        if os.geteuid() != 0:
            return None, f"{name} present but the tests do not run as root"
        have = subprocess.run([exe, "inspect", "--type", "image", BASE_IMAGE],
                              capture_output=True, timeout=60).returncode == 0
        if not have:  # only the package registries are reachable: never try to pull
            return None, (f"{name} present but the base image {BASE_IMAGE} is not in local "
                          "storage and cannot be pulled here")
        return exe, ""
    return None, "no daemonless builder (buildah, podman) installed"


@pytest.mark.slow
def test_the_image_builds_and_runs_as_a_non_root_user(tmp_path: Path) -> None:
    exe, why = _builder()
    if exe is None:
        pytest.skip(f"Dockerfile only linted (hadolint), not built: {why}")
    tag = "localhost/bxnode-test:ci"
    build = "bud" if exe.endswith("buildah") else "build"
    subprocess.run([exe, build, "--pull=never", "--layers", "-t", tag, str(ROOT)],
                   check=True, timeout=900)
    try:
        user = subprocess.run([exe, "inspect", "--type", "image", "--format",
                               "{{.OCIv1.Config.User}}" if build == "bud"
                               else "{{.Config.User}}", tag],
                              capture_output=True, text=True, check=True).stdout.strip()
        assert user == "10001:10001"
        runner = shutil.which("podman")
        if runner is not None:  # buildah alone cannot run a container: podman can
            out = subprocess.run([runner, "run", "--rm", "--read-only", "--network=none",
                                  tag, "--help"], capture_output=True, text=True,
                                 check=True, timeout=120)
            assert out.stdout.startswith("usage: bxnode")
    finally:
        subprocess.run([exe, "rmi", tag], capture_output=True, check=False)
