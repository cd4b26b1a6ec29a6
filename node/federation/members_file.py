"""The first-cut federation directory: a JSON members file.

Shape (README, "The members file")::

    {"version": 1,
     "members": [{"node_id": "KAZ-BS", "country": "KAZ", "agency": "...",
                  "endpoint": "127.0.0.1:50051", "roles": ["node"], "contact": "...",
                  "signing_keys": [{"public_key": "<base64 raw Ed25519>",
                                    "not_before": "2025-01-01T00:00:00Z",
                                    "not_after": "2030-01-01T00:00:00Z",
                                    "revoked": false}],
                  "tls_cert_sha256": ["<hex SHA-256 of the DER certificate>"],
                  "log_origin": "bxnode/KAZ-BS/log-2"}]}   # optional: after a log reset

Key ids are derived from the public key, never trusted from the file.  ``endpoint`` is one
address or a list of 1..8 distinct addresses, the primary first
(:func:`node.core.members.parse_endpoint`); ``""`` is accepted for a member without the
``node`` role (an auditor calls in and is never called).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from pathlib import Path
from typing import Any

from node.core.envelope import key_id_for
from node.core.errors import ConfigError, InvalidInput
from node.core.members import Member, MemberKey, StaticDirectory, parse_endpoint
from node.core.model import validate_id, validate_state

__all__ = ["MAX_MEMBERS_FILE_BYTES", "endpoint_to_json", "load_members", "member_to_json",
           "parse_members"]

MAX_MEMBERS_FILE_BYTES = 1024 * 1024


def _ms(text: str | None, default: int) -> int:
    if text is None:
        return default
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"members file: bad time {text!r}", reason="bad_members_file") from None
    if when.tzinfo is None:
        raise ConfigError(f"members file: time {text!r} needs a zone", reason="bad_members_file")
    return int(when.timestamp() * 1000)


def _key(obj: dict[str, Any]) -> MemberKey:
    try:
        raw = base64.b64decode(obj["public_key"], validate=True)
    except (KeyError, binascii.Error, TypeError):
        raise ConfigError("members file: signing key is not base64",
                          reason="bad_members_file") from None
    if len(raw) != 32:
        raise ConfigError("members file: Ed25519 public keys are 32 bytes",
                          reason="bad_members_file")
    return MemberKey(
        key_id=key_id_for(raw),
        public_key=raw,
        not_before_ms=_ms(obj.get("not_before"), 0),
        not_after_ms=_ms(obj.get("not_after"), 2**63 - 1),
        revoked=bool(obj.get("revoked", False)),
    )


def _log_epoch(value: object, node_id: str) -> int:
    """The optional ``log_origin`` (:mod:`node.audit.origins`) as its epoch; absent is 1."""
    from node.audit.origins import epoch_of

    if value is None:
        return 1
    epoch = epoch_of(value, node_id) if isinstance(value, str) and len(value) <= 256 else None
    if epoch is None:
        raise ConfigError(f"members file: {node_id} log_origin must be bxnode/{node_id} or "
                          f"bxnode/{node_id}/log-<k>", reason="bad_members_file")
    return epoch


def _endpoint(value: object, node_id: str, roles: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return parse_endpoint(value, f"{node_id} endpoint", allow_none="node" not in roles)
    except InvalidInput as exc:
        raise ConfigError(f"members file: {exc}", reason="bad_endpoint") from None


def endpoint_to_json(addresses: tuple[str, ...]) -> str | list[str]:
    """One address as a string (the file's original shape), several as a list."""
    if len(addresses) <= 1:
        return addresses[0] if addresses else ""
    return list(addresses)


def parse_members(data: bytes) -> StaticDirectory:
    if len(data) > MAX_MEMBERS_FILE_BYTES:
        raise ConfigError("members file is larger than 1 MiB", reason="bad_members_file")
    try:
        doc = json.loads(data)
        members = []
        for m in doc["members"]:
            node_id = validate_id(m["node_id"], "node id")
            roles = tuple(m.get("roles", ["node"]))
            members.append(Member(
                node_id=node_id,
                country=validate_state(m["country"], "country"),
                agency=str(m["agency"]),
                endpoint=_endpoint(m["endpoint"], node_id, roles),
                roles=roles,
                keys=tuple(_key(k) for k in m["signing_keys"]),
                tls_cert_sha256=tuple(fp.lower() for fp in m["tls_cert_sha256"]),
                contact=str(m.get("contact", "")),
                log_epoch=_log_epoch(m.get("log_origin"), node_id),
            ))
        return StaticDirectory(members=tuple(members))
    except ConfigError:
        raise
    except Exception as exc:  # any shape error in an operator-supplied file
        raise ConfigError(f"members file is malformed: {exc}", reason="bad_members_file") from exc


def load_members(path: Path) -> StaticDirectory:
    try:
        return parse_members(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"members file {path} does not exist", reason="missing_file") from None


def member_to_json(m: Member) -> dict[str, Any]:
    def iso(ms: int) -> str | None:
        if ms in (0, 2**63 - 1):
            return None
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")

    keys = []
    for k in m.keys:
        entry: dict[str, Any] = {"public_key": base64.b64encode(k.public_key).decode()}
        if iso(k.not_before_ms):
            entry["not_before"] = iso(k.not_before_ms)
        if iso(k.not_after_ms):
            entry["not_after"] = iso(k.not_after_ms)
        if k.revoked:
            entry["revoked"] = True
        keys.append(entry)
    out = {"node_id": m.node_id, "country": m.country, "agency": m.agency,
           "endpoint": endpoint_to_json(m.endpoint), "roles": list(m.roles), "contact": m.contact,
           "signing_keys": keys, "tls_cert_sha256": list(m.tls_cert_sha256)}
    if m.log_epoch > 1:
        from node.audit.origins import log_origin

        out["log_origin"] = log_origin(m.node_id, m.log_epoch)
    return out
