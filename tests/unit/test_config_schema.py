"""node.toml's schema (issue 12): a typo or a wrong type is an error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.cli.main import main as bxnode
from node.config import load_config
from node.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("cfg") / "kaz"
    assert bxnode(["init", "--node-dir", str(d), "--node-id", "KAZ-BS", "--country", "KAZ",
                   "--dev", "--dev-keys", str(ROOT / "keys" / "dev" / "kaz"),
                   "--listen", "127.0.0.1:0"]) == 0
    return d, (d / "node.toml").read_text()


@pytest.mark.parametrize(("edit", "message"), [
    (("dev_mode = true", 'dev_mode = "false"'), "config: [node] dev_mode must be bool, not str"),
    (("cache = true", 'cache = "false"'), "config: [policy] cache must be bool, not str"),
    (("max_batch = 500", 'max_batch = "500"'), "config: [limits] max_batch must be int, not str"),
    (("batch_ms = 2", "batch_mss = 2"),
     "config: unknown key 'batch_mss' in [audit] (did you mean 'batch_ms'?)"),
    (("[policy]", "[polcy]"), "config: unknown section [polcy] (did you mean 'policy'?)"),
    (("[audit]", "[audti]"), "config: unknown section [audti] (did you mean 'audit'?)"),
    (("batch_max = 256", "batch_max = 256.5"), "config: [audit] batch_max must be int, not float"),
    (("witness_quorum = 1", 'witnesses = "KGZ-BS"'),
     "config: [audit] witnesses must be array | null, not str"),
    (("# processing_slots = 16", "processing_slots = 0"),
     "config: [server] processing_slots must be 1..4096"),
    (("# processing_slots = 16", "processing_slots = 4097"),
     "config: [server] processing_slots must be 1..4096"),
    (("# processing_slots = 16", 'processing_slots = "16"'),
     "config: [server] processing_slots must be int, not str"),
    (("# processing_slots = 16", "processing_slots = true"),
     "config: [server] processing_slots must be int, not bool"),
    (("# max_concurrent_streams = 32", "max_concurrent_streams = 0"),
     "config: [server] max_concurrent_streams must be 1..1024"),
    (("# max_concurrent_streams = 32", "max_concurrent_streams = 1025"),
     "config: [server] max_concurrent_streams must be 1..1024"),
    (("# max_concurrent_streams = 32", "max_concurrent_streams = 1.5"),
     "config: [server] max_concurrent_streams must be int, not float"),
    (("# max_concurrent_streams = 32", "max_concurrent_stream = 32"),
     "config: unknown key 'max_concurrent_stream' in [server] (did you mean "
     "'max_concurrent_streams'?)"),
    (("# rate_wait_ms = 1000", "rate_wait_ms = -1"),
     "config: [server] rate_wait_ms must be 0..10000"),
    (("# rate_wait_ms = 1000", "rate_wait_ms = 10001"),
     "config: [server] rate_wait_ms must be 0..10000"),
    (("# rate_wait_ms = 1000", 'rate_wait_ms = "1000"'),
     "config: [server] rate_wait_ms must be int, not str"),
    (("# rate_wait_ms = 1000", "rate_wait_ms = false"),
     "config: [server] rate_wait_ms must be int, not bool"),
    (("# rate_wait_ms = 1000", "rate_wait_s = 1"),
     "config: unknown key 'rate_wait_s' in [server] (did you mean 'rate_wait_ms'?)"),
    (("# processing_slots = 16", "processing_slot = 16"),
     "config: unknown key 'processing_slot' in [server] (did you mean 'processing_slots'?)"),
])
def test_a_typo_or_a_wrong_type_is_refused_naming_the_key(base: tuple[Path, str],
                                                          edit: tuple[str, str],
                                                          message: str) -> None:
    d, text = base
    assert edit[0] in text
    (d / "node.toml").write_text(text.replace(edit[0], edit[1], 1))
    try:
        with pytest.raises(ConfigError) as err:
            load_config(d)
        assert (err.value.reason, err.value.message) == ("bad_config", message)
    finally:
        (d / "node.toml").write_text(text)


def test_the_file_bxnode_init_writes_passes_the_schema(base: tuple[Path, str]) -> None:
    d, _ = base
    assert load_config(d).dev_mode is True
    assert load_config(d).processing_slots == 16  # node/server/fair.py DEFAULT_SLOTS
    assert load_config(d).max_concurrent_streams == 32  # node/server/limits.py
    assert load_config(d).rate_wait_ms == 1000  # node/server/limits.py DEFAULT_RATE_WAIT_MS


def test_rate_wait_ms_zero_is_allowed_and_refuses_at_once(base: tuple[Path, str]) -> None:
    d, text = base
    (d / "node.toml").write_text(text.replace("# rate_wait_ms = 1000", "rate_wait_ms = 0", 1))
    try:
        assert load_config(d).rate_wait_ms == 0
    finally:
        (d / "node.toml").write_text(text)


def test_processing_slots_up_to_4096_is_taken(base: tuple[Path, str]) -> None:
    d, text = base
    (d / "node.toml").write_text(text.replace("# processing_slots = 16",
                                              "processing_slots = 4096", 1))
    try:
        assert load_config(d).processing_slots == 4096
    finally:
        (d / "node.toml").write_text(text)


def test_the_crossings_settings_come_from_the_file_loaded(base: tuple[Path, str],
                                                          tmp_path: Path) -> None:
    """The capability reads the configuration as loaded, not node.toml from a fixed path."""
    from node.crossings.settings import load_settings

    d, text = base
    (d / "node.toml").write_text(text + "\n[followup]\ndeadline_hours = 6\n")
    try:
        cfg = load_config(d)
    finally:
        (d / "node.toml").write_text(text)  # the file on disk changes afterwards ...
    assert load_settings(cfg).followup_deadline_ms == 6 * 3_600_000  # ... and counts not


def test_the_production_example_passes_the_schema() -> None:
    import tomllib

    from node.config_schema import check_schema

    check_schema(tomllib.loads((ROOT / "deployments" / "node.production.toml").read_text()))
