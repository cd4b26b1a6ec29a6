"""One error hierarchy, split by whose fault it is.

Every error carries the gRPC status name to answer with (a plain string, so
the core imports no gRPC) and a stable, machine-readable reason code.  Only
the edges (servicer, CLI) turn these into wire statuses or exit codes.

* :class:`PeerError`: the other side did something wrong (bad signature,
  replay, policy denial, malformed input).  Answered, audited, never retried.
* :class:`ConfigError`: our own configuration is wrong (missing key file,
  dev keys outside dev mode, wrong database key).  The node refuses to start.
* :class:`EnvironmentFault`: the machine failed us (disk, network, a peer that
  did not answer).  May be retried.
"""

from __future__ import annotations

from node.core import reasons as _reasons

__all__ = [
    "BxError",
    "ConfigError",
    "EnvironmentFault",
    "InvalidInput",
    "NotAuthorised",
    "PeerError",
    "PolicyDenied",
    "RateLimited",
    "RemoteError",
    "Unauthenticated",
    "for_peer",
]


class BxError(Exception):
    """Base of every error this package raises on purpose."""

    status: str = "INTERNAL"
    default_reason: str = "internal_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason
        self.message = message

    def __str__(self) -> str:
        return self.message


class PeerError(BxError):
    """The requesting peer is at fault."""

    status = "INVALID_ARGUMENT"
    default_reason = "invalid_request"


class InvalidInput(PeerError):
    """Malformed, oversized or out-of-range input."""

    status = "INVALID_ARGUMENT"
    default_reason = "invalid_argument"


class Unauthenticated(PeerError):
    """Signature, key, identity, freshness or replay checks failed."""

    status = "UNAUTHENTICATED"
    default_reason = "unauthenticated"


class NotAuthorised(PeerError):
    """The peer is known but may not do this (role, local-only method)."""

    status = "PERMISSION_DENIED"
    default_reason = "not_authorised"


class RateLimited(PeerError):
    """The peer asks faster, or more at once, than its agreement allows."""

    status = "RESOURCE_EXHAUSTED"
    default_reason = "rate_limited"


class PolicyDenied(PeerError):
    """The owner's policy refused the request; ``reasons`` lists every rule that fired."""

    status = "PERMISSION_DENIED"
    default_reason = "policy_denied"

    def __init__(self, message: str, *, reasons: tuple[str, ...]) -> None:
        primary = reasons[0] if reasons else "policy_denied"
        # One code, one status: the refusal carries the status its first code is registered
        # with (quota_exhausted RESOURCE_EXHAUSTED, policy_unavailable UNAVAILABLE: the peer
        # may retry, policy_error INTERNAL: our fault); PERMISSION_DENIED for any other.
        registered = _reasons.lookup(primary).status if _reasons.is_registered(primary) else None
        if registered is not None:
            self.status = registered
        super().__init__(message, reason=primary)
        self.reasons = reasons


class ConfigError(BxError):
    """Our own configuration is wrong; the node must not start or go on."""

    status = "FAILED_PRECONDITION"
    default_reason = "config_error"


class EnvironmentFault(BxError):
    """Disk, network or a dependency failed; not the peer's fault."""

    status = "UNAVAILABLE"
    default_reason = "unavailable"


class RemoteError(BxError):
    """A peer answered our request with an error status.

    ``status`` and ``reason`` are what the peer said; ``refusal_verified`` tells
    whether the peer also sent a signed refusal that verified.
    """

    def __init__(
        self, message: str, *, status: str, reason: str, refusal_verified: bool = False
    ) -> None:
        super().__init__(message, reason=reason)
        self.status = status
        self.refusal_verified = refusal_verified


_PEER_UNAVAILABLE = "the node cannot answer now; try again later"
_PEER_INTERNAL = "the node failed to answer this request"


def for_peer(exc: BxError) -> BxError:
    """What a peer is told of ``exc``: ``exc`` itself when its reason is one a peer may see
    (audience ``peer`` or ``both`` in node/core/reasons.py), else the node's own trouble,
    named no further -- ``UNAVAILABLE/unavailable`` for a status the peer should retry on,
    ``INTERNAL/internal_error`` for any other.  A foreign state learns neither that our
    disk is full nor, from a sealed field that does not open, that a row for the document
    it asked about exists; the audit entry and the error log keep the real reason.  A code
    the registry does not list is told as ``internal_error`` (fail closed)."""
    if _reasons.is_registered(exc.reason) and _reasons.lookup(exc.reason).audience != "operator":
        return exc
    told = (EnvironmentFault(_PEER_UNAVAILABLE) if exc.status == "UNAVAILABLE"
            else BxError(_PEER_INTERNAL))
    told.__cause__ = exc
    return told
