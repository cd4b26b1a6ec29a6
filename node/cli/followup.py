"""``bxnode followup``: the second step after a HIT.

Requester: ``file``, ``status`` (poll), ``watch``.  Owner: ``list``, ``show``,
``approve``, ``deny``.  Refused steps print ``status/reason`` and exit 1 (3 when a
peer refused).
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from node.cli.main import EXIT_FAIL, CliError, _config, _emit, add_command, add_group

__all__ = ["register"]


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fields(text: str | None) -> list[str]:
    return [f.strip() for f in (text or "").split(",") if f.strip()]


@contextmanager
def _desk(args: argparse.Namespace) -> Iterator[Any]:
    from node.app import NodeRuntime
    from node.crossings.extension import followup_desk

    rt = NodeRuntime.load(_config(args), with_tls=False)
    try:
        yield followup_desk(rt)
    finally:
        rt.close()


def _owner_error(exc: Any) -> CliError:
    return CliError(f"{exc.status.lower()}/{exc.reason}: {exc}", EXIT_FAIL)


def _row_json(r: Any, now_ms: int) -> dict[str, Any]:
    return {"id": r.id, "requester": r.requester, "state": r.state,
            "overdue": r.overdue_ms is not None or r.overdue_at(now_ms),
            "record_kind": r.record_kind, "hit_reference": r.hit_reference,
            "hit_audit_seq": r.hit_audit_seq, "hit_item_index": r.hit_item_index,
            "purpose": r.purpose, "legal_basis": r.legal_basis, "case_ref": r.case_ref,
            "operator": r.operator, "requested": list(r.requested),
            "allowed": list(r.allowed), "filed": _iso(r.filed_ms),
            "deadline": _iso(r.deadline_ms), "decided": _iso(r.decided_ms),
            "decided_by": r.decided_by, "released": list(r.released),
            "deny_reason": r.deny_reason, "fetched": _iso(r.fetched_ms)}


# --- owner --------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from node.app import now_ms
    from node.cli.identity import call, check_operator_flag, credentials, officer

    if credentials(args) is not None:  # the desk through the LocalService: authorised, audited
        with officer(args, _config(args), "followup list") as off:
            assert off.local is not None
            desk = call(off.local.list_followups, args.state or "")
        items_local = [_desk_json(d) for d in desk]
        lines = [f"{i['id']}  {i['requester']:<8} {i['state']:<8}  {i['record_kind']:<8} "
                 f"fields {','.join(i['requested'])}"
                 + (f"  (approved by {i['approval_pending_by']}, awaiting a second officer)"
                    if i["approval_pending_by"] else "") for i in items_local]
        lines.append(f"{len(items_local)} follow-up(s)")
        _emit(args, {"followups": items_local}, "\n".join(lines))
        return 0
    check_operator_flag(_config(args), args.operator)  # the node administrator's own read
    with _desk(args) as desk:
        now = now_ms()
        desk.sweep_overdue(now)
        rows = desk.store.all(state=None if args.state in (None, "overdue") else args.state)
        if args.state == "overdue":
            rows = [r for r in rows if r.overdue_ms is not None and r.state == "pending"]
        items = [_row_json(r, now) for r in rows]
    lines = [f"{i['id']}  {i['requester']:<8} {i['state']:<8}"
             f"{' OVERDUE' if i['overdue'] and i['state'] == 'pending' else ''}  "
             f"{i['record_kind']:<8} {i['purpose']:<22} due {i['deadline']}  "
             f"fields {','.join(i['requested'])}" for i in items]
    lines.append(f"{len(items)} follow-up(s)")
    _emit(args, {"followups": items}, "\n".join(lines))
    return 0


def _desk_json(d: Any) -> dict[str, Any]:
    return {"id": d.followup_id, "requester": d.requester, "state": d.state,
            "record_kind": d.record_kind, "requested": list(d.requested),
            "released": list(d.released), "decided_by": d.decided_by,
            "approval_pending_by": d.approval_pending_by,
            "approval_pending_fields": list(d.approval_pending_fields)}


def _show_json(d: Any) -> dict[str, Any]:
    """A follow-up the LocalService showed, in the keys and order of the direct read."""
    item = {"id": d.followup_id, "requester": d.requester,
            "state": "pending" if d.state == "overdue" else d.state, "overdue": d.overdue,
            "record_kind": d.record_kind, "hit_reference": d.hit_reference,
            "hit_audit_seq": d.hit_audit_seq, "hit_item_index": d.hit_item_index,
            "purpose": d.purpose, "legal_basis": d.legal_basis, "case_ref": d.case_ref,
            "operator": d.operator, "requested": list(d.requested),
            "allowed": list(d.allowed), "filed": _iso(d.filed_ms or None),
            "deadline": _iso(d.deadline_ms or None), "decided": _iso(d.decided_ms or None),
            "decided_by": d.decided_by, "released": list(d.released),
            "deny_reason": d.deny_reason, "fetched": _iso(d.fetched_ms or None)}
    if d.approval_pending_by:
        item.update(approval_pending_by=d.approval_pending_by,
                    approval_pending_fields=list(d.approval_pending_fields))
    return item


def cmd_show(args: argparse.Namespace) -> int:
    from node.app import now_ms
    from node.cli.identity import call, check_operator_flag, credentials, officer

    if credentials(args) is not None:  # the desk through the LocalService: authorised, audited
        with officer(args, _config(args), "followup show") as off:
            assert off.local is not None
            item = _show_json(call(off.local.show_followup, args.id))
        _emit(args, item, "\n".join(f"{k:<14} {v}" for k, v in item.items()))
        return 0
    check_operator_flag(_config(args), args.operator)  # the node administrator's own read
    with _desk(args) as desk:
        now = now_ms()
        desk.sweep_overdue(now)
        row = desk.store.get(args.id)
        if row is None:
            raise CliError(f"not_found/unknown_followup: no follow-up {args.id}")
        item = _row_json(row, now)
    _emit(args, item, "\n".join(f"{k:<14} {v}" for k, v in item.items()))
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from node.cli.identity import call, officer
    from node.core.errors import BxError

    with officer(args, _config(args), "followup approve") as off:
        if off.local is not None:
            d, pending = call(off.local.approve_followup, args.id, _fields(args.fields))
            if pending:
                _emit(args, {"id": d.followup_id, "state": d.state,
                             "confirmation_pending": True,
                             "approved_by": d.approval_pending_by},
                      f"{d.followup_id}: approval recorded; policy requires a second, "
                      "different followup_desk officer to confirm before anything is released")
            else:
                _emit(args, {"id": d.followup_id, "state": d.state,
                             "released": list(d.released), "confirmation_pending": False},
                      f"{d.followup_id} approved: releasing {', '.join(d.released) or 'no field'}"
                      f" to {d.requester} (signed, bound to its request)")
            return 0
    with _desk(args) as desk:
        try:
            row = desk.approve(args.id, fields=_fields(args.fields) or None,
                               operator=off.operator)
        except BxError as exc:
            raise _owner_error(exc) from None
    _emit(args, {"id": row.id, "state": row.state, "released": list(row.released)},
          f"{row.id} approved: releasing {', '.join(row.released) or 'no field'} to "
          f"{row.requester} (signed, bound to its request)")
    return 0


def cmd_deny(args: argparse.Namespace) -> int:
    from node.cli.identity import call, officer
    from node.core.errors import BxError

    with officer(args, _config(args), "followup deny") as off:
        if off.local is not None:
            d = call(off.local.deny_followup, args.id, args.reason)
            _emit(args, {"id": d.followup_id, "state": d.state, "reason": args.reason},
                  f"{d.followup_id} denied (signed, bound to its request)")
            return 0
    with _desk(args) as desk:
        try:
            row = desk.deny(args.id, reason=args.reason, operator=off.operator)
        except BxError as exc:
            raise _owner_error(exc) from None
    _emit(args, {"id": row.id, "state": row.state, "reason": row.deny_reason},
          f"{row.id} denied (signed, bound to its request)")
    return 0


# --- requester ----------------------------------------------------------------------------


@contextmanager
def _client(args: argparse.Namespace, operator: str) -> Iterator[tuple[Any, Any, Any, Any]]:
    """Development only: this CLI signs and sends the follow-up requests itself."""
    from node.app import open_store
    from node.cli.crossings import resolve_peer
    from node.cli.main import _client as make_client
    from node.client.peer import QueryContext
    from node.followup.store import FollowUpStore

    cfg = _config(args)
    peer, _ = resolve_peer(cfg, args.peer)
    store = open_store(cfg)
    try:
        fstore = FollowUpStore(store)
        purpose, legal, case = (getattr(args, "purpose", None), getattr(args, "legal_basis", None),
                                getattr(args, "case_ref", None))
        if getattr(args, "id", None):
            sent = fstore.sent(peer, args.id)
            if sent is None:
                raise CliError(f"we filed no follow-up {args.id} with {peer}")
            purpose, legal, case = sent.purpose, sent.legal_basis, sent.case_ref
        client = make_client(cfg, store)
        try:
            yield client, fstore, peer, QueryContext(operator=operator, purpose=purpose or "",
                                                     legal_basis=legal or "",
                                                     case_ref=case or "")
        finally:
            client.close()
    finally:
        store.close()


@contextmanager
def _requester(args: argparse.Namespace, command: str) -> Iterator[tuple[Any, str]]:
    """(who, the peer's node id): ``who.local`` is set under an officer identity."""
    from node.cli.crossings import resolve_peer
    from node.cli.identity import officer

    cfg = _config(args)
    peer, _ = resolve_peer(cfg, args.peer)
    with officer(args, cfg, command) as off:
        yield off, peer


def _lookup_digest(args: argparse.Namespace) -> bytes:
    try:
        digest = bytes.fromhex(args.lookup)
    except ValueError:
        raise CliError("--lookup is the hex SHA-256 digest of the lookup request") from None
    if len(digest) != 32:
        raise CliError("--lookup is the hex SHA-256 digest (64 hex digits) of the lookup "
                       "request")
    return digest


def cmd_file(args: argparse.Namespace) -> int:
    from node.cli.identity import call
    from node.followup.client import file_followup, find_hit
    from node.followup.owner import NotFound

    fields = _fields(args.fields)
    if not fields:
        raise CliError("--fields names at least one field")
    if not args.lookup and not args.reference:
        raise CliError("name the hit: --reference REF, or --lookup DIGEST --item N")
    digest = _lookup_digest(args) if args.lookup else b""
    with _requester(args, "followup file") as (off, peer):
        if off.local is not None:
            sent = call(off.local.send_followup, peer, args.reference or "", fields,
                        purpose=args.purpose, case_ref=args.case_ref,
                        legal_basis=args.legal_basis, lookup_digest=digest,
                        item_index=args.item)
            _emit(args, {"id": sent.followup_id, "peer": peer, "state": sent.state,
                         "deadline": _iso(sent.deadline_ms)},
                  f"follow-up {sent.followup_id} filed with {peer}: {sent.state}, "
                  f"to be decided by {_iso(sent.deadline_ms)}")
            return 0
    with _client(args, off.operator) as (client, fstore, peer, ctx):
        if args.lookup:
            index, reference = args.item, args.reference or ""
        else:
            try:
                digest, index = find_hit(fstore.db, peer, args.reference)
            except NotFound as exc:
                raise CliError(str(exc)) from None
            reference = args.reference
        status = file_followup(client, fstore, peer, ctx, hit_request_digest=digest,
                               hit_item_index=index, hit_reference=reference, fields=fields)
    _emit(args, {"id": status.followup_id, "peer": peer, "state": status.state,
                 "deadline": _iso(status.deadline_ms), "peer_audit_seq": status.audit_seq},
          f"follow-up {status.followup_id} filed with {peer}: {status.state}, "
          f"to be decided by {_iso(status.deadline_ms)}")
    return 0


def _print_answer(args: argparse.Namespace, peer: str, a: Any) -> None:
    s, d = a.status, a.decision
    payload: dict[str, Any] = {"id": s.followup_id, "peer": peer, "state": s.state,
                               "overdue": s.overdue, "deadline": _iso(s.deadline_ms),
                               "verified": True}
    text = f"{s.followup_id} at {peer}: {s.state}{' (overdue)' if s.overdue else ''}"
    if d is not None:
        payload.update(fields=d.fields, reason=d.reason, hit_reference=d.hit_reference,
                       decided=_iso(d.issued_at_ms), peer_audit_seq=d.audit_seq)
        if d.state == "approved":
            text += "".join(f"\n  {k}: {v}" for k, v in sorted(d.fields.items()))
        else:
            text += f": {d.reason}"
        text += "\n  decision signed by the owner, bound to our follow-up request, verified"
    _emit(args, payload, text)


def _print_sent(args: argparse.Namespace, s: Any) -> None:
    """The owner's answer as the node verified it (LocalService)."""
    payload: dict[str, Any] = {"id": s.followup_id, "peer": s.peer, "state": s.state,
                               "overdue": s.state == "overdue", "deadline": _iso(s.deadline_ms),
                               "verified": True}
    text = f"{s.followup_id} at {s.peer}: {s.state}"
    if s.state in ("approved", "denied"):
        payload.update(fields=dict(s.fields), reason=s.reason)
        text += ("".join(f"\n  {k}: {v}" for k, v in sorted(s.fields.items()))
                 if s.state == "approved" else f": {s.reason}")
        text += "\n  decision signed by the owner, verified by this node"
    _emit(args, payload, text)


def cmd_status(args: argparse.Namespace) -> int:
    from node.cli.identity import call
    from node.followup.client import get_followup

    with _requester(args, "followup status") as (off, peer):
        if off.local is not None:
            _print_sent(args, call(off.local.poll_followup, peer, args.id))
            return 0
    with _client(args, off.operator) as (client, fstore, peer, ctx):
        _print_answer(args, peer, get_followup(client, fstore, peer, ctx, args.id))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from node.cli.identity import call
    from node.followup.client import watch_followup

    with _requester(args, "followup watch") as (off, peer):
        if off.local is not None:
            last_sent = None

            def watch() -> None:
                nonlocal last_sent
                assert off.local is not None
                for s in off.local.await_followup(peer, args.id,
                                                  timeout_s=max(1, int(args.timeout))):
                    last_sent = s
                    if s.state not in ("approved", "denied") and not args.json:
                        print(f"{s.followup_id}: {s.state}, waiting for {peer}'s decision...",
                              flush=True)

            call(watch)
            if last_sent is None or last_sent.state not in ("approved", "denied"):
                raise CliError(f"no decision from {peer} within {args.timeout:g} s; "
                               "watch again")
            _print_sent(args, last_sent)
            return 0
    with _client(args, off.operator) as (client, fstore, peer, ctx):
        last = None
        for a in watch_followup(client, fstore, peer, ctx, args.id, timeout_s=args.timeout):
            last = a
            if a.decision is None and not args.json:
                print(f"{a.status.followup_id}: {a.status.state}, waiting for "
                      f"{peer}'s decision...", flush=True)
        if last is None or last.decision is None:
            raise CliError(f"no decision from {peer} within {args.timeout:g} s; watch again")
        _print_answer(args, peer, last)
    return 0


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < v <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not in (0, 3600] seconds")
    return v


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from node.cli.identity import add_officer_args

    g = add_group(sub, "followup", "the second step after a HIT: file, decide, fetch")
    sp = add_command(g, "list", cmd_list, "list follow-ups filed with this node (with an "
                     "officer identity: through the LocalService, as the follow-up desk)",
                     common)
    sp.add_argument("--state", choices=["pending", "approved", "denied", "overdue"])
    add_officer_args(sp)
    sp = add_command(g, "show", cmd_show, "show one follow-up filed with this node (with an "
                     "officer identity: through the LocalService)", common)
    sp.add_argument("id")
    add_officer_args(sp)
    sp = add_command(g, "approve", cmd_approve, "approve a follow-up, releasing fields "
                     "(default: all requested; may narrow, never widen)", common)
    sp.add_argument("id")
    sp.add_argument("--fields", help="comma-separated fields to release")
    add_officer_args(sp)
    sp = add_command(g, "deny", cmd_deny, "deny a follow-up, with a reason the requester sees",
                     common)
    sp.add_argument("id")
    sp.add_argument("--reason", required=True)
    add_officer_args(sp)
    sp = add_command(g, "file", cmd_file, "file a follow-up to a HIT a peer answered", common)
    sp.add_argument("--peer", required=True, help="the owner: node id or country code")
    sp.add_argument("--reference", help="the owner's hit reference from the HIT answer")
    sp.add_argument("--lookup", help="hex digest of the lookup request (with --item)")
    sp.add_argument("--item", type=int, default=0, help="index of the hit in that lookup")
    sp.add_argument("--fields", required=True,
                    help="comma-separated: family_name, given_names, patronymic, date_of_birth,"
                         " nationality, sex | document_number, issuing_state, document_type, "
                         "loss_type")
    sp.add_argument("--purpose", required=True, help="e.g. border_check")
    sp.add_argument("--legal-basis", required=True, help="legal basis of the request")
    sp.add_argument("--case-ref", required=True, help="your case reference")
    add_officer_args(sp)
    for name, fn, text in (("status", cmd_status, "poll a follow-up we filed"),
                           ("watch", cmd_watch, "wait for the owner's decision (streaming)")):
        sp = add_command(g, name, fn, text, common)
        sp.add_argument("id")
        sp.add_argument("--peer", required=True, help="the owner: node id or country code")
        add_officer_args(sp)
        if name == "watch":
            sp.add_argument("--timeout", type=_seconds, default=600.0,
                            help="give up after this many seconds (default 600)")
