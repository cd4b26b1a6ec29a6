"""Strict parsing of decision documents other than the lookup one.

Capabilities beyond lookups ask the same policy other questions
(``data.bxnode.crossings.decision``, ``data.bxnode.followup.decision``) through
``PolicyEngine.decide_query``.  Each decision is one object with ``allow``,
``reasons`` and the capability's own keys; anything else is a ``policy_error``
deny, exactly as for lookups (fail closed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from node.policy._decision import Reason

__all__ = ["QueryDecision", "parse_query_decision"]

_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MAX_CODES = 32


@dataclass(frozen=True, slots=True)
class QueryDecision:
    allow: bool
    reasons: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _deny_error() -> QueryDecision:
    return QueryDecision(allow=False, reasons=(Reason.POLICY_ERROR.value,))


def _codes(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list) or len(value) > _MAX_CODES:
        return None
    if not all(isinstance(c, str) and _CODE.fullmatch(c) for c in value):
        return None
    return tuple(sorted(set(value)))


def parse_query_decision(doc: Any, *, ints: tuple[str, ...] = (),
                         code_lists: tuple[str, ...] = ()) -> QueryDecision:
    """Check ``doc`` is exactly ``{"allow", "reasons", *ints, *code_lists}``.

    ``ints`` are non-negative integers, ``code_lists`` lists of codes.  A deny from the
    engine itself (``{"allow": false, "reasons": [...]}`` only) is passed through.  An
    allow must carry no reasons, a deny at least one.  Anything else denies with
    ``policy_error``.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("allow"), bool):
        return _deny_error()
    reasons = _codes(doc.get("reasons"))
    if reasons is None:
        return _deny_error()
    if doc["allow"] is False and set(doc) == {"allow", "reasons"}:
        return QueryDecision(allow=False, reasons=reasons) if reasons else _deny_error()
    if set(doc) != {"allow", "reasons", *ints, *code_lists}:
        return _deny_error()
    extra: dict[str, Any] = {}
    for key in ints:
        v = doc[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            return _deny_error()
        extra[key] = v
    for key in code_lists:
        codes = _codes(doc[key])
        if codes is None:
            return _deny_error()
        extra[key] = codes
    if doc["allow"] and reasons:
        return _deny_error()
    if not doc["allow"]:
        return QueryDecision(allow=False, reasons=reasons) if reasons else _deny_error()
    return QueryDecision(allow=True, reasons=(), extra=extra)
