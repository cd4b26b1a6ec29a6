"""``[keys] signing_key = "pkcs11:..."`` as configured: which key, which module, which PIN.

Pure data (no python-pkcs11 import): node/config.py builds it when node.toml is loaded,
node/keys/pkcs11.py opens it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from node.core.errors import ConfigError
from node.keys.uri import Pkcs11Uri

__all__ = ["Pkcs11Key"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pkcs11Key:
    """``[keys] signing_key = "pkcs11:..."`` with the module and where the PIN comes from."""

    uri: Pkcs11Uri
    module: Path
    pin_env: str | None = None
    pin_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.pin_env is None) == (self.pin_file is None):
            raise ConfigError("config: a pkcs11: signing_key needs exactly one of [keys] "
                              "pkcs11_pin_env and pkcs11_pin_file", reason="bad_config")

    def __str__(self) -> str:
        return self.uri.text
