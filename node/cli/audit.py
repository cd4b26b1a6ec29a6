"""``bxnode audit ...``: the auditor's tools over a node's Merkle audit log.

verify, list, search, export, prove, verify-bundle, report, erase-expired.  Every command
but ``verify-bundle`` reads the node directory (it needs the database key); a bundle is
verified with nothing but the bundle and a members file.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from collections.abc import Iterator
from typing import Any

from node.cli.main import CliError, _config, _emit, add_command, add_group

__all__ = ["register"]

EXPORT_COLUMNS = ("seq", "time", "event", "requester", "peer", "operator", "purpose",
                  "case_ref", "query_kind", "outcome", "status", "reason", "hits", "no_hits",
                  "items", "request_digest", "response_digest", "erased")


def _parse_time(text: str | None) -> int | None:
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"time {text!r} is not ISO 8601 (e.g. 2026-11-23T10:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not at least 1")
    return value


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Opened:
    """The node's store and its audit log (read side), closed on exit."""

    def __init__(self, args: argparse.Namespace) -> None:
        from node.app import open_store
        from node.audit.log import MerkleAuditLog, log_verifiers
        from node.federation.members_file import load_members

        self.cfg = _config(args)
        self.store = open_store(self.cfg)
        try:
            self.log = MerkleAuditLog(store=self.store, node_id=self.cfg.node_id)
            directory = load_members(self.cfg.members)
            me = directory.member(self.cfg.node_id)
            self.verifiers = log_verifiers(self.cfg.node_id, [k.public_key for k in me.keys])
            self.directory = directory
        except BaseException:
            self.store.close()
            raise

    def __enter__(self) -> _Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()


# --- verify, list, search, export -------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    with _Opened(args) as o:
        retention = o.cfg.audit.retention_days * 86_400_000
        report = o.log.verify(verifiers=o.verifiers, retention_ms=retention)
    payload = {"ok": report.ok, "entries": report.entries, "head": report.head,
               "first_bad_seq": report.first_bad_seq, "problem": report.problem,
               "checkpoints": report.checkpoints, "erased": report.erased,
               "checkpoint_size": report.checkpoint_size}
    if report.ok:
        _emit(args, payload, f"audit log verified: {report.entries} entries, "
                             f"{report.checkpoints} signed checkpoints, root {report.head}")
        return 0
    if args.json:
        print(json.dumps(payload))
    raise CliError(f"audit log is NOT intact: {report.problem}")


def _query(args: argparse.Namespace) -> Any:
    from node.audit.log import AuditQuery

    return AuditQuery(peer=args.peer, purpose=args.purpose, outcome=args.outcome,
                      operator=getattr(args, "operator", None),
                      case_ref=getattr(args, "case_ref", None),
                      event=getattr(args, "event", None),
                      from_ms=_parse_time(args.since), to_ms=_parse_time(args.until),
                      limit=args.limit)


def cmd_list(args: argparse.Namespace) -> int:
    with _Opened(args) as o:
        entries = list(o.log.search(_query(args)))
    if args.json:
        for e in entries:
            print(json.dumps(e, ensure_ascii=False, sort_keys=True))
        return 0
    for e in entries:
        when = iso(e["time_ms"])
        who = e.get("requester") or e.get("peer") or "-"
        print(f"{e['seq']:>6} {when} {e.get('event', 'erased'):<16} {who:<10} "
              f"{e.get('purpose', '-'):<22} {e.get('outcome', '-'):<9} "
              f"{e.get('reason', '') or ''}")
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
    return 0


def _row(e: dict[str, Any]) -> dict[str, Any]:
    out = {c: e.get(c, "") for c in EXPORT_COLUMNS}
    out["time"] = iso(e["time_ms"])
    out["erased"] = bool(e.get("erased", False))
    return out


def write_export(entries: Iterator[dict[str, Any]], fmt: str, out: Any) -> int:
    n = 0
    if fmt == "csv":
        w = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        w.writeheader()
        for e in entries:
            w.writerow(_row(e))
            n += 1
    else:
        for e in entries:
            out.write(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n


def cmd_export(args: argparse.Namespace) -> int:
    with _Opened(args) as o:
        entries = o.log.search(_query(args))
        if args.out:
            with open(args.out, "w", encoding="utf-8", newline="") as f:
                n = write_export(entries, args.format, f)
            print(f"exported {n} entr{'y' if n == 1 else 'ies'} to {args.out}", file=sys.stderr)
        else:
            write_export(entries, args.format, sys.stdout)
    return 0


# --- erase-expired -----------------------------------------------------------------------------


def cmd_erase_expired(args: argparse.Namespace) -> int:
    from node.app import now_ms

    with _Opened(args) as o:
        days = args.retention_days or o.cfg.audit.retention_days
        n = o.log.erase_expired(now_ms=now_ms(), retention_ms=days * 86_400_000)
    _emit(args, {"erased": n, "retention_days": days},
          f"erased the bodies of {n} entr{'y' if n == 1 else 'ies'} older than {days} days; "
          "their leaves stay in the tree")
    return 0


# --- registration ------------------------------------------------------------------------------


def _filters(sp: argparse.ArgumentParser, *, full: bool) -> None:
    sp.add_argument("--peer", help="requesting (or asked) node")
    sp.add_argument("--purpose")
    sp.add_argument("--outcome", choices=["answered", "denied", "rejected", "refused"])
    if full:
        sp.add_argument("--operator", help="operator id")
        sp.add_argument("--case-ref", help="case reference")
        sp.add_argument("--event", help="event, e.g. lookup, lookup_sent, watchlist_import")
    sp.add_argument("--since", help="ISO 8601 time")
    sp.add_argument("--until", help="ISO 8601 time")
    sp.add_argument("--limit", type=_positive_int, default=1000 if not full else 1_000_000,
                    help="at most this many")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    au = add_group(sub, "audit", "review and verify the audit log")
    add_command(au, "verify", cmd_verify,
                "recompute the Merkle tree, check every signed checkpoint; name the first bad "
                "entry", common)
    _filters(add_command(au, "list", cmd_list, "list audit entries", common), full=False)
    _filters(add_command(au, "search", cmd_list,
                         "search entries by peer, operator, purpose, case, outcome, time",
                         common), full=True)
    sp = add_command(au, "export", cmd_export, "export entries as JSON Lines or CSV", common)
    sp.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    sp.add_argument("--out", help="file to write (default: stdout)")
    _filters(sp, full=True)
    sp = add_command(au, "erase-expired", cmd_erase_expired,
                     "erase bodies past their retention period (leaves stay verifiable)", common)
    sp.add_argument("--retention-days", type=_positive_int,
                    help="override [audit] retention_days")
