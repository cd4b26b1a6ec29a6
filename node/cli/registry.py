"""``bxnode registry ...``: the governance workflow for the signed federation registry.

::

    bxnode registry propose --add-member tjk.json --out v8.json     # draft v8 from the current
    bxnode registry sign --key kaz-governance.key v8.json          # each state, offline; merges
    bxnode registry verify v8.json --trusted registry.json         # threshold, version, expiry
    bxnode registry show v8.json --against registry.json           # what changes
    bxnode registry publish v8.json --node-dir /var/lib/bxnode     # install on a node (audited)

``propose``, ``sign``, ``verify`` and ``show`` need no node: they work on files
(``--current`` / ``--trusted`` / ``--against``), or on the node's trusted version
when a node directory is given.  ``publish`` installs a version into a node:
verified against the node's trusted version, written to its registry file and
audited; a running node applies it within ``[federation] refresh_s`` and its
peers fetch it from there.  On a node without a registry yet, ``publish``
installs the document as the node's trust anchor (checked against its own
governance keys) and switches ``node.toml`` to it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from node.cli.main import CliError, _config, _emit, _node_dir, add_command, add_group
from node.config import CONFIG_NAME

__all__ = ["register"]


def _now() -> int:
    from node.app import now_ms

    return now_ms()


def _time(text: str) -> int:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"time {text!r} is not ISO 8601 (e.g. 2027-01-31T00:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * 1000


def _read(path: str | Path) -> Any:
    from node.federation.registry import RegistryError, parse_registry

    p = Path(path)
    if not p.is_file():
        raise CliError(f"{p} is not a readable file")
    try:
        return parse_registry(p.read_bytes())
    except RegistryError as exc:
        raise CliError(f"{p} is refused: {exc} ({exc.reason})") from None


def _has_node(args: argparse.Namespace) -> bool:
    return (_node_dir(args) / CONFIG_NAME).is_file()


def _trusted(args: argparse.Namespace, explicit: str | None) -> Any:
    """The version to compare with: an explicit file, else the node's trusted version."""
    if explicit:
        return _read(explicit)
    if not _has_node(args):
        return None
    cfg = _config(args)
    if cfg.registry is None:
        return None
    from node.app import open_store
    from node.federation.registry_keeper import RegistryKeeper

    store = open_store(cfg)
    try:
        return RegistryKeeper.trusted_version(store=store, path=cfg.registry)
    finally:
        store.close()


def _write(path: Path, reg: Any) -> None:
    from node.federation.registry_keeper import write_atomically

    write_atomically(path, reg.to_bytes())


# --- propose -------------------------------------------------------------------------------


def cmd_propose(args: argparse.Namespace) -> int:
    from node.federation.registry import RegistryError
    from node.federation.registry_edit import (
        AddMember,
        Change,
        RevokeNode,
        RotateKey,
        SetEndpoint,
        SetGovernanceKeys,
        SetLogOrigin,
        diff,
        draft_next,
    )

    current = _trusted(args, args.current)
    if current is None:
        raise CliError("no current registry: pass --current FILE or --node-dir of a node "
                       "with a registry")
    now = _now()
    changes: list[Change] = []
    for f in args.add_member or ():
        try:
            entry = json.loads(Path(f).read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"--add-member {f}: not a readable JSON member entry ({exc})") from None
        changes.append(AddMember(entry))
    if args.rotate_key:
        if not args.new_key or not args.old_key_until:
            raise CliError("--rotate-key needs --new-key PUB and --old-key-until TIME")
        changes.append(RotateKey(args.rotate_key, _public_key_text(args.new_key),
                                 _time(args.old_key_until)))
    for node in args.revoke or ():
        changes.append(RevokeNode(node, args.reason or ""))
    for node, addr in args.endpoint or ():
        changes.append(SetEndpoint(node, addr))
    for node, origin in args.log_origin or ():
        changes.append(SetLogOrigin(node, origin))
    for country, keys in args.set_governance or ():
        changes.append(SetGovernanceKeys(country, tuple(
            _public_key_text(k) for k in keys.split(",") if k)))
    expires = _time(args.expires) if args.expires else None
    if expires is None and args.expires_in_days:
        expires = now + args.expires_in_days * 86_400_000
    if not changes and expires is None:
        raise CliError("nothing to propose: give at least one change or --expires")
    try:
        draft = draft_next(current, changes, now_ms=now, expires_ms=expires)
    except RegistryError as exc:
        raise CliError(f"the draft is refused: {exc} ({exc.reason})") from None
    out = Path(args.out or f"registry-v{draft.version}.draft.json")
    _write(out, draft)
    lines = diff(current, draft)
    _emit(args, {"draft": str(out), "version": draft.version, "digest": draft.digest,
                 "changes": lines},
          "\n".join([*lines, f"wrote {out}: version {draft.version}, unsigned; each state "
                     f"signs it with 'bxnode registry sign --key ... {out}'"]))
    return 0


