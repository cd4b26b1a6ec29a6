"""Where the node's signing key lives: a key file, or a PKCS#11 token (README "Hardware keys").

``[keys]`` in node.toml::

    signing_key = "signing.key"                         # a 0600 file holding the seed, or
    signing_key = "pkcs11:token=bxnode;object=signing-2026"   # RFC 7512
    pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so"   # with pkcs11: only, required
    pkcs11_pin_env = "BXNODE_PKCS11_PIN"                # the PIN from this variable, or
    pkcs11_pin_file = "token.pin"                       # from this 0600 file (exactly one)

:func:`parse_keys` turns the section into a :data:`SigningKeyRef` when the configuration is
loaded (a URI that does not parse, a missing module or PIN source, a ``pkcs11_*`` key beside
a key file: one-line errors); :func:`load_signer` opens it as a
:class:`~node.core.signer.Signer` when a command needs to sign.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.core.errors import ConfigError
from node.core.signer import SeedSigner, Signer
from node.keys.ref import Pkcs11Key
from node.keys.uri import Pkcs11Uri, is_pkcs11_uri, parse_pkcs11_uri

__all__ = ["PKCS11_KEYS", "Pkcs11Key", "Pkcs11Uri", "SigningKeyRef", "load_signer",
           "parse_keys"]

#: The [keys] settings that belong to a pkcs11: signing_key.
PKCS11_KEYS = ("pkcs11_module", "pkcs11_pin_env", "pkcs11_pin_file")


#: ``[keys] signing_key`` as configured: a key file or a key in a token.
SigningKeyRef = Path | Pkcs11Key


def parse_keys(root: Path, section: dict[str, Any]) -> SigningKeyRef:
    """``[keys]`` (already checked for unknown keys and types by node/config_schema.py)."""
    text = str(section.get("signing_key", "signing.key"))
    given = [k for k in PKCS11_KEYS if k in section]
    if not is_pkcs11_uri(text):
        if given:
            raise ConfigError(f"config: [keys] {given[0]} is only for a pkcs11: signing_key",
                              reason="bad_config")
        return (root / text).resolve()
    uri = parse_pkcs11_uri(text)
    module = section.get("pkcs11_module")
    if not module:
        raise ConfigError("config: a pkcs11: signing_key needs [keys] pkcs11_module (the "
                          "token's PKCS#11 library)", reason="bad_config")
    pin_env = section.get("pkcs11_pin_env")
    if pin_env is not None and (not pin_env or "=" in pin_env):
        raise ConfigError("config: [keys] pkcs11_pin_env must be an environment variable name",
                          reason="bad_config")
    pin_file = section.get("pkcs11_pin_file")
    return Pkcs11Key(uri=uri, module=root / module, pin_env=pin_env,  # symlinks kept
                     pin_file=(root / pin_file).resolve() if pin_file else None)


def load_signer(ref: SigningKeyRef) -> Signer:
    """Open the configured signing key: a key file's seed, or the token's key."""
    if isinstance(ref, Path):
        from node.federation.pki import load_signing_key

        return SeedSigner(seed=bytes(load_signing_key(ref)))
    from node.keys.pkcs11 import Pkcs11Signer

    return Pkcs11Signer.open(ref)
