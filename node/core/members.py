"""Who is who in the federation: members, their signing keys and TLS identities.

A :class:`MemberDirectory` answers the questions the envelope check asks.  The
first implementation reads a members file (:mod:`node.federation.members_file`);
a threshold-signed registry replaces it later behind the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from node.core.errors import Unauthenticated

__all__ = ["Member", "MemberDirectory", "MemberKey", "StaticDirectory"]


@dataclass(frozen=True, slots=True)
class MemberKey:
    key_id: str
    public_key: bytes
    not_before_ms: int = 0
    not_after_ms: int = 2**63 - 1
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Member:
    node_id: str
    country: str
    agency: str
    endpoint: str
    roles: tuple[str, ...]
    keys: tuple[MemberKey, ...]
    tls_cert_sha256: tuple[str, ...]
    contact: str = ""


class MemberDirectory(Protocol):
    def member(self, node_id: str) -> Member:
        """The member with this node id; raises :class:`Unauthenticated` (``unknown_node``)."""
        ...

    def members(self) -> tuple[Member, ...]: ...

    def owner_of_tls_cert(self, fingerprint_hex: str) -> str | None:
        """Node id whose TLS certificate has this SHA-256 fingerprint, if any."""
        ...


class StaticDirectory:
    """An immutable in-memory directory.  Checks that apply to every implementation live here."""

    def __init__(self, *, members: tuple[Member, ...]) -> None:
        by_id: dict[str, Member] = {}
        by_fp: dict[str, str] = {}
        for m in members:
            if m.node_id in by_id:
                raise ValueError(f"node id {m.node_id} listed twice")
            by_id[m.node_id] = m
            for fp in m.tls_cert_sha256:
                if fp in by_fp:
                    raise ValueError(f"TLS fingerprint {fp} listed for two nodes")
                by_fp[fp] = m.node_id
        self._by_id = by_id
        self._by_fp = by_fp

    def member(self, node_id: str) -> Member:
        try:
            return self._by_id[node_id]
        except KeyError:
            raise Unauthenticated("requester is not a federation member",
                                  reason="unknown_node") from None

    def members(self) -> tuple[Member, ...]:
        return tuple(self._by_id.values())

    def owner_of_tls_cert(self, fingerprint_hex: str) -> str | None:
        return self._by_fp.get(fingerprint_hex)


def signing_key(member: Member, key_id: str, at_ms: int) -> bytes:
    """The member's public key with ``key_id``, valid at ``at_ms``; raises otherwise."""
    for key in member.keys:
        if key.key_id != key_id:
            continue
        if key.revoked:
            raise Unauthenticated("signing key has been revoked", reason="key_revoked")
        if not key.not_before_ms <= at_ms <= key.not_after_ms:
            raise Unauthenticated("signing key is outside its validity window",
                                  reason="key_expired")
        return key.public_key
    raise Unauthenticated("signing key is not registered for this node", reason="unknown_key")
