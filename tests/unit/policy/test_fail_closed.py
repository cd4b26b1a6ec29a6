"""Fail closed: bad policy directories refuse to load; bad results never allow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from node.core.errors import ConfigError
from node.core.model import Decision
from node.policy import RegoPolicyEngine
from tests.unit.policy._support import make_input, rule_table_data, write_policy_dir
from tests.unit.policy.cases import ALLOW_FULL, denied

POLICY_ERROR = Decision(allow=False, reasons=("policy_error",))


def _dir_with(tmp_path: Path, rego: str, data: str | None = None) -> Path:
    root = tmp_path / "p"
    root.mkdir()
    (root / "policy.rego").write_text(rego)
    if data is not None:
        (root / "data.json").write_text(data)
    return root


def _load_fails(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        RegoPolicyEngine.from_directory(path)
    assert info.value.reason == "policy_invalid"
    return info.value


def test_missing_directory(tmp_path: Path) -> None:
    _load_fails(tmp_path / "absent")


def test_empty_directory(tmp_path: Path) -> None:
    err = _load_fails(tmp_path)
    assert str(err) == f"policy directory {tmp_path} holds no .rego files"


def test_data_without_rego(tmp_path: Path) -> None:
    (tmp_path / "data.json").write_text(json.dumps(rule_table_data()))
    _load_fails(tmp_path)


def test_rego_syntax_error(tmp_path: Path) -> None:
    _load_fails(_dir_with(tmp_path, "package bxnode.lookup\n\ndecision := {\n"))


def test_policy_without_decision(tmp_path: Path) -> None:
    err = _load_fails(_dir_with(tmp_path, "package bxnode.lookup\n\nother := 1\n"))
    assert "the decision is undefined" in str(err)


def test_policy_in_another_package(tmp_path: Path) -> None:
    rego = 'package other\n\ndecision := {"allow": false, "reasons": ["x"], "disclose": []}\n'
    _load_fails(_dir_with(tmp_path, rego))


@pytest.mark.parametrize("decision", [
    '{"allow": false}',
    '{"allow": "no", "reasons": ["x"], "disclose": []}',
    '{"allow": false, "reasons": [], "disclose": []}',
    '{"allow": false, "reasons": ["x"], "disclose": [], "extra": 1}',
    '{"allow": false, "reasons": ["x"], "disclose": ["reference"]}',
    '{"allow": false, "reasons": "no_agreement", "disclose": []}',
    '{"allow": false, "reasons": [1], "disclose": []}',
    '["no_agreement"]',
    "false",
])
def test_wrong_shape_at_load(tmp_path: Path, decision: str) -> None:
    _load_fails(_dir_with(tmp_path, f"package bxnode.lookup\n\ndecision := {decision}\n"))


def test_policy_that_allows_by_default(tmp_path: Path) -> None:
    rego = 'package bxnode.lookup\n\ndecision := {"allow": true, "reasons": [], "disclose": []}\n'
    err = _load_fails(_dir_with(tmp_path, rego))
    assert str(err) == "the policy allows an empty request; it must deny by default"


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", '{"x": NaN}', "\xff"])
def test_invalid_data_json(tmp_path: Path, data: str) -> None:
    write_policy_dir(tmp_path)
    (tmp_path / "data.json").write_bytes(data.encode("latin-1"))
    _load_fails(tmp_path)


def test_conflicting_data_files(tmp_path: Path) -> None:
    write_policy_dir(tmp_path)
    (tmp_path / "bxnode" / "data.json").write_text('{"agreements": []}')
    _load_fails(tmp_path)


def test_nested_data_json_is_mounted_at_its_folder(tmp_path: Path) -> None:
    write_policy_dir(tmp_path)
    (tmp_path / "data.json").unlink()
    (tmp_path / "bxnode" / "data.json").write_text(json.dumps(rule_table_data()["bxnode"]))
    assert RegoPolicyEngine.from_directory(tmp_path).decide(make_input()) == ALLOW_FULL


# A policy that answers the load-time probe correctly but misbehaves per purpose.
_MISBEHAVING = """package bxnode.lookup

