"""``bxnode watchlist add | update | withdraw | show | list | stats | export | sync |
apply-feed``: the life of an alert (issue 13), thin over :mod:`node.watchlist.lifecycle`.

``import`` stays in :mod:`node.cli.main`.  Every change needs ``--operator`` (default: the
node's ``[client] operator``) and a ``--reason``; it is audited with both (never the
alert's personal data); a refused change exits 1 with one sentence and is audited too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from node.cli.main import CliError, _config, _emit, _positive_int, add_command, get_group

__all__ = ["register"]

#: CLI option -> import column, for add and update.
_FIELDS = {"kind": "kind", "ref": "owner_ref", "action": "action", "expires": "expires",
           "contact": "contact", "number": "number", "state": "issuing_state",
           "type": "doc_type", "loss_type": "loss_type", "family": "family_name",
           "given": "given_names", "patronymic": "patronymic", "dob": "dob",
           "nationality": "nationality", "sex": "sex"}


@contextmanager
def _desk(args: argparse.Namespace) -> Iterator[Any]:
    from node.app import now_ms, open_store
    from node.audit.log import MerkleAuditLog
    from node.core.signer import secret_material
    from node.keys import load_signer
    from node.watchlist.lifecycle import AlertDesk, alert_pseudonym

    cfg = _config(args)
    signing_key = load_signer(cfg.signing_key)
    store = open_store(cfg)
    try:
        audit = MerkleAuditLog(store=store, node_id=cfg.node_id, signing_key=signing_key)
        yield AlertDesk(db=store, audit=audit, clock_ms=now_ms,
                        pseudonym=alert_pseudonym(secret_material(signing_key)))
    finally:
        store.close()


def _operator(args: argparse.Namespace) -> str:
    from node.cli.identity import check_operator_flag  # a typed id only in dev_mode

    check_operator_flag(_config(args), getattr(args, "operator", None))
    operator = getattr(args, "operator", None) or _config(args).operator
    if not operator:
        raise CliError("no operator id: pass --operator or set [client] operator in node.toml")
    return str(operator)


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _summary(a: Any, today: str) -> dict[str, Any]:
    return {"ref": a.ref, "kind": a.kind, "source": a.source, "action": a.action,
            "expires": a.expires, "state": a.state(today), "documents": len(a.documents)}


def _line(a: Any, today: str) -> str:
    return (f"{a.ref}  {a.kind:<8} {a.state(today):<9} {a.action:<14} expires {a.expires}  "
            f"source {a.source or '-'}")


def _row_from_args(args: argparse.Namespace, *, only_given: bool) -> dict[str, str]:
    row: dict[str, str] = {}
    for opt, col in _FIELDS.items():
        if only_given and opt in ("ref", "kind"):  # update REF: the positional reference
            continue
        value = getattr(args, opt, None)
        if value is not None:
            row[col] = str(value)
        elif not only_given:
            row[col] = ""
    return row


def _file_errors(args: argparse.Namespace, exc: Any) -> None:
    """Each bad line of a refused file on stdout (stderr keeps the one sentence)."""
    errors = getattr(exc, "errors", None)
    if not errors:
        return
    if args.json:
        print(json.dumps({"errors": [{"line": n, "error": m} for n, m in errors]},
                         ensure_ascii=False))
    else:
        for n, m in errors[:50]:
            print(f"line {n}: {m}" if n else m)


# --- commands ------------------------------------------------------------------------------


def cmd_add(args: argparse.Namespace) -> int:
    from node.cli.watchlist_local import through_local  # under an officer identity

    done = through_local(args, "add", record=_row_from_args(args, only_given=False))
    if done is not None:
        return done
    operator = _operator(args)
    with _desk(args) as desk:
        alert = desk.add(_row_from_args(args, only_given=False), source=args.source,
                         operator=operator, reason=args.reason)
        alert_id = desk.pseudonym(alert.ref)
    today = _today()
    _emit(args, {"added": _summary(alert, today), "alert_id": alert_id},
          f"added {alert.kind} alert {alert.ref} ({alert.state(today)}, source {alert.source})")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from node.cli.watchlist_local import through_local  # under an officer identity

    changes = _row_from_args(args, only_given=True)
    if args.source is not None:
        changes["source"] = args.source
    done = through_local(args, "update", record=changes)
    if done is not None:
        return done
    operator = _operator(args)
    with _desk(args) as desk:
        alert = desk.update(args.ref, changes, operator=operator, reason=args.reason)
    today = _today()
    _emit(args, {"updated": _summary(alert, today), "fields": sorted(changes)},
          f"updated alert {alert.ref}: {', '.join(sorted(changes))}")
    return 0


def cmd_withdraw(args: argparse.Namespace) -> int:
    from node.cli.watchlist_local import through_local  # under an officer identity

    done = through_local(args, "withdraw", record={})
    if done is not None:
        return done
    operator = _operator(args)
    with _desk(args) as desk:
        alert = desk.withdraw(args.ref, operator=operator, reason=args.reason)
    _emit(args, {"withdrawn": alert.ref, "kind": alert.kind, "source": alert.source},
          f"withdrew {alert.kind} alert {alert.ref}: it no longer hits, on any replica")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _desk(args) as desk:
        alert = desk.get(args.ref)
        if alert is None:
            raise CliError(f"no alert {args.ref} on this node")
        alert_id = desk.pseudonym(alert.ref)
        meta = desk.tables.meta(alert.ref)
    today = _today()
    payload = {**_summary(alert, today), "alert_id": alert_id, "rows": alert.rows(),
               "withdrawn_ms": alert.withdrawn_ms,
               "created_ms": meta.created_ms if meta else None,
               "updated_ms": meta.updated_ms if meta else None}
    text = [_line(alert, today), f"audit alert_id {alert_id}"]
    for r in alert.rows():
        if r["kind"] == "person":
            text.append(f"  person {r['family_name']} {r['given_names']} {r['patronymic']} "
                        f"dob {r['dob']} {r['nationality']} {r['sex']}".replace("  ", " "))
        else:
            text.append(f"  document {r['number']} {r['issuing_state']} {r['doc_type']}"
                        + (f" {r['loss_type']}" if r["loss_type"] else ""))
    _emit(args, payload, "\n".join(text))
    return 0


def _selected(desk: Any, args: argparse.Namespace, today: str) -> list[Any]:
    out = []
    for a in desk.iter_alerts():
        if args.kind and a.kind != args.kind:
            continue
        if args.source is not None and a.source != args.source:
            continue
        if args.state and a.state(today) != args.state:
            continue
        if getattr(args, "action", None) and a.action != args.action:
            continue
        out.append(a)
    return out


def cmd_list(args: argparse.Namespace) -> int:
    today = _today()
    with _desk(args) as desk:
        alerts = _selected(desk, args, today)
    if args.limit:
        alerts = alerts[:args.limit]
    _emit(args, {"alerts": [_summary(a, today) for a in alerts], "count": len(alerts)},
          "\n".join([_line(a, today) for a in alerts] + [f"{len(alerts)} alert(s)"]))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with _desk(args) as desk:
        stats = desk.stats(_today())
    s = stats["by_state"]
    text = [f"{stats['alerts']} alert(s): {s['live']} live, {s['expired']} expired, "
            f"{s['withdrawn']} withdrawn (kept until retention ends); generation "
            f"{stats['generation']}"]
    for source, states in sorted(stats["by_source"].items()):
        text.append(f"  source {source}: " + ", ".join(f"{n} {k}" for k, n in
                                                       sorted(states.items())))
    _emit(args, stats, "\n".join(text))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from node.watchlist.lifecycle import export_lines

    today = _today()
    args.kind, args.action = args.kind, None
    with _desk(args) as desk:
        alerts = [a for a in _selected(desk, args, today) if a.state(today) != "withdrawn"]
    lines = list(export_lines(alerts))
    if args.out:
        Path(args.out).write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
        _emit(args, {"exported": len(alerts), "rows": len(lines), "out": args.out},
              f"exported {len(alerts)} alert(s) ({len(lines)} row(s)) to {args.out}")
    else:
        sys.stdout.write("".join(ln + "\n" for ln in lines))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from node.core.errors import BxError

    operator = _operator(args)
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path} is not a readable file")
    with _desk(args) as desk:
        try:
            plan = desk.sync(path, source=args.source, operator=operator,
                             max_withdraw=args.max_withdraw, dry_run=args.dry_run,
                             reason=args.reason or "", fmt=args.format)
        except BxError as exc:
            _file_errors(args, exc)
            raise
    c = plan.counts()
    verb = "would change" if args.dry_run else "applied"
    text = [f"+ {r}" for r in plan.added] + [f"~ {r}" for r in plan.changed] + \
        [f"- {r}" for r in plan.withdrawn]
    text.append(f"sync of {plan.source} {verb}: {c['added']} added, {c['changed']} changed, "
                f"{c['withdrawn']} withdrawn, {c['unchanged']} unchanged"
                + (" (dry run: nothing was changed)" if args.dry_run else ""))
    _emit(args, {**c, "source": plan.source, "dry_run": args.dry_run, "applied": plan.applied,
                 "added_refs": plan.added, "changed_refs": plan.changed,
                 "withdrawn_refs": plan.withdrawn}, "\n".join(text))
    return 0


def cmd_apply_feed(args: argparse.Namespace) -> int:
    from node.core.errors import BxError

    operator = _operator(args)
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path} is not a readable file")
    with _desk(args) as desk:
        try:
            result = desk.apply_feed(path, operator=operator)
        except BxError as exc:
            _file_errors(args, exc)
            raise
    _emit(args, {"events": result.events, "ops": result.by_op, "last_seq": result.last_seq},
          f"applied {result.events} event(s): "
          + ", ".join(f"{n} {op}" for op, n in sorted(result.by_op.items()))
          + "; last applied " + ", ".join(f"{s} #{n}" for s, n in sorted(
              result.last_seq.items())))
    return 0


# --- parser ----------------------------------------------------------------------------------


def _alert_fields(sp: argparse.ArgumentParser, *, for_add: bool) -> None:
    if for_add:
        sp.add_argument("--kind", required=True, choices=["document", "person"])
        sp.add_argument("--ref", required=True, help="your reference for the alert")
        sp.add_argument("--action", required=True,
                        help="refuse_entry, arrest, seize_document, inform or monitor")
        sp.add_argument("--expires", required=True, help="review / expiry date YYYY-MM-DD")
    else:
        sp.add_argument("--action", help="refuse_entry, arrest, seize_document, inform, monitor")
        sp.add_argument("--expires", help="review / expiry date YYYY-MM-DD")
    sp.add_argument("--contact", help="contact point returned with a hit")
    sp.add_argument("--number", help="document number")
    sp.add_argument("--state", help="issuing state, ICAO code")
    sp.add_argument("--type", help="document type (P, I, ...)")
    sp.add_argument("--loss-type", help="stolen, lost, revoked or invalidated")
    sp.add_argument("--family", help="family name as written")
    sp.add_argument("--given", help="given names as written")
    sp.add_argument("--patronymic")
    sp.add_argument("--dob", help="YYYY, YYYY-MM or YYYY-MM-DD")
    sp.add_argument("--nationality", help="ICAO code")
    sp.add_argument("--sex", choices=["M", "F", "X"])


def _change_args(sp: argparse.ArgumentParser, *, reason_required: bool = True,
                 officer: bool = False) -> None:
    sp.add_argument("--reason", required=reason_required, help="why (audited)")
    if officer:  # --operator (dev_mode only) and the officer identity options
        from node.cli.identity import add_officer_args

        add_officer_args(sp)
    else:
        sp.add_argument("--operator", help="your operator id (dev_mode only; default: "
                                           "[client] operator in node.toml)")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    wl = get_group(sub, "watchlist")

    def add(name: str, fn: Any, help_: str) -> argparse.ArgumentParser:
        return add_command(wl, name, fn, help_, common)

    sp = add("add", cmd_add, "add one alert (audited with operator and reason)")
    _alert_fields(sp, for_add=True)
    sp.add_argument("--source", required=True, help="the agency the alert comes from")
    _change_args(sp, officer=True)

    sp = add("update", cmd_update, "change fields of an alert (audited)")
    sp.add_argument("ref")
    _alert_fields(sp, for_add=False)
    sp.add_argument("--source", help="move the alert to another source agency")
    _change_args(sp, officer=True)

    sp = add("withdraw", cmd_withdraw,
             "withdraw an alert: from the commit on it never hits, on any replica")
    sp.add_argument("ref")
    _change_args(sp, officer=True)

    sp = add("show", cmd_show, "one alert, its state and its audit alert_id")
    sp.add_argument("ref")

    for name, fn, help_ in (("list", cmd_list, "list alerts"),
                            ("export", cmd_export,
                             "write live and expired alerts as JSON Lines (sync's format)")):
        sp = add(name, fn, help_)
        sp.add_argument("--kind", choices=["document", "person"])
        sp.add_argument("--source", help="only this source agency ('' for none)")
        sp.add_argument("--state", choices=["live", "expired", "withdrawn"])
        if name == "list":
            sp.add_argument("--action")
            sp.add_argument("--limit", type=_positive_int)
        else:
            sp.add_argument("--out", help="file to write (default: stdout)")

    add("stats", cmd_stats, "counts of alerts by state, kind and source")

    sp = add("sync", cmd_sync, "make one source's alerts exactly those of FILE, the complete "
                               "current list (one transaction)")
    sp.add_argument("file")
    sp.add_argument("--source", required=True, help="the agency whose complete list FILE is")
    sp.add_argument("--dry-run", action="store_true", help="show the difference only")
    sp.add_argument("--max-withdraw", type=int, default=100,
                    help="refuse a sync withdrawing more alerts than this (default 100)")
    sp.add_argument("--format", choices=["csv", "jsonl"], help="default: from the file name")
    _change_args(sp, reason_required=False)

    sp = add("apply-feed", cmd_apply_feed,
             "apply a delta feed (JSON Lines of add/update/withdraw events, numbered per "
             "source); a gap or a replay applies nothing")
    sp.add_argument("file")
    sp.add_argument("--operator", help="your operator id (default: from node.toml)")
