"""``python -m build`` makes a wheel that installs into a clean virtual environment and runs
``bxnode --help``.

What this proves here, offline: the wheel's metadata (name, version, licence, the console
script), that it ships ``py.typed`` and the generated stubs, and that the installed copy
(not the source tree) runs.  The clean environment gets the wheel with ``--no-deps``:
its dependencies cannot be downloaded in a test, so the environment sees the test
environment's site-packages *after* its own (a path line, which loads none of that
folder's .pth files, so the project's editable install stays out).  It does not prove
that pip can resolve the dependencies from an index; each ``Requires-Dist`` is checked
to be met by an installed distribution instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.packaging._common import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "LICENSE", src)
    shutil.copytree(ROOT / "node", src / "node",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = src / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                    "--outdir", str(out), str(src)], capture_output=True, check=True,
                   timeout=300)
    (whl,) = out.glob("*.whl")
    return whl


@pytest.mark.slow
def test_wheel_contents_and_metadata(wheel: Path) -> None:
    assert wheel.name == "border_exchange_node-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read("border_exchange_node-0.1.0.dist-info/METADATA").decode()
        entry = zf.read("border_exchange_node-0.1.0.dist-info/entry_points.txt").decode()
    assert {"node/py.typed", "node/cli/main.py", "node/cli/health.py",
            "node/wire/_gen/bxnode_pb2.py",
            "border_exchange_node-0.1.0.dist-info/licenses/LICENSE"} <= names
    assert not [n for n in names if n.startswith(("tests/", "keys/", "benchmarks/"))]
    assert "License-Expression: Apache-2.0" in meta.splitlines()
    assert "Requires-Python: >=3.11" in meta.splitlines()
    assert entry.split() == ["[console_scripts]", "bxnode", "=", "node.cli.main:main"]


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv_and_runs_bxnode_help(wheel: Path,
                                                                tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print("
                                "sysconfig.get_paths()['purelib'])"], capture_output=True,
                               text=True, check=True).stdout.strip())
    (site / "_bxnode_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # Not the source tree: run away from it, without PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    probe = subprocess.run(
        [str(py), "-c",
         "import importlib.metadata as m, pathlib, node\n"
         "from packaging.requirements import Requirement\n"
         "d = m.distribution('border-exchange-node')\n"
         "print(pathlib.Path(node.__file__).parent)\n"
         "print(d.version, d.metadata['License-Expression'])\n"
         "print(pathlib.Path(node.__file__).with_name('py.typed').exists())\n"
         "unmet = [r for r in map(Requirement, d.requires or []) if r.marker is None\n"
         "         or r.marker.evaluate({'extra': ''})]\n"
         "unmet = [str(r) for r in unmet if not r.specifier.contains(\n"
         "         m.version(r.name), prereleases=True)]\n"
         "print(unmet)\n"], capture_output=True, text=True, check=True, timeout=60,
        cwd=tmp_path, env=env)
    assert probe.stdout.splitlines() == [str(site / "node"), "0.1.0 Apache-2.0", "True", "[]"]
    help_ = subprocess.run([str(venv / "bin" / "bxnode"), "--help"], capture_output=True,
                           text=True, timeout=60, cwd=tmp_path, env=env)
    assert help_.returncode == 0, help_.stderr
    assert help_.stdout.startswith("usage: bxnode")
    assert "health" in help_.stdout and "serve" in help_.stdout
