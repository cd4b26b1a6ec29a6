"""The command line itself: every --help, usage errors, exit codes, the console entry point,
and development keys refused by every command that loads a node's configuration."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from node.cli.main import build_parser
from tests.federation import DEMO, DEV, ROOT
from tests.unit.cli._support import Bx, assert_one_sentence


def _commands(parser: argparse.ArgumentParser,
              prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _commands(sub, (*prefix, name))
    return out


COMMANDS = _commands(build_parser())


def test_the_command_tree_holds_every_core_command() -> None:
    assert {("init",), ("serve",), ("watchlist", "import"), ("query", "doc"),
            ("query", "person"), ("query", "batch"), ("audit", "verify"),
            ("audit", "list")} <= set(COMMANDS)


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a) or "bxnode")
def test_every_help_exits_0(bx: Bx, argv: tuple[str, ...]) -> None:
    r = bx(*argv, "--help")
    assert (r.rc, r.err) == (0, "")
    assert r.out.startswith(f"usage: bxnode {' '.join(argv)}".rstrip())


@pytest.mark.parametrize(("argv", "start"), [
    ((), "bxnode: 'bxnode' needs a command"),
    (("bogus",), "bxnode: unknown command 'bogus'"),
    (("init",), "bxnode: the following arguments are required: --node-id, --country"),
    (("watchlist",), "bxnode: 'bxnode watchlist' needs a command"),
    (("watchlist", "import"), "bxnode: the following arguments are required: file"),
    (("watchlist", "import", "x.csv", "--format", "xml"),
     "bxnode: argument --format: invalid choice: 'xml'"),
    (("query", "doc", "--number", "N1"), "bxnode: the following arguments are required: "
                                          "--state, --peer, --purpose, --case-ref"),
    (("query", "person", "--sex", "Q"), "bxnode: argument --sex: invalid choice: 'Q'"),
    (("audit", "list", "--limit", "x"), "bxnode: argument --limit: 'x' is not a whole number"),
    (("audit", "list", "--limit", "0"), "bxnode: argument --limit: '0' is not at least 1"),
    (("audit", "list", "--limit", "-5"), "bxnode: argument --limit: '-5' is not at least 1"),
    (("audit", "list", "--outcome", "maybe"), "bxnode: argument --outcome: invalid choice"),
    (("serve", "--surprise"), "bxnode: unrecognized arguments: --surprise"),
])
def test_usage_errors_exit_2_with_one_line(bx: Bx, argv: tuple[str, ...], start: str) -> None:
    r = bx(*argv)
    assert r.rc == 2
    assert r.out == ""
    assert r.err.count("\n") == 1 and r.err.endswith(" (see --help)\n"), r.err
    assert r.err.startswith(start), r.err


# --- the real console entry, as a subprocess ------------------------------------------------


def _run(*argv: str, exe: tuple[str, ...] = (sys.executable, "-m", "node.cli.main"),
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*exe, *argv], cwd=str(ROOT), capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)})


def test_subprocess_exit_codes(tmp_path: Path) -> None:
    ok = _run("--help")
    assert (ok.returncode, ok.stderr) == (0, "")
    assert "border-exchange-node" in ok.stdout
    usage = _run("query", "doc")
    assert usage.returncode == 2
    assert usage.stderr.startswith("bxnode: the following arguments are required: --number")
    fail = _run("audit", "verify", "--node-dir", str(tmp_path))
    assert (fail.returncode, fail.stdout) == (1, "")
    assert fail.stderr == (f"bxnode: no config at {tmp_path / 'node.toml'} "
                           "(run 'bxnode init' first)\n")


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("bxnode")
    if not script.exists():
        pytest.skip("the bxnode console script is not installed in this environment")
    r = _run("init", "--node-dir", str(tmp_path / "n"), "--node-id", "KAZ-BS", "--country",
             "KAZ", "--json", exe=(str(script),))
    assert (r.returncode, r.stderr) == (0, "")
    assert (tmp_path / "n" / "node.toml").is_file()
    r = _run("init", "--node-dir", str(tmp_path / "n"), "--node-id", "KAZ-BS", "--country",
             "KAZ", exe=(str(script),))
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == f"bxnode: {tmp_path / 'n'} already holds a node; refusing to overwrite it\n"


# --- development keys -----------------------------------------------------------------------


@pytest.fixture
def dev_node_turned_production(tmp_path: Path, bx: Bx) -> Path:
    d = tmp_path / "dev"
    r = bx("init", "--node-dir", str(d), "--node-id", "KAZ-BS", "--country", "KAZ", "--dev",
           "--dev-keys", str(DEV / "kaz"), "--operator", "officer-1")
    assert r.rc == 0, r.err
    toml = d / "node.toml"
    text = toml.read_text()
    assert "dev_mode = true" in text
    toml.write_text(text.replace("dev_mode = true", "dev_mode = false"))
    return d


@pytest.mark.parametrize("argv", [
    ("audit", "verify"),
    ("audit", "list"),
    ("serve",),
    ("serve", "--dev-plaintext"),
    ("watchlist", "import", str(DEMO / "kaz-watchlist.csv")),
    ("query", "doc", "--number", "N1", "--state", "KAZ", "--peer", "KGZ-BS", "--purpose",
     "border_check", "--case-ref", "C-1"),
    ("query", "batch", str(DEMO / "flight-KC127-manifest.csv"), "--peer", "KGZ-BS",
     "--purpose", "border_check", "--case-ref", "C-1"),
], ids=lambda a: " ".join(a[:2]))
def test_dev_keys_are_refused_outside_dev_mode(dev_node_turned_production: Path, bx: Bx,
                                               argv: tuple[str, ...]) -> None:
    r = bx(*argv, "--node-dir", str(dev_node_turned_production))
    assert assert_one_sentence(r) == (
        "bxnode: development keys (signing.key) are refused outside development mode; set "
        "[node] dev_mode = true only on a test machine")
    assert r.out == ""
    assert not (dev_node_turned_production / "serve.port").exists()


def test_dev_keys_refused_reason(dev_node_turned_production: Path) -> None:
    from node.config import load_config
    from node.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config(dev_node_turned_production)
    assert err.value.reason == "dev_keys_refused"


def test_dev_certificate_alone_is_refused(tmp_path: Path, bx: Bx) -> None:
    """A production node whose TLS certificate was swapped for a development one."""
    r = bx("init", "--node-dir", str(tmp_path / "n"), "--node-id", "KAZ-BS", "--country", "KAZ")
    assert r.rc == 0
    (tmp_path / "n" / "tls.crt").write_bytes((DEV / "kaz" / "tls.crt").read_bytes())
    r = bx("audit", "verify", "--node-dir", str(tmp_path / "n"))
    assert assert_one_sentence(r) == (
        "bxnode: development keys (tls.crt) are refused outside development mode; set "
        "[node] dev_mode = true only on a test machine")