decision := {"allow": false, "reasons": ["no_agreement"], "disclose": []} if not input.purpose
decision := {"allow": true} if input.purpose == "border_check"
decision := "allow" if input.purpose == "migration_control"
decision := {"allow": true, "reasons": ["x"], "disclose": []} if input.purpose == "visa_application"
decision := {"allow": false, "reasons": [], "disclose": []} if input.purpose == "counter_terrorism"
decision := {"allow": true, "reasons": [], "disclose": []} if input.purpose == "conflict"
decision := {"allow": false, "reasons": ["y"], "disclose": []} if input.purpose == "conflict"
"""


@pytest.mark.parametrize("purpose", [
    "border_check",            # missing keys
    "migration_control",       # not an object
    "visa_application",        # allow with reasons
    "counter_terrorism",       # deny without reasons
    "criminal_investigation",  # undefined
    "conflict",                # two values: rego-cpp evaluation error
])
def test_bad_result_at_evaluation_denies_and_logs(tmp_path: Path, purpose: str) -> None:
    engine = RegoPolicyEngine.from_directory(_dir_with(tmp_path, _MISBEHAVING))
    with capture_logs() as logs:
        assert engine.decide(make_input(purpose=purpose)) == POLICY_ERROR
    assert len(logs) == 1
    entry = logs[0]
    assert (entry["event"], entry["log_level"], entry["engine"]) == (
        "policy_evaluation_failed", "error", "regopy")
    assert entry["policy_digest"] == engine.digest
    text = repr(entry)  # no personal data: operator, case reference, legal basis stay out
    assert "op-17" not in text and "CASE-2026" not in text and "Bilateral" not in text


def test_reload_swaps_policy(policy_dir: Path, engine: RegoPolicyEngine) -> None:
    before = engine.digest
    assert engine.decide(make_input(purpose="visa_application")) == denied("purpose_not_agreed")
    data = rule_table_data()
    data["bxnode"]["agreements"][0]["purposes"].append("visa_application")
    (policy_dir / "data.json").write_text(json.dumps(data))
    engine.reload()
    assert engine.digest != before
    assert engine.decide(make_input(purpose="visa_application")) == ALLOW_FULL


def test_reload_error_keeps_old_policy(policy_dir: Path, engine: RegoPolicyEngine) -> None:
    before = engine.digest
    (policy_dir / "bxnode" / "lookup.rego").write_text("package bxnode.lookup\n\ndecision := {")
    with pytest.raises(ConfigError) as info:
        engine.reload()
    assert info.value.reason == "policy_invalid"
    assert engine.digest == before
    assert engine.decide(make_input()) == ALLOW_FULL
    assert engine.decide(make_input(purpose="visa_application")) == denied("purpose_not_agreed")


def test_reload_of_emptied_directory_keeps_old_policy(policy_dir: Path,
                                                      engine: RegoPolicyEngine) -> None:
    before = engine.digest
    shutil.rmtree(policy_dir / "bxnode")
    with pytest.raises(ConfigError):
        engine.reload()
    assert (engine.digest, engine.decide(make_input())) == (before, ALLOW_FULL)


def test_digest_is_stable_hex_sha256(policy_dir: Path, engine: RegoPolicyEngine) -> None:
    again = RegoPolicyEngine.from_directory(policy_dir).digest
    assert engine.digest == again
    assert len(again) == 64 and int(again, 16) >= 0


def test_digest_changes_with_data_rego_and_layout(tmp_path: Path) -> None:
    base = write_policy_dir(tmp_path / "a")
    digests = {RegoPolicyEngine.from_directory(base).digest}
    data = rule_table_data()
    data["bxnode"]["agreements"][0]["daily_quota"] = 1001
    digests.add(RegoPolicyEngine.from_directory(write_policy_dir(tmp_path / "b", data)).digest)
    c = write_policy_dir(tmp_path / "c")
    with (c / "bxnode" / "lookup.rego").open("a") as f:
        f.write("\n# a comment\n")
    digests.add(RegoPolicyEngine.from_directory(c).digest)
    d = write_policy_dir(tmp_path / "d")
    (d / "bxnode" / "lookup.rego").rename(d / "lookup.rego")
    digests.add(RegoPolicyEngine.from_directory(d).digest)
    assert len(digests) == 4


def test_digest_ignores_files_that_are_not_loaded(policy_dir: Path,
                                                  engine: RegoPolicyEngine) -> None:
    (policy_dir / "README.md").write_text("notes")
    (policy_dir / "other.json").write_text("{}")
    assert RegoPolicyEngine.from_directory(policy_dir).digest == engine.digest
