"""One test per parser bug the fuzzers found: the input, and the documented error it now gets.

Each of these raised something other than the parser's own error before its fix (named
in the test's docstring); the inputs are also in the corpus.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest

from node.audit.bundle import BundleError, verify_bundle
from node.audit.log import body_commitment, decode_leaf, encode_leaf
from node.core.errors import ConfigError
from node.crossings.importer import parse_crossings_file
from node.federation.registry import RegistryError, parse_registry
from node.watchlist.importer import parse_file
from tests.fuzz.keys import DEMO, DEV, FIXTURES, OWN_BCPS, TODAY, directory
from tests.fuzz.seeds import audit_log_material

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


def test_a_quoted_number_is_refused_naming_the_key(tmp_path: Path) -> None:
    """The configuration schema (node/config_schema.py) refuses wrong TOML types."""
    from node.config import load_config
    from node.core.errors import ConfigError

    (tmp_path / "node.toml").write_text(NODE_TOML.replace("max_batch = 500", 'max_batch = "400"'))
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert err.value.message == "config: [limits] max_batch must be int, not str"


# --- proof bundles (node/audit/bundle.py) ----------------------------------------------------

@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    """A valid bundle for entry 2 of a real KAZ-BS log (dev key), as ``audit prove`` writes."""
    material = audit_log_material(random.Random(1))
    doc: dict[str, Any] = json.loads(material.bundles[1])
    assert verify_bundle(material.bundles[1], directory=directory()).seq == 2
    return doc


def _refused(doc: dict[str, Any] | bytes) -> BundleError:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(BundleError) as err:
        verify_bundle(data, directory=directory())
    return err.value


def test_bundle_nested_too_deep() -> None:
    """Was RecursionError out of json.loads."""
    _refused(b"[" * 100_000)


def test_bundle_checkpoint_with_a_lone_surrogate(bundle: dict[str, Any]) -> None:
    """Was UnicodeEncodeError: JSON's \\ud800 escape gives a str that is not UTF-8."""
    _refused({**bundle, "checkpoint": "\ud800" + bundle["checkpoint"]})


def test_bundle_inclusion_that_is_not_a_list(bundle: dict[str, Any]) -> None:
    """Was TypeError ('int' object is not iterable)."""
    assert "inclusion" in _refused({**bundle, "inclusion": 5}).message


def test_bundle_body_that_matches_its_leaf_but_is_not_json(bundle: dict[str, Any]) -> None:
    """Was JSONDecodeError: the body is checked against the leaf before the leaf is proven
    included, so a made-up leaf committing to any bytes reached json.loads."""
    leaf = decode_leaf(base64.b64decode(bundle["leaf"]))
    salt, body = bytes(32), b"{not json"
    forged = encode_leaf(leaf.seq, leaf.time_ms, body_commitment(salt, body))
    assert "not JSON" in _refused({**bundle, "leaf": base64.b64encode(forged).decode(),
                                   "salt": base64.b64encode(salt).decode(),
                                   "body": base64.b64encode(body).decode()}).message


# --- the federation registry (node/federation/registry.py) ----------------------------------

@pytest.mark.parametrize("where", ["signature", "governance key"])
def test_registry_base64_with_a_character_outside_ascii(where: str) -> None:
    """Was ValueError ("string argument should contain only ASCII characters") out of
    base64.b64decode, which raises binascii.Error only for bad ASCII input."""
    doc = json.loads((DEV / "registry.json").read_text())
    if where == "signature":
        doc["signatures"][0]["sig"] = "é" + doc["signatures"][0]["sig"][1:]
    else:
        doc["signed"]["states"][0]["governance_keys"][0] = "é" * 44
    with pytest.raises(RegistryError) as err:
        parse_registry(json.dumps(doc).encode())
    assert err.value.reason == "malformed" and "base64" in err.value.message


# --- CSV / JSON Lines imports (node/importing.py) --------------------------------------------

def test_jsonl_line_nested_too_deep_is_a_bad_line_not_a_crash(tmp_path: Path) -> None:
    """Was RecursionError out of json.loads, ending the whole import with a traceback."""
    path = tmp_path / "w.jsonl"
    good = (DEMO / "kgz-watchlist.jsonl").read_bytes()
    path.write_bytes(good + b"[" * 100_000 + b"\n")
    result = parse_file(path, fmt="jsonl", today=TODAY)
    assert result.error_count == 1 and result.errors[0][1] == "not valid JSON"
    crossings = tmp_path / "c.jsonl"
    crossings.write_bytes(b"[" * 100_000 + b"\n")
    assert parse_crossings_file(crossings, own_bcps=OWN_BCPS).errors == [(1, "not valid JSON")]


def test_jsonl_lone_surrogate_is_a_bad_line_not_a_database_crash(tmp_path: Path) -> None:
    """Was UnicodeEncodeError out of the database insert: a ``\\ud800`` escape in a free-text
    field (``contact``) passed every check and reached SQLite, which refuses non-UTF-8."""
    from node.store.sqlcipher import Store
    from node.watchlist.importer import import_file

    path = tmp_path / "w.jsonl"
    path.write_text('{"kind": "document", "owner_ref": "K-1", "action": "inform", '
                    '"expires": "2036-02-28", "number": "AC7654321", "issuing_state": "KGZ", '
                    '"doc_type": "P", "contact": "desk \\ud800"}\n'
                    '{"kind": "document", "owner_ref": "K-2", "action": "inform", '
                    '"expires": "2036-02-28", "number": "AC7654322", "issuing_state": "KGZ", '
                    '"doc_type": "P", "contact": "desk \\u00e9 \\ud83d\\ude00"}\n')
    store = Store.open(tmp_path / "n.db", bytes(32), create=True)
    try:
        result = import_file(path, store=store, fmt="jsonl", today=TODAY)
    finally:
        store.close()
    assert not result.written and result.error_count == 1
    assert result.errors[0][0] == 1 and "\\ud800" in result.errors[0][1]
