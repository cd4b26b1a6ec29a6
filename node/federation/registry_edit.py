"""Drafting the next registry version and describing what changed (``bxnode registry``).

Pure functions over :class:`~node.federation.registry.Registry` values: the
draft is re-validated by :func:`~node.federation.registry.parse_signed`, and
starts with no signatures (each state signs it offline, signatures merge).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from node.federation.registry import (
    Registry,
    RegistryError,
    check_log_origins,
    format_time,
    parse_signed,
)

__all__ = [
    "AddMember",
    "Change",
    "RevokeNode",
    "RotateKey",
    "SetEndpoint",
    "SetGovernanceKeys",
    "SetLogOrigin",
    "diff",
    "draft_next",
    "member_entry",
]

DEFAULT_VALIDITY_MS = 2 * 365 * 86_400_000


@dataclass(frozen=True, slots=True)
class AddMember:
    entry: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RotateKey:
    node_id: str
    new_public_key: str  # base64
    old_key_until_ms: int


@dataclass(frozen=True, slots=True)
class RevokeNode:
    node_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SetEndpoint:
    """Replace a node's addresses (the primary first).  Several ``SetEndpoint`` for one node in
    one draft list its addresses in their order (``--endpoint NODE ADDR`` given repeatedly)."""

    node_id: str
    endpoint: str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SetGovernanceKeys:
    country: str
    public_keys: tuple[str, ...]  # base64


@dataclass(frozen=True, slots=True)
class SetLogOrigin:
    """Record a node's audit log origin after ``bxnode audit reset-log`` (which prints this
    change): witnesses cosign only the origin the registry lists for a node."""

    node_id: str
    origin: str


Change = (AddMember | RotateKey | RevokeNode | SetEndpoint | SetGovernanceKeys
          | SetLogOrigin)


def member_entry(obj: dict[str, Any], *, now_ms: int) -> dict[str, Any]:
    """A registry member entry from either a registry entry or a members-file entry.

    ``bxnode init`` prints a members-file entry (``tls_cert_sha256``, keys without a
    window): it is converted, each key and certificate valid from now for two years.
    """
    if "tls_certs" in obj:
        return copy.deepcopy(obj)
    nb, na = format_time(now_ms), format_time(now_ms + DEFAULT_VALIDITY_MS)
    try:
        return {
            "node_id": obj["node_id"], "country": obj["country"],
            "agency": obj.get("agency", ""), "contact": obj.get("contact", ""),
            "endpoint": obj["endpoint"], "roles": list(obj.get("roles", ["node"])),
            "signing_keys": [{"public_key": k["public_key"],
                              "not_before": k.get("not_before", nb),
                              "not_after": k.get("not_after", na)}
                             for k in obj["signing_keys"]],
            "tls_certs": [{"sha256": fp.lower(), "not_before": nb, "not_after": na}
                          for fp in obj["tls_cert_sha256"]],
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise RegistryError(f"member entry is malformed: missing {exc}",
                            reason="malformed") from None


def _find(signed: dict[str, Any], node_id: str) -> dict[str, Any]:
    for m in signed["members"]:
        if m["node_id"] == node_id:
            found: dict[str, Any] = m
            return found
    raise RegistryError(f"node {node_id} is not in the registry", reason="not_in_registry")


def _apply(signed: dict[str, Any], change: Change, now_ms: int,
           endpoints_set: set[str]) -> None:
    if isinstance(change, AddMember):
        entry = member_entry(change.entry, now_ms=now_ms)
        if any(m["node_id"] == entry.get("node_id") for m in signed["members"]):
            raise RegistryError(f"node {entry.get('node_id')} is already a member",
                                reason="already_member")
        signed["members"].append(entry)
    elif isinstance(change, RotateKey):
        m = _find(signed, change.node_id)
        until = format_time(change.old_key_until_ms)
        latest = format_time(now_ms + DEFAULT_VALIDITY_MS)
        for k in m["signing_keys"]:
            if k["not_after"] > until:  # still valid after the overlap: retire it then
                latest = max(latest, k["not_after"])
                k["not_after"] = until
        m["signing_keys"].append({"public_key": change.new_public_key,
                                  "not_before": format_time(now_ms), "not_after": latest})
    elif isinstance(change, RevokeNode):
        _find(signed, change.node_id)
        if any(r.get("node_id") == change.node_id for r in signed["revoked"]):
            raise RegistryError(f"node {change.node_id} is already revoked",
                                reason="already_revoked")
        signed["revoked"].append({"node_id": change.node_id, "reason": change.reason})
    elif isinstance(change, SetEndpoint):
        m = _find(signed, change.node_id)
        new = [change.endpoint] if isinstance(change.endpoint, str) else list(change.endpoint)
        if change.node_id in endpoints_set:  # a later --endpoint for the node adds an address
            old = m["endpoint"]
            new = ([old] if isinstance(old, str) else list(old)) + new
        endpoints_set.add(change.node_id)
        m["endpoint"] = new[0] if len(new) == 1 else new  # one address stays a plain string
    elif isinstance(change, SetLogOrigin):
        _find(signed, change.node_id)["log_origin"] = change.origin  # checked by parse_signed
    else:
        for s in signed["states"]:
            if s["country"] == change.country:
                s["governance_keys"] = list(change.public_keys)
                break
        else:
            signed["states"].append({"country": change.country,
                                     "governance_keys": list(change.public_keys)})


def draft_next(current: Registry, changes: Sequence[Change], *, now_ms: int,
               expires_ms: int | None = None) -> Registry:
    """The next version: ``current`` plus ``changes``, version + 1, unsigned, validated."""
    signed = copy.deepcopy(dict(current.signed))
    signed["version"] = current.version + 1
    endpoints_set: set[str] = set()
    for change in changes:
        _apply(signed, change, now_ms, endpoints_set)
    if expires_ms is not None:
        signed["expires"] = format_time(expires_ms)
    draft = parse_signed(signed)
    check_log_origins(current, draft)
    return draft


# --- diff --------------------------------------------------------------------------------------


def _window(nb: int, na: int) -> str:
    return f"{format_time(nb)} .. {format_time(na)}"


def diff(old: Registry | None, new: Registry) -> list[str]:
    """Human-readable changes from ``old`` to ``new``: ``+`` added, ``-`` removed, ``~`` changed."""
    if old is None:
        return [f"+ version {new.version} (no current version to compare with)"]
    out: list[str] = []
    if old.version != new.version:
        out.append(f"~ version {old.version} -> {new.version}")
    if old.expires_ms != new.expires_ms:
        out.append(f"~ expires {format_time(old.expires_ms)} -> {format_time(new.expires_ms)}")
    if old.threshold != new.threshold:
        out.append(f"~ threshold {old.threshold} -> {new.threshold}")
    old_states = {s.country: {k.key_id for k in s.keys} for s in old.states}
    new_states = {s.country: {k.key_id for k in s.keys} for s in new.states}
    for c in sorted(old_states.keys() | new_states.keys()):
        a, b = old_states.get(c), new_states.get(c)
        if a is None:
            out.append(f"+ state {c} (governance keys {', '.join(sorted(b or ()))})")
        elif b is None:
            out.append(f"- state {c}")
        elif a != b:
            out.append(f"~ state {c} governance keys: -{sorted(a - b)} +{sorted(b - a)}")
    old_m = {m.node_id: m for m in old.members}
    new_m = {m.node_id: m for m in new.members}
    for nid in sorted(old_m.keys() | new_m.keys()):
        a_m, b_m = old_m.get(nid), new_m.get(nid)
        if a_m is None and b_m is not None:
            out.append(f"+ member {nid} ({b_m.country}, {b_m.agency or '-'}) at "
                       f"{', '.join(b_m.endpoint)}, "
                       f"roles {','.join(b_m.roles)}, keys "
                       f"{', '.join(k.key_id for k in b_m.signing_keys)}")
            continue
        if b_m is None:
            out.append(f"- member {nid}")
            continue
        assert a_m is not None
        for attr in ("country", "agency", "contact", "endpoint", "roles", "log_origin"):
            va, vb = getattr(a_m, attr), getattr(b_m, attr)
            if va != vb:
                if attr == "endpoint":
                    va, vb = ", ".join(va), ", ".join(vb)
                elif attr == "log_origin":
                    va, vb = va or f"bxnode/{nid}", vb or f"bxnode/{nid}"
                out.append(f"~ {nid} {attr}: {va} -> {vb}")
        ka = {k.key_id: k for k in a_m.signing_keys}
        kb = {k.key_id: k for k in b_m.signing_keys}
        for kid in sorted(ka.keys() | kb.keys()):
            x, y = ka.get(kid), kb.get(kid)
            if x is None and y is not None:
                out.append(f"+ {nid} signing key {kid} valid "
                           f"{_window(y.not_before_ms, y.not_after_ms)}")
            elif y is None:
                out.append(f"- {nid} signing key {kid}")
            elif x is not None and (x.not_before_ms, x.not_after_ms) != (
                    y.not_before_ms, y.not_after_ms):
                out.append(f"~ {nid} signing key {kid} valid "
                           f"{_window(x.not_before_ms, x.not_after_ms)} -> "
                           f"{_window(y.not_before_ms, y.not_after_ms)}")
        ca = {c.sha256: c for c in a_m.tls_certs}
        cb = {c.sha256: c for c in b_m.tls_certs}
        for fp in sorted(ca.keys() | cb.keys()):
            u, v = ca.get(fp), cb.get(fp)
            if u is None and v is not None:
                out.append(f"+ {nid} TLS certificate {fp[:16]}... valid "
                           f"{_window(v.not_before_ms, v.not_after_ms)}")
            elif v is None:
                out.append(f"- {nid} TLS certificate {fp[:16]}...")
            elif u is not None and (u.not_before_ms, u.not_after_ms) != (
                    v.not_before_ms, v.not_after_ms):
                out.append(f"~ {nid} TLS certificate {fp[:16]}... valid -> "
                           f"{_window(v.not_before_ms, v.not_after_ms)}")
    ra = {(r.kind, r.ref): r for r in old.revoked}
    rb = {(r.kind, r.ref): r for r in new.revoked}
    for key in sorted(rb.keys() - ra.keys()):
        out.append(f"+ REVOKED {key[0]} {key[1]}"
                   + (f" ({rb[key].reason})" if rb[key].reason else ""))
    for key in sorted(ra.keys() - rb.keys()):
        out.append(f"- revocation of {key[0]} {key[1]} lifted")
    return out

