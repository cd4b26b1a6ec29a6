"""``bxnode backup``, ``restore``, ``backup-keygen`` and the restored log's way back.

* ``backup --out FILE --to KEY.pub``: an online, consistent snapshot, encrypted to the
  operator's key and signed by the node (:mod:`node.backup`);
* ``restore FILE --key KEY``: signature first, then everything else; the restored log is
  put on hold (:mod:`node.audit.hold`) and the witnesses are asked at once;
* ``audit recover-tail --from FILE``: the missing tail from a newer backup or a newer copy
  of the database (:mod:`node.audit.tail`), then the witnesses are asked again;
* ``audit resume``: ask the witnesses again (e.g. one was unreachable at restore);
* ``audit reset-log --reason TEXT``: declare that the log under its current origin ended;
  the next epoch's origin starts (:mod:`node.audit.origins`).

Each says in one sentence what it did or why it refused, and exits non-zero on a refusal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
from pathlib import Path
from typing import Any

from node.cli.main import CliError, _config, _emit, _node_dir, add_command, get_group

__all__ = ["register"]

MAX_RESET_REASON = 500


def _serving(node_dir: Path) -> int | None:
    """The port of a ``serve`` running on this node directory (its port file, answering)."""
    port_file = node_dir / "serve.port"
    try:
        port = int(port_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return port
    except OSError:
        return None


def _verify_keys(cfg: Any) -> list[bytes]:
    """The keys a backup of this node may be signed with: its own signing key, and every
    unrevoked key the federation lists for it (members file or the registry anchor)."""
    from node.app import now_ms
    from node.core.errors import BxError
    from node.federation.directory import load_directory
    from node.keys import load_signer

    keys = [load_signer(cfg.signing_key).public_key]
    try:
        me = load_directory(cfg, store=None, clock_ms=now_ms).member(cfg.node_id)
        keys += [k.public_key for k in me.keys if not k.revoked]
    except (BxError, OSError):
        pass  # the node's own key still verifies its backups
    return keys


# --- backup -------------------------------------------------------------------------------


def cmd_backup(args: argparse.Namespace) -> int:
    from node.app import now_ms
    from node.backup.keys import load_recipient
    from node.backup.ops import take_backup
    from node.cli.identity import check_operator_flag
    from node.keys import load_signer

    cfg = _config(args)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CliError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise CliError(f"{out.parent} is not a folder")
    check_operator_flag(cfg, args.operator)
    recipient = load_recipient(Path(args.to))
    m = take_backup(cfg, out=out, recipient=recipient,
                    signing_key=load_signer(cfg.signing_key), now_ms=now_ms(),
                    operator=args.operator or cfg.operator or "")
    _emit(args, {"out": str(out), "node_id": m.node_id, "backend": m.backend,
                 "created_ms": m.created_ms, "audit_origin": m.audit_origin,
                 "audit_size": m.audit_size, "recipient": m.recipient,
                 "bytes": m.body_bytes},
          f"wrote {out}: {m.backend} snapshot of {m.node_id} with its audit log at size "
          f"{m.audit_size}, encrypted to backup key {m.recipient}, signed by the node")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from node.backup.keys import generate_backup_key, recipient_id

    path = Path(args.out)
    pub = generate_backup_key(path)
    _emit(args, {"private": str(path), "public": f"{path}.pub", "id": recipient_id(pub)},
          f"wrote backup key {recipient_id(pub)}: {path} (private, keep it off the node) and "
          f"{path}.pub (give it to 'bxnode backup --to')")
    return 0


# --- restore, and the hold ------------------------------------------------------------------


def _recheck(args: argparse.Namespace) -> tuple[bool, str, dict[str, int]]:
    """Ask every witness what it holds of the log; lift the hold if the log holds it."""
    from node.audit.hold import RestoreHold, hold_of, lift_hold, place_hold
    from node.audit.verification import judge_restored
    from node.cli.audit import _ask_witnesses, _Opened

    with _Opened(args) as o:
        hold = hold_of(o.store)
        heads, failed = _ask_witnesses(o)
        report = o.log.verify(verifiers=o.verifiers, roots_at=[h.size for h in heads])
        verdict = judge_restored(report, heads, witnesses=o.witnesses(), failed=failed)
        if hold is None:
            return True, "the audit log is not on hold", verdict.witnessed
        if verdict.ok:
            lift_hold(o.store)
        else:
            place_hold(o.store, RestoreHold(
                since_ms=hold.since_ms, backup_created_ms=hold.backup_created_ms,
                backup_size=hold.backup_size, detail=verdict.detail,
                witnessed=verdict.witnessed))
    return verdict.ok, verdict.detail, verdict.witnessed


def _after_check(args: argparse.Namespace, payload: dict[str, Any], done: str) -> int:
    ok, detail, witnessed = _recheck(args)
    payload.update({"on_hold": not ok, "detail": detail, "witnessed": witnessed})
    if ok:
        _emit(args, payload, f"{done}; {detail}: the hold is lifted and the node may serve")
        return 0
    _emit(args, payload, f"{done}; the audit log stays ON HOLD (it will sign nothing and the "
                         f"node will not serve): {detail}; recover the missing tail "
                         "(bxnode audit recover-tail --from FILE) or declare a log reset "
                         "(bxnode audit reset-log --reason ...)")
    return 4


def cmd_restore(args: argparse.Namespace) -> int:
    from node.app import now_ms
    from node.backup.keys import load_backup_key
    from node.backup.ops import restore_backup

    cfg = _config(args)
    port = _serving(_node_dir(args))
    if port is not None:
        raise CliError(f"the node is serving (port {port}); stop it before restoring")
    file = Path(args.file)
    if not file.is_file():
        raise CliError(f"{file} is not a readable file")
    result = restore_backup(cfg, file, key=load_backup_key(Path(args.key)),
                            verify_keys=_verify_keys(cfg), now_ms=now_ms())
    m = result.manifest
    # a request the lost node accepted after the backup is fresh for at most 2 x skew
    until = result.hold.since_ms + 2 * cfg.clock_skew_s * 1000
    payload: dict[str, Any] = {"restored": str(file), "node_id": m.node_id,
                               "created_ms": m.created_ms, "audit_size": m.audit_size,
                               "replaced": None if result.replaced is None
                               else str(result.replaced), "replays_possible_until_ms": until}
    when = dt.datetime.fromtimestamp(until / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = (f"restored {m.node_id} from {file} (signature verified; audit log at size "
            f"{m.audit_size})" + (f"; the database it replaced is kept at {result.replaced}"
                                  if result.replaced else "")
            + f"; requests the lost node accepted after the backup stay fresh until {when}")
    return _after_check(args, payload, done)


def cmd_resume(args: argparse.Namespace) -> int:
    return _after_check(args, {}, "asked the witnesses again")


def cmd_recover_tail(args: argparse.Namespace) -> int:
    import contextlib

    from node.app import now_ms, open_store
    from node.audit.log import log_verifiers
    from node.audit.tail import recover_tail
    from node.backup.archive import MAGIC
    from node.store.keys import load_db_key
    from node.store.sqlcipher import Store

    cfg = _config(args)
    src = Path(args.source)
    if not src.is_file():
        raise CliError(f"{src} is not a readable file")
    with open(src, "rb") as f:
        is_backup = f.read(len(MAGIC)) == MAGIC
    with contextlib.ExitStack() as stack:
        if cfg.storage.backend == "postgresql":
            from node.backup.keys import load_backup_key
            from node.store.postgresql.backup import open_backup_schema

            if not is_backup or not args.key:
                raise CliError(f"a PostgreSQL node recovers its tail from a newer bxnode "
                               f"backup: pass one (and --key, the backup private key); {src} "
                               + ("is one, but --key is missing" if is_backup else "is not"))
            _, source = stack.enter_context(open_backup_schema(
                cfg, src, key=load_backup_key(Path(args.key)), verify_keys=_verify_keys(cfg)))
        elif is_backup:
            from node.backup.keys import load_backup_key
            from node.backup.ops import open_backup_database

            if not args.key:
                raise CliError(f"{src} is a backup: pass --key (the backup private key)")
            _, source = stack.enter_context(open_backup_database(
                cfg, src, key=load_backup_key(Path(args.key)), verify_keys=_verify_keys(cfg)))
        else:
            try:
                source = Store.open(src, load_db_key(cfg.db_key_file))
            except Exception as exc:
                raise CliError(f"{src} is neither a bxnode backup nor a database this node's "
                               f"key opens ({exc})") from None
            stack.callback(source.close)
        local = open_store(cfg)
        stack.callback(local.close)
        keys = _verify_keys(cfg)
        report = recover_tail(local, source, node_id=cfg.node_id,
                              verifiers=log_verifiers(cfg.node_id, keys), now_ms=now_ms())
    payload: dict[str, Any] = {"from": str(src), "local_size": report.local_size,
                               "recovered": report.recovered, "size": report.new_size,
                               "nonces": report.nonces}
    return _after_check(args, payload,
                        f"recovered entries {report.local_size + 1}..{report.new_size} of the "
                        f"audit log from {src} ({report.nonces} unexpired nonce(s) with them)")


def cmd_reset_log(args: argparse.Namespace) -> int:
    from node.app import now_ms
    from node.audit.hold import hold_of, lift_hold, log_epoch, set_epoch
    from node.audit.log import MerkleAuditLog
    from node.audit.origins import log_origin
    from node.cli.audit import _ask_witnesses, _Opened
    from node.cli.identity import check_operator_flag
    from node.keys import load_signer
    from node.store.witness import WitnessTables

    statement = args.reason.strip()
    if not 1 <= len(statement) <= MAX_RESET_REASON or any(ord(c) < 0x20 for c in statement):
        raise CliError(f"--reason must be 1..{MAX_RESET_REASON} printable characters")
    with _Opened(args) as o:
        check_operator_flag(o.cfg, args.operator)
        operator = args.operator or o.cfg.operator
        if not operator:
            raise CliError("no operator id: pass --operator or set [client] operator")
        heads, failed = _ask_witnesses(o)  # what is given up, for the record (best effort)
        hold = hold_of(o.store)
        epoch = log_epoch(o.store)
        old, new = log_origin(o.cfg.node_id, epoch), log_origin(o.cfg.node_id, epoch + 1)
        log_ = MerkleAuditLog(store=o.store, node_id=o.cfg.node_id,
                              signing_key=load_signer(o.cfg.signing_key))
        size = log_.next_seq() - 1
        with o.store.transaction():
            set_epoch(o.store, epoch + 1)
            lift_hold(o.store)
            witness = WitnessTables(o.store)
            witness.ensure_schema()
            witness.reset_witnessed_sizes()  # a new log: from 0
            seq = log_.append({
                "event": "audit_log_reset", "operator": operator, "statement": statement,
                "old_origin": old, "new_origin": new, "log_size": size,
                "restored_from_size": None if hold is None else hold.backup_size,
                "witnessed": {h.witness: h.size for h in heads},
                "not_asked": sorted(failed)}, time_ms=now_ms())  # sealed under the new one
    node_id = o.cfg.node_id
    propose = f"bxnode registry propose --log-origin {node_id} {new}"
    _emit(args, {"old_origin": old, "new_origin": new, "audit_seq": seq, "log_size": size,
                 "witnessed": {h.witness: h.size for h in heads},
                 "registry_change": {"node_id": node_id, "log_origin": new,
                                     "propose": propose}},
          f"the audit log under {old} ended at size {size} (witnesses held "
          + (", ".join(f"{h.witness}: {h.size}" for h in heads) or "nothing they could say")
          + f"); it goes on under the new origin {new} from entry {seq}, which records the "
          "reset. The witnesses refuse the new origin (log_origin_unlisted) until the "
          f"federation lists it: propose the registry change '{propose}' (then each state "
          "signs it: bxnode registry sign; publish it: bxnode registry publish; with a "
          f"members file, set \"log_origin\": \"{new}\" in {node_id}'s entry on every "
          "witness); they then start it from size 0 and keep what they hold of the old one")
    return 0


# --- registration ---------------------------------------------------------------------------


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    sp = add_command(sub, "backup", cmd_backup,
                     "a consistent snapshot of the node's database while it serves, "
                     "encrypted to a backup key and signed by the node", common)
    sp.add_argument("--out", required=True, help="the backup file to write")
    sp.add_argument("--to", required=True,
                    help="the backup public key to encrypt to (from 'bxnode backup-keygen')")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    sp.add_argument("--operator", help="your operator id, recorded in the backup's audit "
                                       "entry (default: from node.toml)")
    sp = add_command(sub, "backup-keygen", cmd_keygen,
                     "create a backup key pair: FILE (private, 0600) and FILE.pub", common)
    sp.add_argument("--out", required=True, help="the private key file to write")
    sp = add_command(sub, "restore", cmd_restore,
                     "restore a backup (signature checked first); the audit log stays on "
                     "hold until its witnesses show it cannot fork", common)
    sp.add_argument("file")
    sp.add_argument("--key", required=True, help="the backup private key")
    au = get_group(sub, "audit")
    sp = add_command(au, "recover-tail", cmd_recover_tail,
                     "recover the entries a restored log lacks from a newer backup or a "
                     "newer copy of the database", common)
    sp.add_argument("--from", dest="source", required=True,
                    help="a newer bxnode backup, or a database file under this node's key")
    sp.add_argument("--key", help="the backup private key (when --from is a backup)")
    add_command(au, "resume", cmd_resume,
                "ask the witnesses again whether a restored log may sign (lifts the hold)",
                common)
    sp = add_command(au, "reset-log", cmd_reset_log,
                     "declare the log under its current origin ended and start a new origin",
                     common)
    sp.add_argument("--reason", required=True, help="why (recorded in the log; no personal "
                                                    "data)")
    sp.add_argument("--operator", help="your operator id (default: from node.toml)")
