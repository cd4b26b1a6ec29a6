"""``bxnode crossings``: BCPs, crossing records, confirmations and reconciliation."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from node.cli.main import CliError, _config, _emit, add_command, add_group

__all__ = ["register"]


def _time(text: str, what: str) -> int:
    from node.core.errors import InvalidInput
    from node.crossings.importer import parse_utc

    try:
        return parse_utc(text, what)
    except InvalidInput as exc:
        raise CliError(str(exc)) from None


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_peer(cfg: Any, peer: str) -> tuple[str, str]:
    """``--peer`` is a node id (KGZ-BS) or a country code (KGZ): (node id, country)."""
    from node.app import now_ms
    from node.federation.directory import load_directory

    members = load_directory(cfg, store=None, clock_ms=now_ms).members()
    for m in members:
        if m.node_id == peer:
            return m.node_id, m.country
    by_country = [m for m in members if m.country == peer and m.node_id != cfg.node_id]
    if len(by_country) == 1:
        return by_country[0].node_id, by_country[0].country
    if len(by_country) > 1:
        raise CliError(f"several members are in {peer}; name the node id")
    raise CliError(f"peer {peer} is not a member of the federation")


def _audit_log(cfg: Any, store: Any) -> Any:
    from node.audit.log import MerkleAuditLog
    from node.keys import load_signer

    return MerkleAuditLog(store=store, node_id=cfg.node_id,
                          signing_key=load_signer(cfg.signing_key))


def _typed_operator(cfg: Any, args: argparse.Namespace) -> None:
    """An import is the node administrator's act, audited as ``[client] operator``; a
    typed ``--operator`` is believed only in development."""
    from node.cli.identity import check_operator_flag

    check_operator_flag(cfg, args.operator)


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    from node.app import open_store

    cfg = _config(args)
    return cfg, open_store(cfg)


# --- bcps / import ------------------------------------------------------------------------


def cmd_bcps(args: argparse.Namespace) -> int:
    from node.app import now_ms
    from node.core.errors import InvalidInput
    from node.crossings.bcps import parse_bcp_file
    from node.crossings.store import CrossingStore

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path} is not a readable file")
    try:
        bmap = parse_bcp_file(path)
    except InvalidInput as exc:
        raise CliError(f"{exc}; nothing was imported") from None
    cfg, store = _open(args)
    try:
        _typed_operator(cfg, args)
        own = sorted(c for c, b in bmap.bcps.items() if b.country == cfg.country)
        if not own:
            raise CliError(f"{path.name} lists no BCP of {cfg.country}; nothing was imported")
        cs = CrossingStore(store)
        with store.transaction():
            cs.replace_bcps(bmap)
            _audit_log(cfg, store).append({
                "event": "bcps_imported", "bcps": len(bmap.bcps), "own": own,
                "pairs": len(bmap.pairs), "operator": args.operator or cfg.operator,
                "source": path.name}, time_ms=now_ms())
        facing = [{"own": f.own, "faces": f.other, "country": bmap.bcps[f.other].country,
                   "section": f.section} for f in bmap.facing(cfg.country)]
    finally:
        store.close()
    lines = [f"imported {len(bmap.bcps)} BCP(s), {len(bmap.pairs)} facing pair(s); "
             f"this node's BCPs: {', '.join(own)}"]
    lines += [f"  {f['own']} faces {f['faces']} ({f['section']})" for f in facing]
    _emit(args, {"bcps": len(bmap.bcps), "pairs": len(bmap.pairs), "own": own,
                 "facing": facing}, "\n".join(lines))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from node.app import now_ms
    from node.core.errors import InvalidInput
    from node.crossings.importer import parse_crossings_file
    from node.crossings.store import CrossingStore

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path} is not a readable file")
    cfg, store = _open(args)
    try:
        _typed_operator(cfg, args)
        cs = CrossingStore(store)
        own = {c for c, b in cs.bcp_map().bcps.items() if b.country == cfg.country}
        if not own:
            raise CliError("this node has no BCPs yet: run 'bxnode crossings bcps FILE' first")
        result = parse_crossings_file(path, own_bcps=own, fmt=args.format)
        if result.error_count:
            if args.json:
                print(json.dumps({"imported": 0, "error_count": result.error_count, "errors": [
                    {"line": n, "error": m} for n, m in result.errors]}))
            else:
                print("\n".join(f"line {n}: {m}" for n, m in result.errors), file=sys.stderr)
            raise CliError(f"{result.error_count} bad row(s) in {path.name}; "
                           "nothing was imported")
        if not result.records:
            raise CliError(f"{path.name} holds no records; nothing was imported")
        now = now_ms()
        try:
            with store.transaction():
                new, dup = cs.insert(result.records, now_ms=now)
                _audit_log(cfg, store).append({
                    "event": "crossings_recorded", "via": "import", "records": new,
                    "duplicates": dup, "operator": args.operator or cfg.operator,
                    "source": path.name}, time_ms=now)
        except InvalidInput as exc:
            raise CliError(f"{exc}; nothing was imported") from None
    finally:
        store.close()
    _emit(args, {"imported": new, "duplicates": dup},
          f"imported {new} crossing record(s)"
          + (f"; {dup} already stored (unchanged)" if dup else ""))
    return 0


# --- confirm / reconcile ------------------------------------------------------------------


def _client_ctx(args: argparse.Namespace, cfg: Any, store: Any,
                operator: str) -> tuple[Any, Any]:
    from node.cli.main import _client
    from node.client.peer import QueryContext

    return _client(cfg, store), QueryContext(operator=operator, purpose=args.purpose,
                                             legal_basis=args.legal_basis,
                                             case_ref=args.case_ref)


def cmd_confirm(args: argparse.Namespace) -> int:
    from node.cli.identity import call, officer
    from node.core.errors import BxError
    from node.core.model import DocumentQuery
    from node.crossings.client import confirm_crossings
    from node.crossings.model import CrossingAnswer, CrossingQuestion, Direction

    cfg = _config(args)
    peer, _ = resolve_peer(cfg, args.peer)
    try:
        q = CrossingQuestion(
            subject=DocumentQuery(number=args.doc_number.upper(),
                                  issuing_state=args.doc_state.upper(),
                                  doc_type=args.doc_type.upper()),
            direction=Direction(args.direction), bcp=args.bcp or "",
            section=args.section or "", window_start_ms=_time(args.since, "--from"),
            window_end_ms=_time(args.until, "--to"))
    except BxError as exc:
        raise CliError(f"{exc} ({exc.reason})") from None
    from node.app import open_store

    with officer(args, cfg, "crossings confirm") as off:
        if off.local is not None:
            answers, _seq = call(off.local.confirm_crossings, peer, [q], purpose=args.purpose,
                                 case_ref=args.case_ref, legal_basis=args.legal_basis)
            a = answers[0]
            from node.wire import crossings as cwire

            ans = CrossingAnswer(index=a.index,
                                 confirmed=a.outcome == cwire.cpb.CROSSING_OUTCOME_CONFIRMED,
                                 bcp=a.bcp, crossed_at_ms=a.crossed_at_ms,
                                 resolution_minutes=a.resolution_minutes)
    if off.local is None:
        store = open_store(cfg)
        try:
            client, ctx = _client_ctx(args, cfg, store, off.operator)
            try:
                ans = confirm_crossings(client, peer, ctx, [q]).answers[0]
            finally:
                client.close()
        finally:
            store.close()
    payload = {"peer": peer, "outcome": "confirmed" if ans.confirmed else "not_found",
               "bcp": ans.bcp, "crossed_at": _iso(ans.crossed_at_ms) if ans.confirmed else None,
               "resolution_minutes": ans.resolution_minutes, "verified": True}
    text = (f"CONFIRMED at {ans.bcp}, {_iso(ans.crossed_at_ms)} "
            f"(to {ans.resolution_minutes} min)" if ans.confirmed else "NOT_FOUND")
    _emit(args, payload, f"{peer}: {text}; answer verified, receipt kept")
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from node.app import now_ms, open_store
    from node.cli.identity import call, officer
    from node.crossings.client import confirm_crossings
    from node.crossings.reconcile import (
        ReconcileLine,
        ReconcileReport,
        plan,
        reconcile,
        write_detail,
    )
    from node.crossings.store import CrossingStore

    cfg = _config(args)
    peer, peer_country = resolve_peer(cfg, args.peer)
    from_ms, to_ms = _time(args.since, "--from"), _time(args.until, "--to")
    if to_ms < from_ms:
        raise CliError("--to is before --from")
    out = Path(args.out) if args.out else Path(
        f"reconcile-{peer}-{args.since[:10]}-{args.until[:10]}.csv")
    if args.case_ref is None:
        args.case_ref = f"RECON-{peer}-{args.since[:10]}-{args.until[:10]}"
    with officer(args, cfg, "crossings reconcile") as off:
        if off.local is not None:  # the node plans, asks, and audits the run
            r = call(off.local.reconcile_crossings, peer, from_ms=from_ms, to_ms=to_ms,
                     transit_hours=args.transit_hours, batch_size=args.batch_size,
                     purpose=args.purpose, case_ref=args.case_ref,
                     legal_basis=args.legal_basis)
            report = ReconcileReport(peer=peer, from_ms=from_ms, to_ms=to_ms, batches=r.batches,
                                     lines=[ReconcileLine(
                                         outcome=ln.outcome, record_id=ln.record_id,
                                         event=ln.event, bcp=ln.bcp, crossed_at=ln.crossed_at,
                                         doc_number=ln.doc_number, doc_state=ln.doc_state,
                                         doc_type=ln.doc_type,
                                         peer_bcp=ln.peer_bcp,
                                         peer_crossed_at=ln.peer_crossed_at)
                                         for ln in r.lines])
            write_detail(report, out)
            summary = {**report.summary(), "detail": str(out)}
    if off.local is None:
        store = open_store(cfg)
        try:
            cs = CrossingStore(store)
            items = plan(cs, cs.bcp_map(), own_country=cfg.country, peer_country=peer_country,
                         from_ms=from_ms, to_ms=to_ms,
                         transit_ms=int(args.transit_hours * 3600_000))
            client, ctx = _client_ctx(args, cfg, store, off.operator)
            try:
                report = reconcile(items, lambda qs: confirm_crossings(client, peer, ctx,
                                                                       qs).answers,
                                   peer=peer, from_ms=from_ms, to_ms=to_ms,
                                   batch_size=args.batch_size)
            finally:
                client.close()
            write_detail(report, out)
            summary = {**report.summary(), "detail": str(out)}
            with store.transaction():
                _audit_log(cfg, store).append({
                    "event": "crossings_reconciled", "peer": peer, "operator": ctx.operator,
                    "purpose": ctx.purpose, "case_ref": ctx.case_ref,
                    **{k: v for k, v in summary.items() if k != "peer"}}, time_ms=now_ms())
        finally:
            store.close()
    _emit(args, summary,
          f"reconciliation with {peer}, {summary['from']} .. {summary['to']}: "
          f"{summary['checked']} crossing(s) in {summary['batches']} signed batch(es)\n"
          f"  matched:            {summary['matched']}\n"
          f"  exits without entry: {summary['exit_without_entry']}\n"
          f"  entries without exit: {summary['entry_without_exit']}\n"
          f"  detail: {out}")
    return 0


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= v <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not in 1..1000")
    return v


def _hours(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not 0 < v <= 31 * 24:
        raise argparse.ArgumentTypeError(f"{text!r} is not in (0, 744] hours")
    if int(v * 3_600_000) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} hours is shorter than a millisecond")
    return v


def _ask_args(sp: argparse.ArgumentParser, purpose: str, case_ref_required: bool) -> None:
    sp.add_argument("--peer", required=True, help="peer node id (KGZ-BS) or country (KGZ)")
    sp.add_argument("--purpose", default=purpose, help=f"purpose (default {purpose})")
    sp.add_argument("--case-ref", required=case_ref_required, help="your case reference")
    sp.add_argument("--legal-basis", default="bilateral agreement",
                    help="legal basis of the request")
    from node.cli.identity import add_officer_args

    add_officer_args(sp)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    g = add_group(sub, "crossings", "border crossing records, confirmations, reconciliation")
    sp = add_command(g, "bcps", cmd_bcps, "import the BCP list and which BCPs face which "
                     "(JSON; replaces the previous list)", common)
    sp.add_argument("file")
    sp.add_argument("--operator", help="operator id recorded in the audit log")
    sp = add_command(g, "import", cmd_import,
                     "import this node's crossing records from CSV or JSON Lines "
                     "(all or nothing)", common)
    sp.add_argument("file")
    sp.add_argument("--format", choices=["csv", "jsonl"], help="default: from the file name")
    sp.add_argument("--operator", help="operator id recorded in the audit log")
    sp = add_command(g, "confirm", cmd_confirm,
                     "ask a neighbour whether a document crossed at its BCP in a window", common)
    sp.add_argument("--doc-number", required=True)
    sp.add_argument("--doc-state", required=True, help="issuing state, ICAO code")
    sp.add_argument("--doc-type", default="P", help="document type (default P)")
    where = sp.add_mutually_exclusive_group(required=True)
    where.add_argument("--bcp", help="the neighbour's BCP code, e.g. KGZ-AKZHOL")
    where.add_argument("--section", help="a border section, e.g. KAZ-KGZ")
    sp.add_argument("--direction", required=True, choices=["entry", "exit"],
                    help="as recorded at the neighbour's BCP")
    sp.add_argument("--from", dest="since", required=True, help="window start, UTC ISO 8601")
    sp.add_argument("--to", dest="until", required=True, help="window end, UTC ISO 8601")
    _ask_args(sp, "border_check", True)
    sp = add_command(g, "reconcile", cmd_reconcile,
                     "match this node's exits/entries with a neighbour's entries/exits and "
                     "write a report", common)
    sp.add_argument("--from", dest="since", required=True, help="period start, UTC ISO 8601")
    sp.add_argument("--to", dest="until", required=True, help="period end, UTC ISO 8601")
    sp.add_argument("--transit-hours", type=_hours, default=24.0,
                    help="longest time between the two crossings (default 24)")
    sp.add_argument("--batch-size", type=_positive, default=100,
                    help="questions per signed batch (default 100)")
    sp.add_argument("--out", help="detail file, .csv or .json "
                    "(default reconcile-PEER-FROM-TO.csv)")
    _ask_args(sp, "migration_control", False)
