"""Trying a peer's addresses in order, never re-sending bytes that may have been answered.

A member's ``endpoint`` lists its addresses, the primary first
(:func:`node.core.members.parse_endpoint`).  :func:`try_in_order` calls them one after the
other under one overall deadline; what it does after a failure depends only on whether the
request could have reached the peer:

* ``UNAVAILABLE`` whose details show the connection was never made (gRPC's "failed to
  connect to all addresses": refused, no route, TLS handshake failed; or the name did not
  resolve) -> :attr:`Delivery.NOT_SENT`: the same signed request goes to the next address.
  It cannot have been answered, so its nonce is still unused.
* ``DEADLINE_EXCEEDED``, or any other ``UNAVAILABLE`` (the connection broke mid-call, the
  peer's own "retry later" refusal, anything gRPC does not clearly report as a connect
  failure) -> :attr:`Delivery.MAYBE_SENT`: those bytes are never sent again.  A fresh
  request (new nonce, new ``issued_at``) is made by ``renew`` and sent to the next address;
  without ``renew`` no other address is tried.  Unsigned reads pass ``resend_safe=True``.
* Every other status is the peer's answer or refusal (``PERMISSION_DENIED``,
  ``UNAUTHENTICATED``, ``INVALID_ARGUMENT``, ``RESOURCE_EXHAUSTED``, ...): final, never
  tried elsewhere.
* An ``UNAVAILABLE`` that carries the peer's reason (its policy server is down, its
  registry expired: "retry later") was delivered: the next address gets a fresh request as
  above, and if there is none, the peer's refusal is what the caller gets.

Each attempt gets an equal share of the time left (``remaining / addresses left``), unless
``attempt_timeout_s`` says otherwise, so a primary that accepts connections and never
answers cannot use up the time its replicas need.  No I/O here: ``send`` does the call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

import grpc

from node.core.errors import ConfigError, EnvironmentFault

__all__ = [
    "Answered",
    "Attempt",
    "Delivery",
    "PeerUnreachable",
    "Refused",
    "delivery_of",
    "prefer",
    "status_of",
    "try_in_order",
]

R = TypeVar("R")
T = TypeVar("T")

#: How gRPC (1.85) words failures that happened before any byte of the call was written:
#: pick_first found no connectable address, or the resolver found none.
_CONNECT_FAILED = (
    "failed to connect to all addresses",
    "errors resolving ",
    "DNS resolution failed",
)
_RETRYABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})


class Delivery(StrEnum):
    NOT_SENT = "not_sent"      # the connection was never made: the request did not leave
    MAYBE_SENT = "maybe_sent"  # it may have reached the peer, and may have been answered


def delivery_of(status: str, details: str) -> Delivery | None:
    """Whether a failed call may have reached the peer; ``None`` for a final status."""
    if status not in _RETRYABLE:
        return None
    if status == "UNAVAILABLE" and details.startswith(_CONNECT_FAILED):
        return Delivery.NOT_SENT
    return Delivery.MAYBE_SENT


@dataclass(frozen=True, slots=True)
class Attempt:
    """One address tried (or not): ``status`` is the gRPC status name, ``OK``, or
    ``NOT_TRIED``; ``note`` says why an address was not tried; ``reason`` is the peer's
    reason code when it sent one (``policy_unavailable``)."""

    address: str
    status: str
    delivery: Delivery | None = None
    note: str = ""
    reason: str = ""  # the peer's reason code, when it sent one

    def describe(self) -> str:
        if self.status == "NOT_TRIED":
            return f"{self.address} not tried ({self.note})"
        what = {Delivery.NOT_SENT: "not delivered",
                Delivery.MAYBE_SENT: "may have been delivered", None: "final"}[self.delivery]
        said = f"/{self.reason}" if self.reason else ""
        return f"{self.address} {self.status.lower()}{said} ({what})"


@dataclass(frozen=True, slots=True)
class Answered(Generic[R, T]):
    """``address`` answered ``request`` (the one actually sent there) with ``value``."""

    address: str
    request: R
    value: T
    attempts: tuple[Attempt, ...]


@dataclass(frozen=True, slots=True)
class Refused(Generic[R]):
    """``address`` answered ``request`` with a final status (``error``); nothing else tried."""

    address: str
    request: R
    error: grpc.RpcError
    attempts: tuple[Attempt, ...]


class PeerUnreachable(EnvironmentFault):
    """No address answered.  The message names each address and what happened there;
    it carries no request content."""

    default_reason = "peer_unavailable"

    def __init__(self, peer: str, attempts: tuple[Attempt, ...]) -> None:
        super().__init__(f"peer {peer} did not answer: "
                         + "; ".join(a.describe() for a in attempts))
        self.attempts = attempts


def status_of(err: grpc.RpcError) -> tuple[str, str]:
    """(status name, details) of a gRPC error; a foreign exception counts as UNKNOWN."""
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else ""
    return (code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"), str(details or "")


def prefer(addresses: Sequence[str], preferred: str | None) -> tuple[str, ...]:
    """``addresses`` with ``preferred`` (the last that answered) moved to the front."""
    if preferred is None or preferred not in addresses:
        return tuple(addresses)
    return (preferred, *(a for a in addresses if a != preferred))


def try_in_order(
    addresses: Sequence[str],
    request: R,
    send: Callable[[str, R, float], T],
    *,
    peer: str,
    deadline_s: float,
    renew: Callable[[], R] | None,
    resend_safe: bool = False,
    attempt_timeout_s: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    on_failure: Callable[[str, R, grpc.RpcError, Delivery], None] | None = None,
    reason_of: Callable[[grpc.RpcError], str] | None = None,
) -> Answered[R, T] | Refused[R]:
    """Call ``send(address, request, timeout_s)`` on each address until one answers.

    Returns the answer or the final refusal, with the request that address got; raises
    :class:`PeerUnreachable` when no address answered within ``deadline_s``.
    ``on_failure`` sees each failed attempt that is not returned (the caller records what
    it sent).  ``reason_of`` reads the peer's reason code from an error ("" for none): an
    ``UNAVAILABLE`` with one is the peer saying "retry later" — the next address is tried
    as for any ``UNAVAILABLE``, but when it is the last word, it is returned as
    :class:`Refused` rather than raised as :class:`PeerUnreachable`.
    """
    if not addresses:
        raise ConfigError(f"peer {peer} lists no address to call", reason="no_endpoint")
    end = monotonic() + deadline_s
    attempts: list[Attempt] = []
    current = request
    for i, address in enumerate(addresses):
        remaining = end - monotonic()
        if remaining <= 0:
            attempts += [Attempt(a, "NOT_TRIED", note="deadline reached")
                         for a in addresses[i:]]
            break
        timeout = (remaining / (len(addresses) - i) if attempt_timeout_s is None
                   else min(attempt_timeout_s, remaining))
        try:
            value = send(address, current, timeout)
        except grpc.RpcError as err:
            status, details = status_of(err)
            delivery = delivery_of(status, details)
            reason = reason_of(err) if reason_of is not None else ""
            attempts.append(Attempt(address, status, delivery, reason=reason))
            if delivery is None:
                return Refused(address, current, err, tuple(attempts))
            more = i + 1 < len(addresses)
            stop = (more and delivery is Delivery.MAYBE_SENT and not resend_safe
                    and renew is None)
            if stop:
                attempts += [Attempt(a, "NOT_TRIED", note="the request may have been "
                                     "delivered and is not re-sent")
                             for a in addresses[i + 1:]]
            if reason and (stop or not more):
                # the last word was the peer's own "retry later" (UNAVAILABLE with a
                # reason, perhaps a signed refusal): report it, not a silent peer
                return Refused(address, current, err, tuple(attempts))
            if on_failure is not None:
                on_failure(address, current, err, delivery)
            if stop:
                break
            if more and delivery is Delivery.MAYBE_SENT and not resend_safe:
                assert renew is not None
                current = renew()  # a fresh nonce: the bytes already sent are never re-sent
            continue
        attempts.append(Attempt(address, "OK"))
        return Answered(address, current, value, tuple(attempts))
    raise PeerUnreachable(peer, tuple(attempts))
