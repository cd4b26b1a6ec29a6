"""Who is who in the federation: members, their signing keys and TLS identities.

A :class:`MemberDirectory` answers the questions the envelope check asks.  The
first implementation reads a members file (:mod:`node.federation.members_file`);
a threshold-signed registry replaces it later behind the same interface.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from node.core.errors import InvalidInput, Unauthenticated

__all__ = [
    "MAX_ADDRESS_LEN",
    "MAX_ENDPOINTS",
    "Member",
    "MemberDirectory",
    "MemberKey",
    "StaticDirectory",
    "parse_address",
    "parse_endpoint",
]

#: Bounds on a member's ``endpoint`` (STYLE 8), checked where members files and registry
#: documents are parsed.  Eight addresses cover a primary/secondary pair per site and then
#: some; more would make one call's deadline meaningless (each address gets a share).
MAX_ENDPOINTS = 8
MAX_ADDRESS_LEN = 256

_PORT = re.compile(r"[0-9]{1,5}")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DNS_SCHEME = "dns:///"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
#: gRPC target schemes other than ``dns:///`` (refused rather than misread as host:port).
_GRPC_SCHEMES = frozenset({"dns", "unix", "unix-abstract", "ipv4", "ipv6", "vsock", "xds",
                           "google-c2p"})


def _bad_endpoint(what: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{what}: {problem}", reason="bad_endpoint")


def _host_port(text: str, what: str) -> tuple[str, str]:
    """Split ``host:port`` / ``[v6]:port``; the host comes back without brackets."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1:close + 2] != ":":
            raise _bad_endpoint(what, "a bracketed IPv6 address needs a port: [::1]:50051")
        host, port = text[1:close], text[close + 2:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad_endpoint(what, f"[{host}] is not an IPv6 address") from None
        return host, port
    host, sep, port = text.rpartition(":")
    if not sep:
        raise _bad_endpoint(what, "needs a port: host:port")
    if ":" in host:
        raise _bad_endpoint(what, "an IPv6 address must be in brackets: [::1]:50051")
    if not host:
        raise _bad_endpoint(what, "needs a host before the port")
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise _bad_endpoint(what, f"{host} is not an IPv4 address") from None
    elif len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise _bad_endpoint(what, f"{host!r} is not a host name (letters, digits, hyphens, "
                                  "dot-separated labels of 1-63 characters)")
    return host, port


def parse_address(text: object, what: str = "endpoint") -> str:
    """One peer address, as gRPC takes it: ``host:port``, ``[IPv6]:port`` or ``dns:///host:port``.

    Returned unchanged; raises :class:`InvalidInput` (``bad_endpoint``) naming ``what``.
    Other gRPC schemes (``unix:``, ``ipv4:``, ``dns://server/``, ...) are refused: a peer
    is reached over TCP, and a name is resolved by the system resolver.  Port 0 is accepted
    (the development documents use it as a placeholder); it never answers.
    """
    if not isinstance(text, str):
        raise _bad_endpoint(what, "must be a string")
    if not text:
        raise _bad_endpoint(what, "is empty")
    if len(text) > MAX_ADDRESS_LEN:
        raise _bad_endpoint(what, f"is longer than {MAX_ADDRESS_LEN} characters")
    if text != text.strip() or any(c.isspace() or c == "," for c in text):
        raise _bad_endpoint(what, f"{text!r} holds a space or comma (list several addresses "
                                  "as a JSON list)")
    body = text.removeprefix(_DNS_SCHEME)
    scheme = _SCHEME.match(body)
    if "/" in body or (scheme is not None and scheme.group(1).lower() in _GRPC_SCHEMES
                       and not _PORT.fullmatch(body[scheme.end():])):
        raise _bad_endpoint(what, f"{text!r}: only host:port, [IPv6]:port and dns:///host:port "
                                  "are accepted")
    _, port = _host_port(body, what)
    if not _PORT.fullmatch(port) or int(port) > 65535:
        raise _bad_endpoint(what, f"port {port!r} must be a number 0..65535")
    return text


def _address_key(address: str) -> str:
    """What makes two addresses the same target: the scheme and host case do not."""
    return address.removeprefix(_DNS_SCHEME).lower()


def parse_endpoint(value: object, what: str = "endpoint", *,
                   allow_none: bool = False) -> tuple[str, ...]:
    """A member's ``endpoint``: one address (a string) or a list of 1..8 distinct addresses.

    The order is the order of preference: the first is the primary.  ``allow_none``: the
    empty string means "takes no calls" (an auditor's entry in a members file) and gives
    ``()``.  Raises :class:`InvalidInput` (``bad_endpoint``) naming ``what`` and the index.
    """
    if isinstance(value, str):
        if not value and allow_none:
            return ()
        return (parse_address(value, what),)
    if not isinstance(value, list | tuple):
        raise _bad_endpoint(what, "must be an address or a list of addresses")
    if not value:
        raise _bad_endpoint(what, "is an empty list (give at least one address)")
    if len(value) > MAX_ENDPOINTS:
        raise _bad_endpoint(what, f"lists {len(value)} addresses; at most {MAX_ENDPOINTS}")
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        address = parse_address(item, f"{what}[{i}]")
        first = seen.setdefault(_address_key(address), i)
        if first != i:
            raise _bad_endpoint(f"{what}[{i}]", f"{address!r} repeats {what}[{first}]")
        out.append(address)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class MemberKey:
    key_id: str
    public_key: bytes
    not_before_ms: int = 0
    not_after_ms: int = 2**63 - 1
    revoked: bool = False


@dataclass(frozen=True, slots=True, init=False)
class Member:
    """A federation member.  ``endpoint`` holds its addresses in order of preference (the
    first is the primary), ``()`` for a member that takes no calls (an auditor).  The
    constructor also takes a single address as a plain string."""

    node_id: str
    country: str
    agency: str
    endpoint: tuple[str, ...]
    roles: tuple[str, ...]
    keys: tuple[MemberKey, ...]
    tls_cert_sha256: tuple[str, ...]
    contact: str
    #: the epoch of the audit log origin the federation lists for the node
    #: (node.audit.origins: 1 is ``bxnode/<id>``, k is ``bxnode/<id>/log-<k>``)
    log_epoch: int

    def __init__(self, *, node_id: str, country: str, agency: str,
                 endpoint: str | Sequence[str], roles: tuple[str, ...],
                 keys: tuple[MemberKey, ...], tls_cert_sha256: tuple[str, ...],
                 contact: str = "", log_epoch: int = 1) -> None:
        if isinstance(endpoint, str):
            endpoint = (endpoint,) if endpoint else ()
        for name, value in (("node_id", node_id), ("country", country), ("agency", agency),
                            ("endpoint", tuple(endpoint)), ("roles", roles),
                            ("keys", keys), ("tls_cert_sha256", tls_cert_sha256),
                            ("contact", contact), ("log_epoch", log_epoch)):
            object.__setattr__(self, name, value)


class MemberDirectory(Protocol):
    def member(self, node_id: str) -> Member:
        """The member with this node id; raises :class:`Unauthenticated` (``unknown_node``)."""
        ...

    def members(self) -> tuple[Member, ...]: ...

    def owner_of_tls_cert(self, fingerprint_hex: str) -> str | None:
        """Node id whose TLS certificate has this SHA-256 fingerprint, if any."""
        ...

    def sender_of(self, fingerprint_hex: str) -> str:
        """The member a connection's client certificate belongs to, checked before anything
        the connection sends is looked at.  Raises :class:`Unauthenticated`
        ``unlisted_certificate`` for a certificate no member lists (one reason, whatever the
        request says: it cannot probe membership), and whatever the directory itself
        refuses with (an expired registry, a revoked node)."""
        ...


def unlisted_certificate() -> Unauthenticated:
    return Unauthenticated("the client certificate belongs to no federation member",
                           reason="unlisted_certificate")


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

    def sender_of(self, fingerprint_hex: str) -> str:
        owner = self._by_fp.get(fingerprint_hex)
        if owner is None:
            raise unlisted_certificate()
        return owner


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
