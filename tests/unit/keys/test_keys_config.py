"""[keys] in node.toml: a key file or a pkcs11: URI with its module and PIN source; every
mistake is a one-line error naming the key (no token needed: nothing is opened here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import load_config
from node.core.errors import ConfigError
from node.keys import Pkcs11Key

URI = "pkcs11:token=bxnode;object=signing-2026"


def _node(tmp_path: Path, keys: str) -> Path:
    (tmp_path / "node.toml").write_text(
        f'[node]\nid = "KAZ-BS"\ncountry = "KAZ"\n\n[keys]\n{keys}\n', encoding="utf-8")
    return tmp_path


def test_a_key_file_is_a_path_under_the_node_directory(tmp_path: Path) -> None:
    cfg = load_config(_node(tmp_path, 'signing_key = "keys/signing.key"'))
    assert cfg.signing_key == (tmp_path / "keys" / "signing.key").resolve()
    assert cfg.secret_paths()[0] == cfg.signing_key


def test_a_token_key_with_a_pin_file(tmp_path: Path) -> None:
    cfg = load_config(_node(tmp_path, f'signing_key = "{URI}"\n'
                                      'pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so"\n'
                                      'pkcs11_pin_file = "token.pin"'))
    key = cfg.signing_key
    assert isinstance(key, Pkcs11Key)
    assert (key.uri.token, key.uri.object, key.module, key.pin_env, key.pin_file) == (
        "bxnode", "signing-2026", Path("/usr/lib/softhsm/libsofthsm2.so"), None,
        (tmp_path / "token.pin").resolve())
    assert str(key) == URI
    assert cfg.secret_paths()[0] == (tmp_path / "token.pin").resolve()  # its mode is checked


def test_a_token_key_with_a_pin_variable(tmp_path: Path) -> None:
    cfg = load_config(_node(tmp_path, f'signing_key = "{URI}"\npkcs11_module = "lib.so"\n'
                                      'pkcs11_pin_env = "BXNODE_PKCS11_PIN"'))
    assert isinstance(cfg.signing_key, Pkcs11Key)
    assert (cfg.signing_key.pin_env, cfg.signing_key.pin_file,
            cfg.signing_key.module) == ("BXNODE_PKCS11_PIN", None, (tmp_path / "lib.so"))


@pytest.mark.parametrize(("keys", "message", "reason"), [
    (f'signing_key = "{URI}"\npkcs11_pin_env = "P"',
     "config: a pkcs11: signing_key needs [keys] pkcs11_module (the token's PKCS#11 library)",
     "bad_config"),
    (f'signing_key = "{URI}"\npkcs11_module = "m.so"',
     "config: a pkcs11: signing_key needs exactly one of [keys] pkcs11_pin_env and "
     "pkcs11_pin_file", "bad_config"),
    (f'signing_key = "{URI}"\npkcs11_module = "m.so"\npkcs11_pin_env = "P"\n'
     'pkcs11_pin_file = "f"',
     "config: a pkcs11: signing_key needs exactly one of [keys] pkcs11_pin_env and "
     "pkcs11_pin_file", "bad_config"),
    (f'signing_key = "{URI}"\npkcs11_module = "m.so"\npkcs11_pin_env = "A=B"',
     "config: [keys] pkcs11_pin_env must be an environment variable name", "bad_config"),
    ('signing_key = "signing.key"\npkcs11_pin_env = "P"',
     "config: [keys] pkcs11_pin_env is only for a pkcs11: signing_key", "bad_config"),
    (f'signing_key = "{URI}"\npkcs11_module = "m.so"\npkcs11_pin_fiel = "f"',
     "config: unknown key 'pkcs11_pin_fiel' in [keys] (did you mean 'pkcs11_pin_file'?)",
     "bad_config"),
    (f'signing_key = "{URI}"\npkcs11_module = 1\npkcs11_pin_env = "P"',
     "config: [keys] pkcs11_module must be str | null, not int", "bad_config"),
    ('signing_key = "pkcs11:token=bxnode;object=k?pin-value=1234"\npkcs11_module = "m.so"\n'
     'pkcs11_pin_env = "P"',
     "the PKCS#11 URI 'pkcs11:token=bxnode;object=k?pin-value=1234' holds a PIN: put it in "
     "the environment variable named by [keys] pkcs11_pin_env or the 0600 file named by "
     "pkcs11_pin_file", "bad_pkcs11_uri"),
])
def test_mistakes_are_one_line_errors(tmp_path: Path, keys: str, message: str,
                                      reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_node(tmp_path, keys))
    assert (str(err.value), err.value.reason) == (message, reason)
