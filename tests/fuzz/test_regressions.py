"""One test per parser bug the fuzzers found: the input, and the documented error it now gets.

Each of these raised something other than the parser's own error before its fix (named
in the test's docstring); the inputs are also in the corpus.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from node.core.errors import ConfigError
from tests.fuzz.keys import FIXTURES

NODE_TOML = (FIXTURES / "node.toml").read_text()


def _config(tmp_path: Path, text: str | bytes) -> ConfigError:
    from node.config import load_config

    (tmp_path / "node.toml").write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert err.value.reason == "bad_config"
    return err.value


@pytest.mark.parametrize(("text", "names"), [
    (NODE_TOML.replace("max_batch = 500", "max_batch = [500]"), "[limits] max_batch"),
    (NODE_TOML.replace("clock_skew_s = 120", "clock_skew_s = 1979-05-27"),
     "[limits] clock_skew_s"),
    (NODE_TOML.replace("max_batch = 500", "max_batch = inf"), "[limits] max_batch"),
    ("audit = 1\n" + NODE_TOML.replace("[audit]", "[audit-x]"), "[audit]"),
    ("storage = []\n" + NODE_TOML.replace("[storage]", "[storage-x]"), "[storage]"),
    (NODE_TOML.replace('key_file = "db.key"', "key_file = 5"), "key_file"),
    (NODE_TOML.replace('signing_key = "signing.key"', 'signing_key = "a\\u0000b"'),
     "keys.signing_key"),
])
def test_config_values_int_and_path_cannot_take(tmp_path: Path, text: str, names: str) -> None:
    """Was TypeError / OverflowError / AttributeError / ValueError out of load_config."""
    assert names in _config(tmp_path, text).message


def test_config_that_is_not_utf8(tmp_path: Path) -> None:
    """Was UnicodeDecodeError out of load_config."""
    assert "UTF-8" in _config(tmp_path, NODE_TOML.encode() + b"# \xff\n").message


def test_config_fixes_keep_what_was_accepted(tmp_path: Path) -> None:
    """A quoted number still converts as int() always did (the schema rework may refuse it)."""
    from node.config import load_config

    (tmp_path / "node.toml").write_text(NODE_TOML.replace("max_batch = 500", 'max_batch = "400"'))
    assert load_config(tmp_path).max_batch == 400