def _public_key_text(text: str) -> str:
    """A public key given inline (base64) or as a file holding it (or a signing key seed)."""
    import base64
    import binascii

    p = Path(text)
    if p.is_file():
        raw = p.read_text().strip()
        try:
            seed = bytes.fromhex(raw)
        except ValueError:
            seed = b""
        if len(seed) == 32:
            raise CliError(f"{p} holds a private key: give the public key (base64) instead")
        text = raw
    try:
        if len(base64.b64decode(text, validate=True)) == 32:
            return text
    except binascii.Error:
        pass
    raise CliError(f"{text[:60]!r} is not a base64 Ed25519 public key")


# --- sign, merge ---------------------------------------------------------------------------


def cmd_sign(args: argparse.Namespace) -> int:
    from node.core.envelope import key_id_for
    from node.federation.pki import is_dev_material, load_signing_key
    from node.federation.registry import sign_registry

    key_path = Path(args.key)
    if is_dev_material(key_path) and not args.dev:
        raise CliError(f"{key_path} is a development governance key: refused without --dev")
    key = load_signing_key(key_path)
    kid = key_id_for(bytes(key.verify_key))
    reg = _read(args.file)
    signed = sign_registry(reg, key)
    _write(Path(args.file), signed)
    own = kid in reg.governance_keys()
    note = "" if own else " (not one of this version's governance keys: it counts only as a " \
                          "trusted key of the version before)"
    _emit(args, {"file": args.file, "key_id": kid, "signatures": len(signed.signatures)},
          f"signed {args.file} (version {reg.version}) with key {kid}{note}; "
          f"{len(signed.signatures)} signature(s) now")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from node.federation.registry import RegistryError, merge_signatures

    merged = _read(args.file)
    for other in args.others:
        try:
            merged = merge_signatures(merged, _read(other))
        except RegistryError as exc:
            raise CliError(f"{other}: {exc}") from None
    _write(Path(args.file), merged)
    _emit(args, {"file": args.file, "signatures": len(merged.signatures)},
          f"{args.file}: {len(merged.signatures)} signature(s) after merging")
    return 0


# --- verify, show --------------------------------------------------------------------------


def _signature_lines(reg: Any, trusted: Any) -> list[str]:
    from node.federation.registry import signature_report

    trusts = (trusted, reg) if trusted is not None else (reg,)
    rep = signature_report(reg, *trusts)
    lines = [f"signed by {', '.join(sorted(rep.states(reg))) or 'no state'}: "
             f"{rep.votes(reg)} of {reg.threshold} needed by its own governance keys"]
    if trusted is not None:
        lines.append(f"  and {rep.votes(trusted)} of {trusted.threshold} needed by the trusted "
                     f"version {trusted.version}")
    for what, ids in (("unknown key", rep.unknown), ("INVALID signature", rep.invalid),
                      ("duplicate", rep.duplicates)):
        lines += [f"  {what}: {k}" for k in ids]
    return lines


