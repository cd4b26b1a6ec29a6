"""The policy engine interface and the factory the node starts from.

ARCHITECTURE.md, "policy": decide(requester, purpose, kind, size) -> allow +
disclosure fields | deny + reasons, in-process (regopy) or on an OPA server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from node.core.model import Decision, PolicyInput
from node.policy.opa import OpaServerPolicyEngine
from node.policy.rego import RegoPolicyEngine

__all__ = ["PolicyEngine", "load_policy_engine"]


@runtime_checkable
class PolicyEngine(Protocol):
    """Judges every lookup with the owner's policy.  Implementations fail closed.

    ``decide`` never raises: when no valid decision can be had it returns a deny
    with reason ``policy_error`` or ``policy_unavailable``.
    """

    def decide(self, inp: PolicyInput) -> Decision: ...

    def decide_query(self, query: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Evaluate another decision query of the same policy (``data.bxnode.<x>.decision``).

        Never raises: returns the decision object, or ``{"allow": false, "reasons":
        ["policy_error" | "policy_unavailable"]}``.  Callers check the rest of the shape
        (see :func:`node.policy.queries.parse_query_decision`).
        """
        ...

    def reload(self) -> None:
        """Load the policy again; on error keep the current one and raise ConfigError."""

    @property
    def digest(self) -> str:
        """Hex SHA-256 naming the policy that decides; goes into every audit record."""
        ...


def load_policy_engine(*, policy_dir: Path, opa_url: str | None) -> PolicyEngine:
    """The configured engine: in-process regopy, or the OPA server at ``opa_url``.

    With an OPA server the digest is still that of ``policy_dir``: deploy the same
    directory to the server (``opa run -s policies/``).
    """
    if opa_url is None:
        return RegoPolicyEngine.from_directory(policy_dir)
    return OpaServerPolicyEngine.from_url(opa_url, policy_dir=policy_dir)
