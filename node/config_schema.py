"""The shape of ``node.toml``: every section and key, with its TOML type (msgspec).

:func:`check_schema` runs before anything reads a value: an unknown section or key
(``[polcy]``, ``[audit] batch_mss``) and a value of the wrong type (``dev_mode =
"false"``, ``max_batch = "500"``) are refused with one line naming the key, so a typo is an
error and never a default.  Ranges, paths and cross-key rules are checked where each
section is parsed (node/config.py and the settings of each capability).  The sections
whose own parser already refuses unknown keys and wrong types with a precise message
(``[storage]``, ``[local]``, ``[retention]``, ``[console]``) are only required to be tables here.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import msgspec

from node.core.errors import ConfigError

__all__ = ["SECTIONS", "check_schema"]


class _Section(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class Node(_Section):
    id: str
    country: str
    agency: str = ""
    contact: str = ""
    dev_mode: bool = False


class Server(_Section):
    listen: str = "0.0.0.0:50051"
    processing_slots: int = 16  # node/server/fair.py: 1..4096
    max_concurrent_streams: int = 32  # node/server/limits.py: 1..1024 per connection
    rate_wait_ms: int = 1000  # node/server/limits.py: 0..10000, 0 refuses at once


class Limits(_Section):
    max_batch: int = 500
    clock_skew_s: int = 120


class Keys(_Section):
    signing_key: str = "signing.key"  # a key file, or a pkcs11: URI (node/keys/)
    pkcs11_module: str | None = None
    pkcs11_pin_env: str | None = None
    pkcs11_pin_file: str | None = None


class Tls(_Section):
    cert: str = "tls.crt"
    key: str = "tls.key"
    ca: str = "ca.crt"


class Federation(_Section):
    members: str = "members.json"
    registry: str = ""
    refresh_s: int = 60
    expiry_grace_s: int = 3600


class Policy(_Section):
    dir: str = "policies"
    opa_url: str = ""
    cache: bool = True


class Client(_Section):
    operator: str = ""


class Audit(_Section):
    batch_max: int = 256
    batch_ms: int = 2
    retention_days: int = 1095
    witness_interval_s: int = 60
    witness_quorum: int = 1
    witnesses: list[str] | None = None


class Followup(_Section):
    deadline_hours: float = 12.0


class Metrics(_Section):  # node/observability/settings.py: loopback or unix:PATH only
    address: str


class NodeToml(msgspec.Struct, forbid_unknown_fields=True):
    node: Node
    server: Server | None = None
    limits: Limits | None = None
    keys: Keys | None = None
    tls: Tls | None = None
    federation: Federation | None = None
    policy: Policy | None = None
    client: Client | None = None
    audit: Audit | None = None
    followup: Followup | None = None
    metrics: Metrics | None = None
    # Checked in full by their own parsers (unknown keys, types, ranges):
    storage: dict[str, Any] | None = None
    local: dict[str, Any] | None = None
    retention: dict[str, Any] | None = None
    console: dict[str, Any] | None = None  # node/web/settings.py


#: Every section node.toml may hold.
SECTIONS: tuple[str, ...] = tuple(NodeToml.__struct_fields__)

_PATH = re.compile(r"\$((?:\.[A-Za-z0-9_]+|\[\d+\])*)")


def _where(path: str) -> str:
    """``$.audit.batch_ms`` -> ``[audit] batch_ms``; ``$.node`` -> ``[node]``."""
    parts = [p for p in re.split(r"\.|(?=\[)", path.lstrip("$")) if p]
    if not parts:
        return "the file"
    section, rest = parts[0], "".join(("" if p.startswith("[") else ".") + p
                                      for p in parts[1:]).lstrip(".")
    return f"[{section}] {rest}".rstrip() if rest else f"[{section}]"


def _known(path: str) -> list[str]:
    parts = [p for p in path.lstrip("$").split(".") if p]
    if not parts:
        return list(SECTIONS)
    field_type = NodeToml.__annotations__.get(parts[0], "")
    cls = globals().get(str(field_type).split(" ")[0])
    return list(getattr(cls, "__struct_fields__", ()))


def check_schema(doc: dict[str, Any]) -> None:
    """Refuse unknown sections and keys and values of the wrong TOML type."""
    try:
        msgspec.convert(doc, NodeToml, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = _PATH.search(text)
        path = m.group(0) if m else "$"
        unknown = re.match(r"Object contains unknown field `([^`]+)`", text)
        if unknown:
            name = unknown.group(1)
            close = difflib.get_close_matches(name, _known(path), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            what = (f"section [{name}]" if path == "$"
                    else f"key {name!r} in {_where(path)}")
            raise ConfigError(f"config: unknown {what}{hint}", reason="bad_config") from None
        missing = re.match(r"Object missing required field `([^`]+)`", text)
        if missing:
            raise ConfigError(f"config: {_where(path)} {missing.group(1)} is required",
                              reason="bad_config") from None
        expected = re.match(r"Expected `([^`]+)`, got `([^`]+)`", text)
        if expected:
            raise ConfigError(f"config: {_where(path)} must be {expected.group(1)}, not "
                              f"{expected.group(2)}", reason="bad_config") from None
        raise ConfigError(f"config: {_where(path)}: {text.split(' - at ')[0]}",
                          reason="bad_config") from None