def cmd_verify(args: argparse.Namespace) -> int:
    from node.federation.registry import (
        RegistryError,
        format_time,
        verify_self_signed,
        verify_update,
    )

    reg = _read(args.file)
    trusted = _read(args.trusted) if args.trusted else None
    lines = [f"{args.file}: registry version {reg.version}, digest {reg.digest}, "
             f"expires {format_time(reg.expires_ms)}", *_signature_lines(reg, trusted)]
    try:
        if trusted is not None:
            verify_update(trusted, reg, now_ms=_now())
        else:
            verify_self_signed(reg)
            if reg.expired(_now()):
                raise RegistryError(f"version {reg.version} has expired", reason="expired")
    except RegistryError as exc:
        if args.json:
            print(json.dumps({"ok": False, "reason": exc.reason, "error": exc.message,
                              "version": reg.version}))
        else:
            print("\n".join(lines))
        raise CliError(f"NOT valid: {exc} ({exc.reason})") from None
    _emit(args, {"ok": True, "version": reg.version, "digest": reg.digest},
          "\n".join([*lines, "valid" + (f" as the successor of version {trusted.version}"
                                         if trusted is not None else
                                         " against its own governance keys")]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from node.federation.registry import format_time
    from node.federation.registry_edit import diff

    reg = _read(args.file)
    against = _trusted(args, args.against)
    lines = [f"registry version {reg.version} ({reg.digest[:16]}...), expires "
             f"{format_time(reg.expires_ms)}, threshold {reg.threshold} of {len(reg.states)} "
             f"states, {len(reg.members)} member node(s), {len(reg.revoked)} revocation(s)"]
    changes = diff(against, reg) if against is not None else []
    if against is not None:
        lines.append(f"changes against version {against.version}:")
        lines += [f"  {c}" for c in changes] or ["  (none)"]
    else:
        for m in reg.members:
            revoked = " REVOKED" if reg.is_revoked("node_id", m.node_id) else ""
            lines.append(f"  {m.node_id:<10} {m.country} {','.join(m.endpoint):<24} "
                         f"roles {','.join(m.roles)} keys "
                         f"{','.join(k.key_id for k in m.signing_keys)}{revoked}")
    lines += _signature_lines(reg, against)
    _emit(args, {"version": reg.version, "digest": reg.digest, "changes": changes,
                 "members": [m.node_id for m in reg.members]}, "\n".join(lines))
    return 0


# --- publish -------------------------------------------------------------------------------


def cmd_publish(args: argparse.Namespace) -> int:
    from node.app import open_store
    from node.audit.log import MerkleAuditLog
    from node.federation.directory import check_self_listed
    from node.federation.registry import RegistryError, verify_self_signed, verify_update
    from node.federation.registry_keeper import RegistryKeeper, write_atomically
    from node.keys import load_signer

    cfg = _config(args)
    reg = _read(args.file)
    now = _now()
    signing_key = load_signer(cfg.signing_key)
    store = open_store(cfg)
    try:
        audit = MerkleAuditLog(store=store, node_id=cfg.node_id, signing_key=signing_key)
        anchor = cfg.registry is None
        try:
            if anchor:
                verify_self_signed(reg)
                if reg.expired(now):
                    raise RegistryError(f"version {reg.version} has expired", reason="expired")
                from node.core.envelope import key_id_for

                check_self_listed(reg, node_id=cfg.node_id,
                                  key_id=key_id_for(signing_key.public_key),
                                  tls_fingerprint=None)
                trusted_version = None
            else:
                assert cfg.registry is not None
                trusted = RegistryKeeper.trusted_version(store=store, path=cfg.registry)
                verify_update(trusted, reg, now_ms=now)
                trusted_version = trusted.version
        except RegistryError as exc:
            with store.transaction():
                audit.append({"event": "registry_refused", "reason": exc.reason,
                              "detail": exc.message[:200], "source": "cli",
                              "version": reg.version, "document_sha256": reg.digest},
                             time_ms=now)
            raise CliError(f"{args.file} is refused: {exc} ({exc.reason})") from None
        target = cfg.registry or (cfg.root / "registry.json")
        write_atomically(target, reg.to_bytes())
        if anchor:
            _switch_config_to_registry(cfg.root / CONFIG_NAME, target)
        with store.transaction():
            audit.append({"event": "registry_published", "version": reg.version,
                          "digest": reg.digest, "anchor": anchor,
                          "previous_version": trusted_version, "file": target.name},
                         time_ms=now)
    finally:
        store.close()
    what = ("installed as this node's trust anchor; node.toml now uses it" if anchor else
            f"verified against version {trusted_version}; a running node applies it within "
            f"{cfg.registry_refresh_s} s and its peers fetch it from there")
    _emit(args, {"published": reg.version, "digest": reg.digest, "anchor": anchor,
                 "file": str(target)}, f"registry version {reg.version} {what}")
    return 0


def _switch_config_to_registry(config: Path, target: Path) -> None:
    """Add ``registry = ...`` under ``[federation]`` in node.toml (comments kept)."""
    text = config.read_text()
    rel = os.path.relpath(target, config.parent)
    line = f'registry = "{rel}"   # the signed federation registry (replaces members)\n'
    if "\n[federation]\n" in text:
        text = text.replace("\n[federation]\n", f"\n[federation]\n{line}", 1)
    else:
        text += f"\n[federation]\n{line}"
    tmp = config.with_name(f".{config.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, config)


# --- parser --------------------------------------------------------------------------------


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    g = add_group(sub, "registry", "govern the signed federation registry")

    sp = add_command(g, "propose", cmd_propose,
                     "draft the next registry version from the current one plus changes",
                     common)
    sp.add_argument("--current", help="the current version (default: the node's trusted one)")
    sp.add_argument("--add-member", action="append", metavar="FILE.json",
                    help="a member entry (as 'bxnode init' prints it, or a registry entry)")
    sp.add_argument("--rotate-key", metavar="NODE", help="rotate this node's signing key")
    sp.add_argument("--new-key", metavar="PUB", help="with --rotate-key: the new public key "
                    "(base64, or a file holding it)")
    sp.add_argument("--old-key-until", metavar="TIME",
                    help="with --rotate-key: the old key stays valid until then (overlap)")
    sp.add_argument("--revoke", action="append", metavar="NODE", help="revoke a node")
    sp.add_argument("--reason", help="with --revoke: why (recorded in the registry)")
    sp.add_argument("--endpoint", action="append", nargs=2, metavar=("NODE", "ADDR"),
                    help="change a node's endpoint")
    sp.add_argument("--log-origin", action="append", nargs=2, metavar=("NODE", "ORIGIN"),
                    help="record NODE's audit log origin after 'bxnode audit reset-log' "
                         "(it prints this change), e.g. KAZ-BS bxnode/KAZ-BS/log-2")
    sp.add_argument("--set-governance", action="append", nargs=2,
                    metavar=("COUNTRY", "PUB[,PUB]"),
                    help="replace (or add) a state's governance keys")
    sp.add_argument("--expires", metavar="TIME", help="the new version's expiry time")
    sp.add_argument("--expires-in-days", type=int, metavar="N", help="expiry N days from now")
    sp.add_argument("--out", help="draft file (default registry-v<N>.draft.json)")

    sp = add_command(g, "sign", cmd_sign,
                     "sign a draft with one governance key (offline); signatures merge", common)
    sp.add_argument("file")
    sp.add_argument("--key", required=True, help="the governance key file (hex seed, 0600)")
    sp.add_argument("--dev", action="store_true", help="allow a development governance key")

    sp = add_command(g, "merge", cmd_merge,
                     "merge other signed copies of the same version into FILE", common)
    sp.add_argument("file")
    sp.add_argument("others", nargs="+")

    sp = add_command(g, "verify", cmd_verify,
                     "check signatures, threshold, version and expiry", common)
    sp.add_argument("file")
    sp.add_argument("--trusted", help="verify as the successor of this trusted version")

    sp = add_command(g, "show", cmd_show,
                     "describe a registry version and what changes against the current one",
                     common)
    sp.add_argument("file")
    sp.add_argument("--against", help="compare with this version (default: the node's)")

    sp = add_command(g, "publish", cmd_publish,
                     "install a verified version into this node (audited)", common)
    sp.add_argument("file")
