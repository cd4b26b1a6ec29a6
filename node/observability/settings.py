"""``[metrics]`` in node.toml: where the Prometheus endpoint listens (off when absent).

::

    [metrics]
    address = "127.0.0.1:9464"      # or "unix:metrics.sock" (relative to the node folder)

Only this machine: a loopback address (``127.0.0.0/8``, ``[::1]``, ``localhost``) or a unix
socket, never the peer port (the endpoint has no TLS and no client authentication; a
scraper elsewhere reaches it through a local agent or, in Kubernetes, a sidecar in the
pod).  Port 0 takes a free port (written to ``metrics.port`` in the node folder).  With
``serve --workers N`` worker I listens on the port plus I (unix: the path with ``.I``
appended, for I > 0): each worker is a target of its own; sum them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from node.core.errors import ConfigError

__all__ = ["MetricsSettings"]

_MAX_UNIX_PATH = 100


def _bad(message: str) -> ConfigError:
    return ConfigError(f"config: [metrics] {message}", reason="bad_config")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port_of(listen: str) -> int | None:
    tail = listen.rpartition(":")[2]
    return int(tail) if tail.isdigit() else None


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    address: str                     # as written
    host: str = ""                   # TCP: a loopback host ("" for a unix socket)
    port: int = 0
    unix_path: Path | None = None

    @property
    def label(self) -> str:
        """Where it listens, for log lines and errors."""
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, root: Path, doc: Any, *, peer_listen: str) -> MetricsSettings | None:
        """The ``[metrics]`` table (None: no endpoint).  Raises ConfigError naming the key."""
        if doc is None:
            return None
        if not isinstance(doc, dict):
            raise _bad("must be a table")
        unknown = sorted(set(doc) - {"address"})
        if unknown:
            raise _bad(f"has no key {unknown[0]!r}")
        address = doc.get("address")
        if not isinstance(address, str) or not address.strip():
            raise _bad('address is required: "127.0.0.1:9464" or "unix:metrics.sock"')
        address = address.strip()
        if address.startswith("unix:"):
            name = address[len("unix:"):]
            if not name:
                raise _bad("address unix: needs a path")
            path = (root / name).resolve()
            if len(str(path)) > _MAX_UNIX_PATH - 4:  # room for a worker's ".NN"
                raise _bad(f"address: the socket path {path} is longer than "
                           f"{_MAX_UNIX_PATH - 4} characters; choose a shorter one")
            return cls(address=address, unix_path=path)
        host, sep, port_text = address.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise _bad(f"address {address!r} must be host:port (port 0..65535) or unix:PATH")
        if not _loopback(host):
            raise _bad(f"address {address!r} is not a loopback address: the metrics "
                       "endpoint has no TLS and no authentication, so it listens on this "
                       "machine only (127.0.0.1, [::1], localhost or a unix socket)")
        port = int(port_text)
        if port != 0 and port == _port_of(peer_listen):
            raise _bad(f"address {address!r} uses the peer port of [server] listen; "
                       "metrics never share the peer port")
        return cls(address=address, host=host, port=port)

    def for_worker(self, index: int) -> MetricsSettings:
        """Worker ``index`` of ``serve --workers``: port + index, or ``PATH.index``."""
        if index == 0:
            return self
        if self.unix_path is not None:
            return replace(self, unix_path=self.unix_path.with_name(
                f"{self.unix_path.name}.{index}"))
        if self.port == 0:
            return self
        if self.port + index > 65535:
            raise _bad(f"address {self.address!r}: worker {index} would need port "
                       f"{self.port + index}")
        return replace(self, port=self.port + index)
