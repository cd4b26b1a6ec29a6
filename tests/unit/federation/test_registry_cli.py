"""``bxnode registry`` on files (no node) and the ``[federation]`` config keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.cli.main import main
from node.config import load_config, render_config
from node.core.errors import ConfigError
from node.store.keys import write_private
from tests.unit.federation._support import World


def _files(tmp: Path) -> tuple[World, Path, dict[str, Path]]:
    w = World()
    v1 = w.sign(w.signed(expires="2099-01-01T00:00:00Z"), "KAZ", "KGZ", "UZB")
    (tmp / "v1.json").write_bytes(v1.to_bytes())
    keys = {}
    for c, k in w.gov.items():
        keys[c] = tmp / f"{c}.key"
        write_private(keys[c], bytes(k).hex() + "\n")
    return w, tmp / "v1.json", keys


def test_propose_sign_verify_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, v1, keys = _files(tmp_path)
    draft = tmp_path / "v2.json"
    assert main(["registry", "propose", "--current", str(v1), "--revoke", "UZB-BS",
                 "--node-dir", str(tmp_path), "--out", str(draft)]) == 0
    assert main(["registry", "verify", str(draft), "--trusted", str(v1)]) == 1
    assert "unsigned" in capsys.readouterr().err
    for c in ("KAZ", "KGZ"):
        assert main(["registry", "sign", "--key", str(keys[c]), str(draft)]) == 0
    assert main(["registry", "verify", str(draft), "--trusted", str(v1)]) == 1
    assert "(under_signed)" in capsys.readouterr().err
    assert main(["registry", "sign", "--key", str(keys["TKM"]), str(draft)]) == 0
    assert main(["registry", "sign", "--key", str(keys["TKM"]), str(draft)]) == 0  # idempotent
    assert len(json.loads(draft.read_text())["signatures"]) == 3
    assert main(["registry", "verify", str(draft), "--trusted", str(v1), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["ok"] is True
    assert main(["registry", "show", str(draft), "--against", str(v1)]) == 0
    assert "+ REVOKED node_id UZB-BS" in capsys.readouterr().out
    assert main(["registry", "verify", str(v1), "--trusted", str(draft)]) == 1
    assert "(rollback)" in capsys.readouterr().err


def test_merge_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, v1, keys = _files(tmp_path)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["registry", "propose", "--current", str(v1), "--expires-in-days", "9",
                 "--node-dir", str(tmp_path), "--out", str(a)]) == 0
    b.write_bytes(a.read_bytes())
    assert main(["registry", "sign", "--key", str(keys["KAZ"]), str(a)]) == 0
    for c in ("KGZ", "UZB"):
        assert main(["registry", "sign", "--key", str(keys[c]), str(b)]) == 0
    assert main(["registry", "merge", str(a), str(b)]) == 0
    assert main(["registry", "verify", str(a), "--trusted", str(v1)]) == 0
    (tmp_path / "bad.json").write_text("{")
    assert main(["registry", "verify", str(tmp_path / "bad.json")]) == 1
    assert "(malformed)" in capsys.readouterr().err
    assert main(["registry", "propose", "--current", str(v1), "--node-dir",
                 str(tmp_path)]) == 1  # nothing to propose
    assert main(["registry", "propose", "--current", str(v1), "--node-dir", str(tmp_path),
                 "--rotate-key", "KGZ-BS", "--new-key", "not-a-key",
                 "--old-key-until", "2030-01-01T00:00:00Z"]) == 1
    assert main(["registry", "sign", "--key", str(Path("keys/dev/governance/kaz.key")
                                                   .resolve()), str(a)]) == 1  # dev, no --dev


def test_federation_config_keys(tmp_path: Path) -> None:
    text = render_config(node_id="KAZ-BS", country="KAZ", agency="a", contact="c",
                         listen="127.0.0.1:0", dev_mode=False, members="members.json",
                         policy_dir="policies", operator="o", registry="registry.json")
    (tmp_path / "node.toml").write_text(text)
    cfg = load_config(tmp_path)
    assert cfg.registry == (tmp_path / "registry.json").resolve()
    assert (cfg.registry_refresh_s, cfg.registry_expiry_grace_s) == (60, 3600)
    (tmp_path / "node.toml").write_text(text.replace("refresh_s = 60", "refresh_s = 0"))
    with pytest.raises(ConfigError):
        load_config(tmp_path)
    plain = text.split("\nregistry =")[0] + "\n" + text.split("expiry_grace_s = 3600")[1]
    (tmp_path / "node.toml").write_text(plain)
    assert load_config(tmp_path).registry is None
