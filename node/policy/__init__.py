"""Policy layer: the owner's Rego decides every lookup (ARCHITECTURE.md, "policy").

In-process with :class:`RegoPolicyEngine` (regopy) or remotely with
:class:`OpaServerPolicyEngine`; both answer the same decision document
(policies/README.md) and fail closed.
"""

from node.policy._decision import DECISION_QUERY, Reason
from node.policy.engine import PolicyEngine, load_policy_engine
from node.policy.opa import OpaServerPolicyEngine
from node.policy.rego import RegoPolicyEngine

__all__ = [
    "DECISION_QUERY",
    "OpaServerPolicyEngine",
    "PolicyEngine",
    "Reason",
    "RegoPolicyEngine",
    "load_policy_engine",
]
