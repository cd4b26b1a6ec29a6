"""Which directory a node uses: the signed registry when configured, else the members file."""

from __future__ import annotations

from collections.abc import Callable

from node.config import NodeConfig
from node.core.errors import ConfigError
from node.core.members import MemberDirectory
from node.federation.members_file import load_members
from node.federation.registry import Registry
from node.federation.registry_directory import RegistryDirectory
from node.federation.registry_keeper import RegistryKeeper, load_anchor
from node.store.db import Database as Store

__all__ = ["check_self_listed", "load_directory"]


def load_directory(cfg: NodeConfig, *, store: Store | None,
                   clock_ms: Callable[[], int]) -> MemberDirectory:
    """The directory for a client (``bxnode query``): the trusted registry version if any."""
    if cfg.registry is None:
        return load_members(cfg.members)
    reg = (RegistryKeeper.trusted_version(store=store, path=cfg.registry) if store is not None
           else load_anchor(cfg.registry))
    return RegistryDirectory(registry=reg, clock_ms=clock_ms,
                             expiry_grace_ms=cfg.registry_expiry_grace_s * 1000)


def check_self_listed(reg: Registry, *, node_id: str, key_id: str,
                      tls_fingerprint: str | None) -> None:
    """Refuse to start a node the registry does not list (with this key and certificate)."""
    me = reg.node(node_id)
    if me is None:
        raise ConfigError(f"node {node_id} is not in the federation registry "
                          f"(version {reg.version})", reason="self_not_listed")
    if reg.is_revoked("node_id", node_id):
        raise ConfigError(f"node {node_id} is revoked in the federation registry "
                          f"(version {reg.version})", reason="self_revoked")
    if key_id not in {k.key_id for k in me.signing_keys}:
        raise ConfigError("this node's signing key is not listed for it in the registry",
                          reason="key_not_registered")
    if tls_fingerprint is not None and tls_fingerprint not in {c.sha256 for c in me.tls_certs}:
        raise ConfigError("this node's TLS certificate is not listed for it in the registry",
                          reason="tls_not_registered")
