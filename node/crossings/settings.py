"""Settings of the crossings and follow-up capabilities, read from ``node.toml``::

    [local]
    listen = "unix:local.sock"   # local-only listener (LocalCrossingService); default shown.
                                 # "unix:PATH" (relative to the node folder) or a loopback
                                 # "127.0.0.1:PORT"; "off" serves none.
    [followup]
    deadline_hours = 12          # a follow-up not decided by then is marked overdue

:mod:`node.config` parses the file once (and its schema refuses unknown keys and wrong
types); the capability checks its own values here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog

from node.config import NodeConfig
from node.core.errors import ConfigError

__all__ = ["DEFAULT_DEADLINE_HOURS", "CapabilitySettings", "load_settings", "parse_local_listen"]

DEFAULT_DEADLINE_HOURS = 12.0  # as SIRENE bureaux answer hits
_MAX_DEADLINE_HOURS = 30 * 24
_UNIX_PATH_MAX = 100  # sockaddr_un.sun_path is 104-108 bytes; keep a margin
_LOOPBACK = ("127.0.0.1:", "localhost:", "[::1]:")
log = structlog.get_logger("bxnode.crossings")


@dataclass(frozen=True, slots=True)
class CapabilitySettings:
    local_listen: str | None
    """A gRPC address: ``unix:/abs/path`` or a loopback host:port; None serves none."""
    followup_deadline_ms: int


def parse_local_listen(value: str, root: Path) -> str | None:
    """Resolve ``[local] listen``; refuse anything a peer could reach."""
    value = value.strip()
    if value == "off":
        return None
    if value.startswith("unix:"):
        path = (root / value[len("unix:"):]).resolve()
        if len(str(path)) > _UNIX_PATH_MAX:
            raise ConfigError(f"config: [local] listen socket path {path} is longer than "
                              f"{_UNIX_PATH_MAX} characters; choose a shorter path",
                              reason="bad_config")
        return f"unix:{path}"
    if value.startswith(_LOOPBACK) and value.rsplit(":", 1)[1].isdigit():
        return value
    raise ConfigError("config: [local] listen must be unix:PATH, a loopback address "
                      "(127.0.0.1:PORT) or off: the local service must never face peers",
                      reason="bad_config")


def load_settings(cfg: NodeConfig) -> CapabilitySettings:
    """From the configuration as loaded (node.config parsed the file once)."""
    local = cfg.local_listen
    hours = cfg.followup_deadline_hours
    if (not isinstance(hours, int | float) or isinstance(hours, bool)
            or not 0 < hours <= _MAX_DEADLINE_HOURS):
        raise ConfigError(f"config: [followup] deadline_hours must be a number in "
                          f"(0, {_MAX_DEADLINE_HOURS}]", reason="bad_config")
    if local is None:  # the default: a socket in the node folder (mode 0700)
        try:
            listen = parse_local_listen("unix:local.sock", cfg.root)
        except ConfigError:
            log.warning("local_listener_off", note="the node folder's path is too long for "
                        "a unix socket; set [local] listen to serve the local service")
            listen = None
    elif isinstance(local, str):
        listen = parse_local_listen(local, cfg.root)
    else:
        raise ConfigError("config: [local] listen must be text", reason="bad_config")
    return CapabilitySettings(local_listen=listen,
                              followup_deadline_ms=round(hours * 3_600_000))
