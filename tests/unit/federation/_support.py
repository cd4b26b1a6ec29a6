"""Registries built in memory from generated keys: five states, three nodes, 3-of-5."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import nacl.signing

from node.core.envelope import key_id_for
from node.federation.registry import Registry, format_time, parse_signed, sign_registry

NOW = 1_790_000_000_000  # 2026-09-21
DAY = 86_400_000
STATES = ("KAZ", "KGZ", "UZB", "TJK", "TKM")
NODES = ("KAZ-BS", "KGZ-BS", "UZB-BS")


def b64(k: nacl.signing.SigningKey) -> str:
    return base64.b64encode(bytes(k.verify_key)).decode()


class World:
    """Governance keys per state and signing keys per node, all generated."""

    def __init__(self) -> None:
        self.gov = {c: nacl.signing.SigningKey.generate() for c in STATES}
        self.node_keys = {n: nacl.signing.SigningKey.generate() for n in NODES}

    def kid(self, node: str) -> str:
        return key_id_for(bytes(self.node_keys[node].verify_key))

    def signed(self, version: int = 1, **over: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": "bxnode-registry", "version": version,
            "expires": format_time(NOW + 30 * DAY), "threshold": 3,
            "states": [{"country": c, "governance_keys": [b64(k)]} for c, k in self.gov.items()],
            "members": [self.member(n, i) for i, n in enumerate(NODES)],
            "revoked": [],
        }
        doc.update(over)
        return doc

    def member(self, node: str, i: int, key: nacl.signing.SigningKey | None = None
               ) -> dict[str, Any]:
        return {"node_id": node, "country": node[:3], "agency": f"{node} agency",
                "contact": f"{node} desk", "endpoint": f"127.0.0.1:{50051 + i}",
                "roles": ["node"],
                "signing_keys": [{"public_key": b64(key or self.node_keys[node]),
                                  "not_before": format_time(NOW - DAY),
                                  "not_after": format_time(NOW + 365 * DAY)}],
                "tls_certs": [{"sha256": f"{i:02x}" * 32, "not_before": format_time(NOW - DAY),
                               "not_after": format_time(NOW + 365 * DAY)}]}

    def sign(self, signed: dict[str, Any] | Registry, *states: str,
             keys: tuple[nacl.signing.SigningKey, ...] = ()) -> Registry:
        reg = signed if isinstance(signed, Registry) else parse_signed(copy.deepcopy(signed))
        for c in states:
            reg = sign_registry(reg, self.gov[c])
        for k in keys:
            reg = sign_registry(reg, k)
        return reg


def raw(reg: Registry) -> bytes:
    return reg.to_bytes()


def doc_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()
