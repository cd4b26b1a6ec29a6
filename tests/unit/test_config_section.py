"""node/config_section.py: the one way every strict section reads its keys."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from node.config_section import Section
from node.core.errors import ConfigError


def refusal(fn: Callable[..., object], *args: object) -> tuple[str, str]:
    with pytest.raises(ConfigError) as exc:
        fn(*args)
    return exc.value.reason, str(exc.value)


def test_not_a_table_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    assert refusal(Section, "local", ["x"], tmp_path) == (
        "bad_config", "config: [local] must be a table")
    assert refusal(Section, "audit", {"batch_mss": 1, "zeta": 2}, tmp_path, {"batch_ms"}) == (
        "bad_config", "config: [audit] has no key 'batch_mss'")


@pytest.mark.parametrize("value", [True, "5", 5.0, 0, 11])
def test_a_number_is_an_integer_in_range_never_a_bool_or_text(tmp_path: Path,
                                                                 value: object) -> None:
    sec = Section("audit", {"batch_ms": value}, tmp_path)
    assert refusal(sec.num, "batch_ms", 2, 1, 10) == (
        "bad_config", "config: [audit] batch_ms must be 1..10")


def test_values_read_as_given_and_defaults_when_absent(tmp_path: Path) -> None:
    sec = Section("console", {"batch_ms": 7, "listen": " 127.0.0.1:1 ", "ca": "a/ca.crt",
                              "empty": "", "enabled": True}, tmp_path)
    assert sec.num("batch_ms", 2, 1, 10) == 7
    assert sec.num("absent", 2, 1, 10) == 2
    assert sec.text("listen") == "127.0.0.1:1"
    assert sec.path("ca") == (tmp_path / "a" / "ca.crt").resolve()
    assert sec.path("empty") is None and sec.path("absent") is None
    assert sec.flag("enabled", False) is True
    assert sec.flag("absent", False) is False


def test_wrong_types_are_refused_naming_the_key(tmp_path: Path) -> None:
    sec = Section("console", {"listen": 8443, "ca": 7, "enabled": "false"}, tmp_path)
    assert refusal(sec.text, "listen") == ("bad_config", "config: [console] listen must be text")
    assert refusal(sec.path, "ca") == ("bad_config", "config: [console] ca must be a file name")
    # "false" as text must never turn a flag on (or off): an error, not a default
    assert refusal(sec.flag, "enabled", False) == (
        "bad_config", "config: [console] enabled must be true or false")
