"""Read a policy directory: Rego modules, data files, and the digest over both.

Layout (the same one ``opa run -s <dir>`` loads, so both engines see one policy):

* every ``*.rego`` file under the directory, recursively;
* every file named ``data.json`` under the directory, mounted at the path of its
  folder, as OPA does: ``<dir>/data.json`` at ``data``, ``<dir>/a/b/data.json``
  at ``data.a.b``.  Other ``*.json`` files are ignored (an OPA bundle would
  ignore them too).

The digest is SHA-256 over exactly those files, in sorted relative-path order,
each framed as ``len(path) || path || len(bytes) || bytes`` (8-byte big-endian
lengths) after a version label, so renaming, moving or editing any file changes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.core.errors import ConfigError

__all__ = ["MAX_POLICY_BYTES", "PolicySources", "read_policy_dir"]

#: Upper bound on the total size of a policy directory's files.
MAX_POLICY_BYTES = 16 * 1024 * 1024
_DIGEST_LABEL = b"bxnode-policy-digest-v1\0"
_INVALID = "policy_invalid"


@dataclass(frozen=True, slots=True)
class PolicySources:
    """One consistent read of a policy directory."""

    modules: tuple[tuple[str, str], ...]
    """(relative posix path, source text) for every Rego module."""
    data: dict[str, Any]
    """Every data.json, merged at its mount path (owned by this object; never mutated)."""
    digest: str
    """Hex SHA-256 over the files as read (see module docstring)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _mount(target: dict[str, Any], path: tuple[str, ...], value: Any, where: str) -> None:
    for part in path:
        nxt = target.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"policy data {where} collides with other data", reason=_INVALID)
        target = nxt
    if not isinstance(value, dict):
        raise ConfigError(f"policy data {where} must hold a JSON object", reason=_INVALID)
    for key, item in value.items():
        if key in target:
            if isinstance(target[key], dict) and isinstance(item, dict):
                _mount(target, (key,), item, where)
                continue
            raise ConfigError(f"policy data {where} redefines {key!r}", reason=_INVALID)
        target[key] = item


def read_policy_dir(root: Path) -> PolicySources:
    """Read ``root`` per the layout above; raise ConfigError(policy_invalid) on any defect."""
    if not root.is_dir():
        raise ConfigError(f"policy directory {root} does not exist", reason=_INVALID)
    files = sorted(
        (p.relative_to(root).as_posix(), p)
        for p in root.rglob("*")
        if p.is_file() and (p.suffix == ".rego" or p.name == "data.json")
    )
    hasher = hashlib.sha256(_DIGEST_LABEL)
    total = 0
    modules: list[tuple[str, str]] = []
    data: dict[str, Any] = {}
    for rel, path in files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read policy file {rel}: {exc}", reason=_INVALID) from exc
        total += len(raw)
        if total > MAX_POLICY_BYTES:
            raise ConfigError(f"policy directory exceeds {MAX_POLICY_BYTES} bytes",
                              reason=_INVALID)
        name = rel.encode()
        hasher.update(len(name).to_bytes(8, "big") + name + len(raw).to_bytes(8, "big") + raw)
        try:
            text = raw.decode("utf-8")
            if path.suffix == ".rego":
                modules.append((rel, text))
            else:
                value = json.loads(text, parse_constant=_reject_constant)
                _mount(data, tuple(Path(rel).parent.parts), value, rel)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ConfigError(f"policy file {rel} is not valid: {exc}", reason=_INVALID) from exc
    if not modules:
        raise ConfigError(f"policy directory {root} holds no .rego files", reason=_INVALID)
    return PolicySources(modules=tuple(modules), data=data, digest=hasher.hexdigest())
