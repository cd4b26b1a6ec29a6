"""``bxnode retention run | hold | release | holds`` and ``bxnode subject-access`` (issue 13).

``retention run`` sweeps once (``serve`` does it every ``[retention] sweep_interval_s``);
``--dry-run`` counts without changing anything.  ``hold`` / ``release`` need a ``--reason``
and an authenticated identity: an officer certificate or token (node/cli/identity.py), the
CLI then a client of the node's LocalService (PlaceHold / ReleaseHold, roles
``watchlist_manager`` or ``auditor``, audited with that identity), or ``--auditor-key``
proving the signing key of a member listed with the role ``auditor`` (recorded as that
member).  A typed ``--operator`` is believed only in ``dev_mode`` (warning
``dev_typed_operator``): recorded as ``watchlist_manager``, or with ``--auditor-key`` as
``MEMBER/operator``.  ``subject-access`` is for auditors
only: ``--auditor-key`` must be the signing key of a member with the role ``auditor``; it
prints a table (``--json``, ``--html PAGE`` as well).  A follow-up's released fields are
shown by name; their values only with ``--released-values`` (recorded in the access's audit
entry).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from node.cli.main import CliError, _config, _emit, add_command, add_group

__all__ = ["register"]


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[tuple[Any, Any, Any]]:
    from node.app import open_store
    from node.audit.log import MerkleAuditLog
    from node.keys import load_signer

    cfg = _config(args)
    store = open_store(cfg)
    try:
        audit = MerkleAuditLog(store=store, node_id=cfg.node_id,
                               signing_key=load_signer(cfg.signing_key))
        yield cfg, store, audit
    finally:
        store.close()


def _auditor(args: argparse.Namespace, cfg: Any, store: Any, audit: Any, action: str) -> Any:
    """The auditor member proven by ``--auditor-key``; a refusal is audited."""
    from node.app import now_ms
    from node.audit.subject import authenticate_auditor
    from node.core.errors import BxError
    from node.federation.directory import load_directory
    from node.federation.pki import load_signing_key

    try:
        if not args.auditor_key:
            from node.core.errors import NotAuthorised

            raise NotAuthorised(f"{action} needs the auditor role: pass --auditor-key with "
                                "the signing key of a member listed with the role auditor",
                                reason="not_an_auditor")
        key = load_signing_key(Path(args.auditor_key))
        directory = load_directory(cfg, store=store, clock_ms=now_ms)
        return authenticate_auditor(directory, key, now_ms=now_ms())
    except BxError as exc:
        with store.transaction():
            audit.append({"event": f"{action}_refused", "status": exc.status,
                          "reason": exc.reason}, time_ms=now_ms())
        raise


def cmd_run(args: argparse.Namespace) -> int:
    from node.app import now_ms
    from node.retention.sweep import RetentionSweep
    from node.store.retention import compact

    with _opened(args) as (cfg, store, audit):
        sweep = RetentionSweep(db=store, audit=audit, settings=cfg.retention, clock_ms=now_ms)
        report = sweep.run(dry_run=args.dry_run, operator=args.operator or cfg.operator)
        compacted = "" if args.dry_run else compact(store, erased=report.erased)
    total = sum(report.erased.values())
    lines = [f"  {kind:<17} {report.erased[kind]:>7} erased"
             + (f", {report.held[kind]} kept by a hold or an open follow-up"
                if report.held[kind] else "") for kind in report.erased]
    head = (f"retention sweep {'(dry run) would erase' if args.dry_run else 'erased'} "
            f"{total} record(s)" + ("" if args.dry_run else f"; audit entry {report.audit_seq}"))
    _emit(args, {"erased": report.erased, "held": report.held, "dry_run": args.dry_run,
                 "audit_seq": report.audit_seq, "compacted": compacted},
          "\n".join([head, *lines]))
    return 0


def _hold_change(args: argparse.Namespace, release: bool) -> int:
    from node.app import now_ms
    from node.cli.identity import call, check_operator_flag, credentials, officer
    from node.retention.sweep import HoldDesk

    command = f"retention {'release' if release else 'hold'}"
    verb = "released" if release else "placed on hold"
    cfg = _config(args)
    if credentials(args) is not None:  # through the LocalService: authenticated, audited
        if args.auditor_key:
            raise CliError("--auditor-key and an officer identity do not go together: the "
                           "LocalService takes the role from your certificate or token")
        with officer(args, cfg, command) as off:
            assert off.local is not None
            fn = off.local.release_hold if release else off.local.place_hold
            r = call(fn, args.case_ref, args.reason)
        _emit(args, {"case_ref": r.hold.case_ref, "released" if release else "held": True,
                     "by": r.by, "role": r.role},
              f"case {r.hold.case_ref} {verb} by {r.by} ({r.role})")
        return 0
    typed = args.operator
    if not cfg.dev_mode:
        check_operator_flag(cfg, typed)
        if not args.auditor_key:
            raise CliError(f"'bxnode {command}' acts for a watchlist manager or an auditor: "
                           "give --officer-cert and --officer-key or --token-file, or "
                           "--auditor-key (a typed operator is accepted only when node.toml "
                           "sets dev_mode = true)")
    operator = (typed or cfg.operator) if cfg.dev_mode else ""
    if cfg.dev_mode:
        if not operator:
            raise CliError("no operator id: pass --operator or set [client] operator in "
                           "node.toml")
        import structlog

        structlog.get_logger("bxnode.cli").warning(
            "dev_typed_operator", command=command,
            source="--operator" if typed else "[client] operator",
            note="development only: a typed operator id is not an authenticated identity")
    with _opened(args) as (cfg, store, audit):
        role = "watchlist_manager"
        by = operator
        if args.auditor_key:
            member = _auditor(args, cfg, store, audit, "retention_hold")
            role = "auditor"
            by = f"{member.node_id}/{operator}" if operator else member.node_id
        desk = HoldDesk(db=store, audit=audit, clock_ms=now_ms)
        change = desk.release if release else desk.hold
        row = change(args.case_ref, reason=args.reason, by=by, role=role)
    _emit(args, {"case_ref": row.case_ref, "released" if release else "held": True,
                 "by": by, "role": role},
          f"case {row.case_ref} {verb} by {by} ({role})")
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    return _hold_change(args, release=False)


def cmd_release(args: argparse.Namespace) -> int:
    return _hold_change(args, release=True)


def cmd_holds(args: argparse.Namespace) -> int:
    from node.store.retention import RetentionTables

    with _opened(args) as (_cfg, store, _audit):
        t = RetentionTables(store)
        t.ensure_schema()
        holds = t.holds()
    _emit(args, {"holds": [h.__dict__ if hasattr(h, "__dict__") else
                           {"case_ref": h.case_ref, "reason": h.reason, "by": h.placed_by,
                            "role": h.role, "placed_ms": h.placed_ms} for h in holds]},
          "\n".join([f"{h.case_ref}  by {h.placed_by} ({h.role}): {h.reason}" for h in holds]
                    + [f"{len(holds)} hold(s)"]))
    return 0


def cmd_subject_access(args: argparse.Namespace) -> int:
    from node.app import now_ms
    from node.audit.subject import render_html, render_table, subject_access
    from node.core.errors import BxError, InvalidInput
    from node.core.model import (
        PartialDate,
        PersonQuery,
        Sex,
        validate_doc_number,
        validate_state,
    )

    with _opened(args) as (cfg, store, audit):
        member = _auditor(args, cfg, store, audit, "subject_access")
        try:
            if bool(args.document) == bool(args.family):
                raise InvalidInput("give --document NUMBER --state S, or --family ... --dob ...",
                                   reason="bad_subject")
            if args.document:
                if not args.state:
                    raise InvalidInput("--document needs --state", reason="bad_subject")
                document = (validate_doc_number(args.document.upper()),
                            validate_state(args.state.upper()))
                found = subject_access(store, document=document,
                                       with_values=args.released_values)
                kind, subject = "document", f"document {document[0]} ({document[1]})"
            else:
                if not args.dob:
                    raise InvalidInput("--family needs --dob", reason="bad_subject")
                person = PersonQuery(family_name=args.family, given_names=args.given or "",
                                     patronymic="", date_of_birth=PartialDate.parse(args.dob),
                                     nationality=(args.nationality or "").upper(),
                                     sex=Sex((args.sex or "X").upper()))
                found = subject_access(store, person=person,
                                       with_values=args.released_values)
                kind = "person"
                subject = f"{args.family} {args.given or ''} born {args.dob}".replace("  ", " ")
        except BxError as exc:
            with store.transaction():
                audit.append({"event": "subject_access_refused", "auditor": member.node_id,
                              "status": exc.status, "reason": exc.reason}, time_ms=now_ms())
            raise
        with store.transaction():  # the access itself is audited: who, what kind, how many
            seq = audit.append({"event": "subject_access", "auditor": member.node_id,
                                "query_kind": kind, "results": len(found),
                                "released_values": bool(args.released_values)},
                               time_ms=now_ms())
    if args.html:
        Path(args.html).write_text(render_html(node_id=cfg.node_id, subject=subject,
                                               exchanges=found, generated_ms=now_ms(),
                                               auditor=member.node_id), encoding="utf-8")
    if args.json:
        print(json.dumps({"subject": subject, "exchanges": [x.as_json() for x in found],
                          "audit_seq": seq}, ensure_ascii=False, sort_keys=True))
        return 0
    lines = render_table(found) if found else []
    lines.append(f"{len(found)} question(s) about {subject} in the receipts held"
                 + (f"; page written to {args.html}" if args.html else ""))
    print("\n".join(lines))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from node.cli.identity import add_officer_args

    rt = add_group(sub, "retention", "erase personal data at the end of its retention")

    def add(name: str, fn: Any, help_: str) -> argparse.ArgumentParser:
        return add_command(rt, name, fn, help_, common)

    sp = add("run", cmd_run, "run the erasure sweep once (one audit entry, counts per kind)")
    sp.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    sp.add_argument("--operator", help="recorded in the sweep's audit entry")
    for name, fn, help_ in (("hold", cmd_hold, "keep every record of a case past retention"),
                            ("release", cmd_release, "lift a hold")):
        sp = add(name, fn, help_)
        sp.add_argument("case_ref")
        sp.add_argument("--reason", required=True)
        add_officer_args(sp)
        sp.add_argument("--auditor-key", help="an auditor member's signing key (role "
                        "auditor), without an officer identity")
    add("holds", cmd_holds, "list the holds in place")

    sp = add_command(sub, "subject-access", cmd_subject_access,
                     "who asked about a document or person (auditors only)", common)
    sp.add_argument("--document", help="document number")
    sp.add_argument("--state", help="issuing state of the document")
    sp.add_argument("--family", help="family name, any script")
    sp.add_argument("--given", help="given names")
    sp.add_argument("--dob", help="YYYY, YYYY-MM or YYYY-MM-DD")
    sp.add_argument("--nationality")
    sp.add_argument("--sex", choices=["M", "F", "X", "m", "f", "x"])
    sp.add_argument("--auditor-key", help="the auditor's signing key file (required)")
    sp.add_argument("--html", help="also write the answer as one HTML page")
    sp.add_argument("--released-values", action="store_true",
                    help="also show the values a follow-up released (default: field names)")
