"""``[metrics]``: a loopback address or a unix socket, never the peer port; typos are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import load_config
from node.core.errors import ConfigError
from node.observability.settings import MetricsSettings

ROOT = Path("/srv/node")


def parse(doc: object, listen: str = "0.0.0.0:50051") -> MetricsSettings | None:
    return MetricsSettings.parse(ROOT, doc, peer_listen=listen)


def test_absent_means_no_endpoint() -> None:
    assert parse(None) is None


@pytest.mark.parametrize(("address", "host", "port"), [
    ("127.0.0.1:9464", "127.0.0.1", 9464), ("127.0.0.2:0", "127.0.0.2", 0),
    ("[::1]:9464", "::1", 9464), ("localhost:65535", "localhost", 65535)])
def test_loopback_addresses(address: str, host: str, port: int) -> None:
    s = parse({"address": address})
    assert s is not None and (s.host, s.port, s.unix_path) == (host, port, None)


def test_a_unix_socket_is_relative_to_the_node_folder() -> None:
    s = parse({"address": "unix:metrics.sock"})
    assert s is not None and s.unix_path == ROOT / "metrics.sock" and s.host == ""
    assert s.label == "unix:/srv/node/metrics.sock"


@pytest.mark.parametrize(("doc", "message"), [
    ({"address": "0.0.0.0:9464"}, "is not a loopback address"),
    ({"address": "10.0.0.5:9464"}, "is not a loopback address"),
    ({"address": "metrics.example.gov:9464"}, "is not a loopback address"),
    ({"address": "127.0.0.1:50051"}, "metrics never share the peer port"),
    ({"address": "127.0.0.1"}, "must be host:port"),
    ({"address": "127.0.0.1:65536"}, "must be host:port"),
    ({"address": "127.0.0.1:-1"}, "must be host:port"),
    ({"address": ""}, "address is required"),
    ({}, "address is required"),
    ({"address": 9464}, "address is required"),
    ({"address": "unix:"}, "needs a path"),
    ({"address": "unix:" + "s" * 100}, "is longer than 96 characters"),
    ({"address": "127.0.0.1:9464", "port": 1}, "has no key 'port'"),
    ("127.0.0.1:9464", "must be a table"),
])
def test_refused(doc: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(doc)
    assert err.value.reason == "bad_config"
    assert str(err.value).startswith("config: [metrics] ") and message in str(err.value)


def test_each_worker_gets_its_own_port_or_socket() -> None:
    tcp = parse({"address": "127.0.0.1:9464"})
    unix = parse({"address": "unix:m.sock"})
    free = parse({"address": "127.0.0.1:0"})
    assert tcp is not None and unix is not None and free is not None
    assert [tcp.for_worker(i).port for i in range(3)] == [9464, 9465, 9466]
    assert [unix.for_worker(i).unix_path for i in range(3)] == [
        ROOT / "m.sock", ROOT / "m.sock.1", ROOT / "m.sock.2"]
    assert free.for_worker(5).port == 0
    with pytest.raises(ConfigError, match="worker 2 would need port 65537"):
        parse({"address": "127.0.0.1:65535"}).for_worker(2)  # type: ignore[union-attr]


def _node(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "node.toml").write_text(
        '[node]\nid = "KAZ-BS"\ncountry = "KAZ"\n[server]\nlisten = "127.0.0.1:7000"\n' + extra)
    return tmp_path


def test_node_toml_metrics_section(tmp_path: Path) -> None:
    assert load_config(_node(tmp_path, "")).metrics is None
    cfg = load_config(_node(tmp_path, '[metrics]\naddress = "127.0.0.1:9464"\n'))
    assert cfg.metrics is not None and cfg.metrics.port == 9464
    with pytest.raises(ConfigError, match="uses the peer port"):
        load_config(_node(tmp_path, '[metrics]\naddress = "127.0.0.1:7000"\n'))


@pytest.mark.parametrize(("extra", "message"), [
    ('[metrics]\naddres = "127.0.0.1:9464"\n',
     "config: unknown key 'addres' in [metrics] (did you mean 'address'?)"),
    ("[metrics]\naddress = 9464\n", "config: [metrics] address must be str, not int"),
    ('[metrcs]\naddress = "127.0.0.1:9464"\n',
     "config: unknown section [metrcs] (did you mean 'metrics'?)"),
])
def test_typos_are_errors(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_node(tmp_path, extra))
    assert str(err.value) == message
