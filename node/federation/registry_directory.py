"""A :class:`~node.core.members.MemberDirectory` over the trusted registry version.

The responder and the peer client hold one ``RegistryDirectory`` for the life
of the node; :meth:`RegistryDirectory.swap` replaces the registry behind it in
place (one reference assignment under a lock), so an applied version takes
effect on the next request without rebuilding anything.

Every answer is computed at the current time: a node's TLS certificates are
those inside their validity window and not revoked; its signing keys keep
their windows (so a receipt signed with a retired key still verifies at the
time it was signed) and carry ``revoked`` when the registry revokes them.

Fail closed: once the registry is expired for longer than the grace period,
every question raises ``EnvironmentFault(reason="registry_expired")``
(gRPC UNAVAILABLE): the node answers no peer and asks none until a fresh
version is applied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from node.core import envelope as env_mod
from node.core.envelope import Envelope
from node.core.errors import EnvironmentFault, Unauthenticated
from node.core.members import Member, MemberKey, signing_key, unlisted_certificate
from node.federation.registry import NodeEntry, Registry, format_time

__all__ = ["RegistryDirectory", "RegistryStatus"]


@dataclass(frozen=True, slots=True)
class RegistryStatus:
    version: int
    digest: str
    expires_ms: int
    state: str  # "fresh", "expired_in_grace" or "expired"
    message: str

    @property
    def serving(self) -> bool:
        return self.state != "expired"


class RegistryDirectory:
    """The members of the trusted registry version, swapped in place on update."""

    def __init__(self, *, registry: Registry, clock_ms: Callable[[], int],
                 expiry_grace_ms: int = 0) -> None:
        if expiry_grace_ms < 0:
            raise ValueError("expiry grace must not be negative")
        self._lock = threading.Lock()
        self._registry = registry
        self._clock_ms = clock_ms
        self._grace_ms = expiry_grace_ms

    @property
    def current(self) -> Registry:
        with self._lock:
            return self._registry

    def swap(self, registry: Registry) -> None:
        """Install a verified version (the caller verified it: :mod:`registry_keeper`)."""
        with self._lock:
            self._registry = registry

    def status(self, now_ms: int | None = None) -> RegistryStatus:
        reg = self.current
        now = self._clock_ms() if now_ms is None else now_ms
        when = format_time(reg.expires_ms)
        if not reg.expired(now):
            state, msg = "fresh", f"registry version {reg.version} valid until {when}"
        elif now < reg.expires_ms + self._grace_ms:
            stop = format_time(reg.expires_ms + self._grace_ms)
            state, msg = ("expired_in_grace", f"registry version {reg.version} expired at "
                          f"{when}; peer queries stop at {stop}")
        else:
            state, msg = ("expired", f"registry version {reg.version} expired at {when} and the "
                          "grace period is over: peer queries are refused until a newer "
                          "version is applied")
        return RegistryStatus(reg.version, reg.digest, reg.expires_ms, state, msg)

    def _usable(self) -> tuple[Registry, int]:
        now = self._clock_ms()
        st = self.status(now)
        if not st.serving:
            raise EnvironmentFault(st.message, reason="registry_expired")
        return self.current, now

    # --- MemberDirectory ------------------------------------------------------------------

    def member(self, node_id: str) -> Member:
        reg, now = self._usable()
        entry = reg.node(node_id)
        if entry is None:
            raise Unauthenticated("requester is not a federation member", reason="unknown_node")
        if reg.is_revoked("node_id", node_id):
            raise Unauthenticated("this node has been revoked by the federation registry",
                                  reason="node_revoked")
        return _member(reg, entry, now)

    def members(self) -> tuple[Member, ...]:
        reg, now = self._usable()
        return tuple(_member(reg, e, now) for e in reg.members
                     if not reg.is_revoked("node_id", e.node_id))

    def owner_of_tls_cert(self, fingerprint_hex: str) -> str | None:
        try:
            reg, now = self._usable()
        except EnvironmentFault:
            return None
        fp = fingerprint_hex.lower()
        for e in reg.members:
            if reg.is_revoked("node_id", e.node_id) or reg.is_revoked("tls_cert_sha256", fp):
                continue
            if any(c.sha256 == fp and c.not_before_ms <= now <= c.not_after_ms
                   for c in e.tls_certs):
                return e.node_id
        return None

    def sender_of(self, fingerprint_hex: str) -> str:
        reg, now = self._usable()  # an expired registry refuses everyone: registry_expired
        fp = fingerprint_hex.lower()
        for e in reg.members:
            if any(c.sha256 == fp and c.not_before_ms <= now <= c.not_after_ms
                   for c in e.tls_certs):
                if reg.is_revoked("node_id", e.node_id) or reg.is_revoked("tls_cert_sha256",
                                                                          fp):
                    raise Unauthenticated("this node has been revoked by the federation "
                                          "registry", reason="node_revoked")
                return e.node_id
        raise unlisted_certificate()

    def verify_signed_at(self, env: Envelope, *, at_ms: int, expected_type: str) -> None:
        """Verify ``env`` as signed at ``at_ms`` (a receipt): keys that retired since still count.

        A revoked key or node does not: revocation means the key may have been misused.
        """
        reg = self.current
        entry = reg.node(env.signer)
        if entry is None:
            raise Unauthenticated("signer is not in the registry", reason="unknown_node")
        if reg.is_revoked("node_id", env.signer):
            raise Unauthenticated("signer has been revoked", reason="node_revoked")
        public = signing_key(_member(reg, entry, at_ms), env.key_id, at_ms)
        env_mod.verify(env, public, expected_type=expected_type)


def _member(reg: Registry, e: NodeEntry, now: int) -> Member:
    return Member(
        node_id=e.node_id, country=e.country, agency=e.agency, endpoint=e.endpoint,
        roles=e.roles, contact=e.contact, log_epoch=e.log_epoch,
        keys=tuple(MemberKey(key_id=k.key_id, public_key=k.public_key,
                             not_before_ms=k.not_before_ms, not_after_ms=k.not_after_ms,
                             revoked=reg.is_revoked("key_id", k.key_id))
                   for k in e.signing_keys),
        tls_cert_sha256=tuple(c.sha256 for c in e.tls_certs
                              if c.not_before_ms <= now <= c.not_after_ms
                              and not reg.is_revoked("tls_cert_sha256", c.sha256)))

