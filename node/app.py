"""Assemble a node from its configuration: every component, read once at start-up."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from node.audit.log import MerkleAuditLog
from node.audit.sink import MerkleAuditSink
from node.config import NodeConfig
from node.core.envelope import key_id_for
from node.core.errors import ConfigError
from node.core.members import MemberDirectory, StaticDirectory
from node.core.metrics import NO_METRICS, Metrics
from node.core.signer import Signer
from node.federation.members_file import load_members
from node.federation.pki import TlsMaterial
from node.keys import load_signer
from node.policy import PolicyEngine, load_policy_engine
from node.responder import Responder, ResponderSettings
from node.store.db import Database
from node.store.exchange import SqlNonceLedger, SqlReceiptStore, SqlUsageLedger
from node.store.open import open_database
from node.store.watchlist import SqlWatchlistStore, sibling_store
from node.watchlist.handler import LookupHandler
from node.watchlist.lookup import Watchlist
from node.watchlist.persons import default_matcher

if TYPE_CHECKING:
    from node.core.members import MemberDirectory
    from node.federation.registry_keeper import RegistryKeeper

__all__ = ["NodeRuntime", "now_ms", "open_store"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def load_policy(cfg: NodeConfig) -> PolicyEngine:
    """The configured engine, behind the decision cache unless ``[policy] cache = false``."""
    engine = load_policy_engine(policy_dir=cfg.policy_dir, opa_url=cfg.opa_url)
    if not cfg.policy_cache:
        return engine
    from node.policy.cache import CachingPolicyEngine

    return CachingPolicyEngine(inner=engine, policy_dir=cfg.policy_dir)


def _assemble(cfg: NodeConfig, store: Database, signing_key: Signer,
              directory: MemberDirectory
              ) -> tuple[PolicyEngine, Watchlist, Responder, LookupHandler]:
    """Policy, watchlist, responder and the lookup capability: the same for either kind of
    federation directory.  The pipeline gets its ports here, and nowhere else."""
    policy = load_policy(cfg)
    watchlist = Watchlist(store=SqlWatchlistStore(store), matcher=default_matcher(),
                          default_contact=cfg.contact,
                          open_reader=lambda: sibling_store(store))  # full rebuilds
    watchlist.reload(dt.datetime.now(dt.UTC).date())
    settings = ResponderSettings(node_id=cfg.node_id, max_batch=cfg.max_batch,
                                 clock_skew_ms=cfg.clock_skew_s * 1000)
    audit_log = MerkleAuditLog(store=store, node_id=cfg.node_id, signing_key=signing_key)
    responder = Responder(
        settings=settings, signing_key=signing_key, directory=directory, policy=policy,
        uow=store, nonces=SqlNonceLedger(store), receipts=SqlReceiptStore(store),
        audit=MerkleAuditSink(audit_log), audit_log=audit_log, clock_ms=now_ms)
    lookup = LookupHandler(settings=settings, key_id=responder.key_id, policy=policy,
                           usage=SqlUsageLedger(store), watchlist=watchlist)
    return policy, watchlist, responder, lookup


def open_signing_key(cfg: NodeConfig) -> Signer:
    """The node's signing key (node/keys).  A public development key (keys/dev) is known by
    its public key, so also once imported into a PKCS#11 token, where check_dev_keys cannot
    see it: refused outside dev_mode like a development key file."""
    from node.core.signer import signer_key_id
    from node.federation import _devkeys

    signer = load_signer(cfg.signing_key)
    kid = signer_key_id(signer)
    if not cfg.dev_mode and kid in (_devkeys.DEV_SIGNING_KEY_IDS
                                    | _devkeys.DEV_GOVERNANCE_KEY_IDS):
        raise ConfigError(f"the signing key is a public development key (key id {kid}); "
                          "it is refused outside development mode", reason="dev_keys_refused")
    return signer


def open_store(cfg: NodeConfig) -> Database:
    """The node's database, whichever backend ``[storage]`` names (SQLCipher or
    PostgreSQL)."""
    return open_database(cfg)


@dataclass
class NodeRuntime:
    cfg: NodeConfig
    store: Database
    signing_key: Signer
    directory: StaticDirectory | MemberDirectory
    policy: PolicyEngine
    watchlist: Watchlist
    responder: Responder
    lookup: LookupHandler
    registry: RegistryKeeper | None = None  # set when [federation] registry is configured
    #: Where the serving components report (node/core/metrics.py); off unless [metrics].
    metrics: Metrics = NO_METRICS

    @classmethod
    def load(cls, cfg: NodeConfig, *, with_tls: bool = True) -> NodeRuntime:
        if cfg.registry is not None:
            return cls._load_with_registry(cfg, with_tls=with_tls)
        signing_key = open_signing_key(cfg)
        directory = load_members(cfg.members)
        me = directory.member(cfg.node_id) if cfg.node_id in {
            m.node_id for m in directory.members()} else None
        if me is None:
            raise ConfigError(f"node {cfg.node_id} is not in the members file {cfg.members}",
                              reason="self_not_listed")
        kid = key_id_for(signing_key.public_key)
        if kid not in {k.key_id for k in me.keys}:
            raise ConfigError("this node's signing key is not listed for it in the members file",
                              reason="key_not_registered")
        if with_tls:
            tls = cls.tls(cfg)
            if tls.fingerprint not in me.tls_cert_sha256:
                raise ConfigError("this node's TLS certificate is not listed for it in the "
                                  "members file", reason="tls_not_registered")
        store = open_store(cfg)
        try:
            policy, watchlist, responder, lookup = _assemble(cfg, store, signing_key, directory)
        except BaseException:
            store.close()
            raise
        return cls(cfg, store, signing_key, directory, policy, watchlist, responder, lookup)

    @classmethod
    def _load_with_registry(cls, cfg: NodeConfig, *, with_tls: bool) -> NodeRuntime:
        """As :meth:`load`, with the signed federation registry instead of the members file."""
        from node.client.registry_fetch import GrpcRegistryFetcher
        from node.federation.directory import check_self_listed
        from node.federation.registry_directory import RegistryDirectory
        from node.federation.registry_keeper import RegistryKeeper

        assert cfg.registry is not None
        signing_key = open_signing_key(cfg)
        tls = cls.tls(cfg) if with_tls else None
        store = open_store(cfg)
        try:
            trusted = RegistryKeeper.trusted_version(store=store, path=cfg.registry)
            check_self_listed(trusted, node_id=cfg.node_id,
                              key_id=key_id_for(signing_key.public_key),
                              tls_fingerprint=tls.fingerprint if tls else None)
            directory = RegistryDirectory(registry=trusted, clock_ms=now_ms,
                                          expiry_grace_ms=cfg.registry_expiry_grace_s * 1000)
            policy, watchlist, responder, lookup = _assemble(cfg, store, signing_key, directory)
            keeper = RegistryKeeper(
                directory=directory, store=store, audit=responder.audit_log, path=cfg.registry,
                node_id=cfg.node_id, clock_ms=now_ms,
                fetcher=GrpcRegistryFetcher(tls=tls, dev_plaintext=tls is None))
            keeper.start()
        except BaseException:
            store.close()
            raise
        return cls(cfg, store, signing_key, directory, policy, watchlist, responder, lookup,
                   keeper)

    @staticmethod
    def tls(cfg: NodeConfig) -> TlsMaterial:
        return TlsMaterial.from_files(cert=cfg.tls_cert, key=cfg.tls_key, ca=cfg.tls_ca)

    def close(self) -> None:
        self.store.close()
