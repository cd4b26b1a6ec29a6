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
from pathlib import Path
from typing import Any

from node.cli.main import CliError, _config, _emit, _positive_int, add_command, add_group
from node.core.errors import BxError
from node.wire.trailers import reason

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


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Opened:
    """The node's store and its audit log (read side), closed on exit."""

    def __init__(self, args: argparse.Namespace) -> None:
        from node.app import now_ms, open_store
        from node.audit.log import MerkleAuditLog, log_verifiers
        from node.federation.directory import load_directory

        self.cfg = _config(args)
        self.store = open_store(self.cfg)
        try:
            self.log = MerkleAuditLog(store=self.store, node_id=self.cfg.node_id)
            # the federation directory: members file, or the trusted signed registry
            directory = load_directory(self.cfg, store=self.store, clock_ms=now_ms)
            me = directory.member(self.cfg.node_id)
            self.verifiers = log_verifiers(self.cfg.node_id, [k.public_key for k in me.keys])
            self.directory = directory
        except BaseException:
            self.store.close()
            raise

    def __enter__(self) -> _Opened:
        return self

    def cosignatures(self) -> Any:
        from node.audit.verification import check_cosignatures

        return check_cosignatures(self.log.heads(), self.log.cosignature_rows(),
                                  directory=self.directory, log_id=self.cfg.node_id)

    def witnesses(self) -> tuple[str, ...]:
        """``[audit] witnesses``, or every other node (as ``serve`` witnesses)."""
        w = self.cfg.audit.witnesses
        return tuple(w) if w is not None else tuple(
            m.node_id for m in self.directory.members()
            if m.node_id != self.cfg.node_id and "node" in m.roles)

    def __exit__(self, *exc: object) -> None:
        self.store.close()


# --- verify, list, search, export -------------------------------------------------------------


def _ask_witnesses(o: _Opened) -> tuple[list[Any], dict[str, str]]:
    """Ask each witness (mTLS, as this node) what it holds of our log:
    ``(verified WitnessedHeads, {witness: why it could not be compared})``."""
    import grpc

    from node.app import NodeRuntime
    from node.audit.verification import open_witnessed
    from node.client.channel import open_channel
    from node.server.audit_services import GET_WITNESSED
    from node.wire.audit import apb

    tls = NodeRuntime.tls(o.cfg)
    origin = o.log.current_origin()  # the epoch's (node.audit.origins): a reset starts anew
    heads: list[Any] = []
    failed: dict[str, str] = {}
    for peer in o.witnesses():
        try:
            member = o.directory.member(peer)
            with open_channel(member.endpoint, tls) as channel:
                resp = channel.unary_unary(
                    GET_WITNESSED,
                    request_serializer=apb.GetWitnessedCheckpointRequest.SerializeToString,
                    response_deserializer=apb.GetWitnessedCheckpointResponse.FromString)(
                    apb.GetWitnessedCheckpointRequest(origin=origin), timeout=10)
            heads.append(open_witnessed(member, checkpoint=bytes(resp.checkpoint),
                                        cosignatures=bytes(resp.cosignatures),
                                        log_verifiers=o.verifiers, origin=origin))
        except grpc.RpcError as err:
            failed[peer] = f"{err.code().name}/{reason(err)}"
        except BxError as exc:
            failed[peer] = exc.message
    return heads, failed


def _origin_problem(o: _Opened) -> str:
    """Whether the log signs under the origin the federation lists for this node
    (:mod:`node.audit.origins`): witnesses cosign no other; "" when it does."""
    from node.audit.origins import log_origin, split_epoch

    origin = o.log.current_origin()
    listed = log_origin(o.cfg.node_id, o.directory.member(o.cfg.node_id).log_epoch)
    if origin == listed:
        return ""
    ahead = split_epoch(origin)[1] > split_epoch(listed)[1]
    return (f"the log signs under {origin}, but the federation lists {listed} for "
            f"{o.cfg.node_id} (log_origin_unlisted): " + (
                f"propose 'bxnode registry propose --log-origin {o.cfg.node_id} {origin}'"
                if ahead else "the registry records a later reset than this log holds"))


