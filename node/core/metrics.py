"""What the node tells its monitoring: the events, as a port with a no-op default.

Components that see something worth counting (the gRPC edge, group commit, witnessing,
the peer client, the erasure sweep) take a :class:`Metrics` and call it; by default they get
:data:`NO_METRICS`, which does nothing, so unit tests and the CLI need no monitoring at all.
``bxnode serve`` passes the Prometheus implementation (node/observability/).

Every argument is a label value or a number, never personal data: peers are member ids,
outcomes gRPC status names, causes registered reason codes.  The implementation checks
that again before any value becomes a label.  No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["NO_METRICS", "Metrics"]


class Metrics:
    """The monitoring port.  Every method is a no-op here; an implementation overrides them.

    Each call must be cheap and must never raise into the caller's work.
    """

    def request(self, *, service: str, method: str, outcome: str, cause: str, peer: str,
                seconds: float) -> None:
        """One call a peer made: its gRPC service and method, the status name it got
        (``OK``, ``PERMISSION_DENIED``, ...), the ``bxnode-reason`` it carried ("" for none),
        the member whose TLS certificate made it, and how long it took."""

    def batch_committed(self, *, size: int, seconds: float, ok: bool) -> None:
        """One group-commit batch of ``size`` steps, committed (``ok``) or failed."""

    def witness_result(self, *, witness: str, result: str) -> None:
        """One round of sending our checkpoint to ``witness``: ``cosigned``, ``unavailable``,
        ``bad_cosignature``, ``witness_ahead`` or ``origin_unlisted``."""

    def witness_alert(self, *, kind: str) -> None:
        """Evidence of a misbehaving log or witness (``inconsistent_checkpoint``,
        ``bad_consistency_proof``, ``witness_ahead``)."""

    def peer_answered(self, *, peer: str, at_s: float) -> None:
        """``peer`` answered one of our requests with a verified response at ``at_s``."""

    def peer_failed(self, *, peer: str, status: str) -> None:
        """One attempt to reach ``peer`` got no answer (the gRPC status name)."""

    def erasure_sweep(self, *, erased: Mapping[str, int], ok: bool) -> None:
        """One retention sweep: the records erased per kind, or a failed sweep."""


#: The default: monitoring off.
NO_METRICS = Metrics()