def cmd_verify(args: argparse.Namespace) -> int:
    from node.audit.verification import compare_with_witnesses

    with _Opened(args) as o:
        # ask first: whatever a witness holds, the log verified after it must hold too
        heads, failed = _ask_witnesses(o) if args.witnesses else ([], {})
        report = o.log.verify(verifiers=o.verifiers, roots_at=[h.size for h in heads])
        cos = o.cosignatures()
        quorum = o.cfg.audit.witness_quorum
        origin_problem = _origin_problem(o) if args.witnesses else ""
    compared = compare_with_witnesses(report, heads)
    last_cosigned = cos.last_cosigned(quorum)
    payload: dict[str, Any] = {
        "ok": report.ok and not cos.problems, "entries": report.entries, "head": report.head,
        "first_bad_seq": report.first_bad_seq, "problem": report.problem,
        "checkpoints": report.checkpoints, "erased": report.erased,
        "checkpoint_size": report.checkpoint_size, "unsealed": report.unsealed,
        "erasures": [{"seq": seq, **r.to_json()} for seq, r in report.erasures],
        "cosignatures": sum(len(w) for w in cos.valid.values()),
        "cosignature_problems": list(cos.problems), "cosignature_notes": list(cos.notes),
        "quorum": quorum, "last_cosigned_size": last_cosigned,
        "after_last_cosigned": max(0, report.entries - last_cosigned),
        "witnesses_compared": args.witnesses,
        "witnesses": [{"witness": c.witness, "size": c.size, "ok": c.ok,
                       "problem": c.problem} for c in compared],
        "not_compared": failed}
    if not report.ok or cos.problems:
        if not report.ok:
            problem = report.problem
        else:
            problem = cos.problems[0]
            payload["problem"] = problem
        if args.json:
            print(json.dumps(payload))
        raise CliError(f"audit log is NOT intact: {problem}")
    bad = [c for c in compared if not c.ok]
    if args.witnesses and origin_problem:
        payload.update(ok=False, problem=origin_problem, reason="log_origin_unlisted")
        if args.json:
            print(json.dumps(payload))
        raise CliError(f"audit log does NOT match its witnesses: {origin_problem}")
    if args.witnesses and (bad or len(compared) < quorum):
        problem = (bad[0].problem if bad else
                   f"compared with {len(compared)} witness(es), fewer than the quorum of "
                   f"{quorum}: " + "; ".join(f"{p}: {why}" for p, why in failed.items()))
        payload["ok"] = False
        payload["problem"] = problem
        if args.json:
            print(json.dumps(payload))
        raise CliError(f"audit log does NOT match its witnesses: {problem}")
    text = [f"audit log verified: {report.entries} entries, {report.checkpoints} signed "
            f"checkpoints, root {report.head}",
            f"{payload['cosignatures']} cosignature(s) verified; last checkpoint cosigned by "
            f"the quorum ({quorum}): size {last_cosigned}, "
            f"{payload['after_last_cosigned']} entries after it; "
            f"{report.unsealed} entries after the last signed checkpoint",
            f"{report.erased} bodies erased, each under one of {len(report.erasures)} "
            "recorded erasure(s)"]
    text += [f"note: {n}" for n in cos.notes]
    if args.witnesses:
        text += [f"witness {c.witness}: holds size {c.size}, the log matches it"
                 for c in compared]
        text += [f"witness {p}: not compared ({why})" for p, why in failed.items()]
    else:
        text.append("internally consistent; NOT compared with any witness (a log rolled "
                    "back to an earlier consistent state passes this: use --witnesses)")
    _emit(args, payload, "\n".join(text))
    return 0


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
    from node.audit.log import MerkleAuditLog
    from node.keys import load_signer

    with _Opened(args) as o:
        configured = o.cfg.audit.retention_days
        days = args.retention_days or configured
        # signing: the erasure and its record are sealed in one checkpoint, as the CLI's
        # other appends are; the override (if any) goes into the record's entry
        o.log = MerkleAuditLog(store=o.store, node_id=o.cfg.node_id,
                               signing_key=load_signer(o.cfg.signing_key))
        n = o.log.erase_expired(now_ms=now_ms(), retention_ms=days * 86_400_000,
                                facts={"retention_days": days,
                                       "configured_retention_days": configured,
                                       "override": days != configured})
        seq = o.log.next_seq() - 1
    _emit(args, {"erased": n, "retention_days": days, "override": days != configured,
                 "audit_seq": seq},
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
    sp = add_command(au, "verify", cmd_verify,
                     "recompute the Merkle tree, check every signed checkpoint, cosignature "
                     "and erasure; name the first bad entry", common)
    sp.add_argument("--witnesses", action="store_true",
                    help="also ask every witness which size of this log it holds and compare "
                         "(detects a log rolled back to an earlier consistent state)")
    _filters(add_command(au, "list", cmd_list, "list audit entries", common), full=False)
    sp = add_command(au, "search", cmd_search,
                     "search entries by peer, operator, purpose, case, outcome, time", common)
    _filters(sp, full=True)
    _remote_args(sp)
    sp = add_command(au, "export", cmd_export, "export entries as JSON Lines or CSV", common)
    sp.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    sp.add_argument("--out", help="file to write (default: stdout)")
    _filters(sp, full=True)
    sp = add_command(au, "erase-expired", cmd_erase_expired,
                     "erase bodies past their retention period (leaves stay verifiable)", common)
    sp.add_argument("--retention-days", type=_positive_int,
                    help="override [audit] retention_days")
    register_more(au, common)


# --- prove, verify-bundle, report, status -------------------------------------------------------


def cmd_prove(args: argparse.Namespace) -> int:
    from node.audit.bundle import make_bundle

    if args.remote:
        bundle = _remote_call(args, "GetProofBundle", seq=args.seq)
    else:
        with _Opened(args) as o:
            bundle = make_bundle(o.log, args.seq, node_id=o.cfg.node_id)
    out = args.out or f"audit-proof-{args.seq}.json"
    with open(out, "wb") as f:
        f.write(bundle)
    _emit(args, {"seq": args.seq, "out": out}, f"wrote the proof bundle of entry {args.seq} "
                                               f"to {out}")
    return 0


def cmd_verify_bundle(args: argparse.Namespace) -> int:
    from node.audit.bundle import verify_bundle
    from node.federation.members_file import load_members

    with open(args.file, "rb") as f:
        data = f.read()
    directory = load_members(Path(args.members))
    quorum = args.quorum if args.quorum is not None else _configured_quorum(args)
    try:
        r = verify_bundle(data, directory=directory, quorum=quorum)
    except BxError as exc:
        if args.json:
            print(json.dumps({"ok": False, "problem": exc.message}))
        raise CliError(f"the bundle does NOT verify: {exc.message}") from None
    payload = {"ok": r.witnessed, "log": r.log, "seq": r.seq, "tree_size": r.tree_size,
               "witnesses": list(r.witnesses), "quorum": r.quorum, "entry": r.entry}
    text = (f"entry {r.seq} of {r.log} is in its signed checkpoint of size {r.tree_size}; "
            f"cosigned by {len(r.witnesses)} witness(es) ({', '.join(r.witnesses) or '-'})"
            + ("" if r.entry is not None else "; the body was erased after retention"))
    if not r.witnessed:
        if args.json:
            print(json.dumps(payload, ensure_ascii=False, sort_keys=True))
        raise CliError(f"{text}, fewer than the quorum of {r.quorum}")
    _emit(args, payload, text)
    return 0


def _configured_quorum(args: argparse.Namespace) -> int:
    """``[audit] witness_quorum`` of the node directory if there is one (``--node-dir``,
    ``$BXNODE_HOME``, the working directory), else that setting's default."""
    from node.cli.main import _node_dir
    from node.config import CONFIG_NAME, AuditSettings

    if (_node_dir(args) / CONFIG_NAME).exists():
        return int(_config(args).audit.witness_quorum)
    return AuditSettings().witness_quorum


def cmd_report(args: argparse.Namespace) -> int:
    from node.app import now_ms
    from node.audit.report import ReportInput, render_report
    from node.audit.witnessing import WitnessDesk
    from node.keys import load_signer

    to_ms = _parse_time(args.to) or now_ms()
    from_ms = _parse_time(getattr(args, "from")) or to_ms - 30 * 86_400_000
    with _Opened(args) as o:
        report = o.log.verify(verifiers=o.verifiers)
        head = o.log.latest_head()
        desk = WitnessDesk(store=o.store, node_id=o.cfg.node_id,
                           signing_key=load_signer(o.cfg.signing_key),
                           directory=o.directory)
        status = desk.status(our_size=head.size if head else 0)
        html_text = render_report(ReportInput(
            node_id=o.cfg.node_id, from_ms=from_ms, to_ms=to_ms,
            entries=o.log.bodies(from_ms=from_ms, to_ms=to_ms), verified=report.ok,
            verify_problem=report.problem, checkpoint_size=head.size if head else 0,
            cosignatures=head.cosignatures if head else (), quorum=o.cfg.audit.witness_quorum,
            cosigned_by=status.cosigned_by, witnessed_logs=status.witnessed_logs,
            witness_alert=status.alert, evidence=status.evidence, generated_ms=now_ms()))
    Path(args.out).write_text(html_text, encoding="utf-8")
    _emit(args, {"out": args.out, "verified": report.ok}, f"wrote {args.out}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from node.audit.hold import hold_of
    from node.audit.witnessing import WitnessDesk
    from node.keys import load_signer

    with _Opened(args) as o:
        head = o.log.latest_head()
        desk = WitnessDesk(store=o.store, node_id=o.cfg.node_id,
                           signing_key=load_signer(o.cfg.signing_key),
                           directory=o.directory)
        st = desk.status(our_size=head.size if head else 0)
        evidence = desk.evidence()
        check = o.cosignatures()  # verified, not counted: each against the witness's key
        hold = hold_of(o.store)
        origin = o.log.current_origin()
    cos = check.count(head.size) if head else 0
    stored = len(head.cosignatures) if head else 0
    quorum = o.cfg.audit.witness_quorum
    payload = {"checkpoint_size": st.our_size, "cosignatures": cos,
               "cosigned_by_witnesses": list(check.valid.get(st.our_size, ())),
               "quorum": quorum, "witnessed": cos >= quorum, "witness_alert": st.alert,
               "cosignature_problems": list(check.problems),
               "last_cosigned_size": check.last_cosigned(quorum),
               "evidence": evidence, "cosigned_by": st.cosigned_by,
               "witnessed_logs": st.witnessed_logs}
    lines = [f"checkpoint {st.our_size}: {cos} verified cosignature(s)"
             + (f" ({stored - cos} stored that do not count)" if stored != cos else "")
             + f", quorum {quorum}"]
    lines += [f"BAD COSIGNATURE: {p}" for p in check.problems]
    lines.append("ALERT: inconsistent checkpoints kept as evidence: " + str(len(evidence))
                 if st.alert else "no inconsistent checkpoint seen")
    payload["origin"] = origin
    payload["on_hold"] = hold is not None  # a restored log (node.audit.hold)
    payload["hold"] = None if hold is None else json.loads(hold.to_json())
    if hold is not None:
        lines.insert(0, f"ON HOLD: {hold.explain()}")
    _emit(args, payload, "\n".join(lines))
    return 1 if st.alert or check.problems or hold is not None else 0


# --- remote (auditor role) -----------------------------------------------------------------------


def _remote_call(args: argparse.Namespace, method: str, **fields: Any) -> Any:
    """Call AuditorService on ``--remote`` with the auditor's own certificate."""
    import grpc

    from node.federation.members_file import load_members
    from node.wire.audit import apb

    if not args.auditor_dir or not args.members:
        raise CliError("--remote needs --auditor-dir (tls.crt, tls.key, ca.crt) and --members")
    d = Path(args.auditor_dir)
    endpoint = load_members(Path(args.members)).member(args.remote).endpoint
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes() if (d / "ca.crt").exists() else
        (d.parent / "ca.crt").read_bytes(),
        private_key=(d / "tls.key").read_bytes(), certificate_chain=(d / "tls.crt").read_bytes())
    req_cls: Any
    resp_cls: Any
    req_cls, resp_cls = {
        "SearchEntries": (apb.SearchEntriesRequest, apb.SearchEntriesResponse),
        "GetProofBundle": (apb.GetProofBundleRequest, apb.GetProofBundleResponse)}[method]
    from node.client.failover import Refused, try_in_order

    def send(address: str, request: Any, timeout: float) -> Any:
        with grpc.secure_channel(address, creds) as ch:
            return ch.unary_unary(f"/bxnode.v1.AuditorService/{method}",
                                  request_serializer=req_cls.SerializeToString,
                                  response_deserializer=resp_cls.FromString)(
                request, timeout=timeout)

    # an unsigned read: after a deadline the same request may go to the next address
    out = try_in_order(endpoint, req_cls(**fields), send, peer=args.remote, deadline_s=30,
                       renew=None, resend_safe=True)
    if isinstance(out, Refused):
        err = out.error
        raise CliError(f"{args.remote} refused: {err.code().name.lower()}/{reason(err)}",
                       code=3) from None
    resp = out.value
    if method == "GetProofBundle":
        return bytes(resp.bundle)
    return [json.loads(e) for e in resp.entries]


def cmd_search(args: argparse.Namespace) -> int:
    if not args.remote:
        return cmd_list(args)
    entries = _remote_call(
        args, "SearchEntries", peer=args.peer or "", purpose=args.purpose or "",
        outcome=args.outcome or "", operator=args.operator or "", case_ref=args.case_ref or "",
        from_ms=_parse_time(args.since) or 0, to_ms=_parse_time(args.until) or 0,
        limit=min(args.limit, 10_000))
    for e in entries:
        print(json.dumps(e, ensure_ascii=False, sort_keys=True))
    return 0


def _remote_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--remote", help="ask this node's AuditorService (auditor role) instead")
    sp.add_argument("--auditor-dir", help="the auditor's tls.crt, tls.key (and ca.crt)")
    sp.add_argument("--members", help="members file naming the node's endpoint")


def register_more(au: Any, common: argparse.ArgumentParser) -> None:
    sp = add_command(au, "prove", cmd_prove,
                     "write an offline proof bundle: entry, inclusion proof, checkpoint, "
                     "cosignatures", common)
    sp.add_argument("--seq", type=_positive_int, required=True)
    sp.add_argument("--out", help="file to write (default audit-proof-<seq>.json)")
    _remote_args(sp)
    sp = add_command(au, "verify-bundle", cmd_verify_bundle,
                     "verify a proof bundle offline, against a members file", common)
    sp.add_argument("file")
    sp.add_argument("--members", required=True, help="the federation members file")
    sp.add_argument("--quorum", type=int, default=None,
                    help="witness cosignatures required (default: the node's [audit] "
                         "witness_quorum)")
    sp = add_command(au, "report", cmd_report, "write a self-contained HTML audit report",
                     common)
    sp.add_argument("--from", help="ISO 8601 start (default: 30 days before --to)")
    sp.add_argument("--to", help="ISO 8601 end (default: now)")
    sp.add_argument("--out", default="report.html")
    add_command(au, "status", cmd_status,
                "witnessing status; exit 1 when a peer's inconsistent checkpoint was seen "
                "or the log is on hold after a restore", common)
