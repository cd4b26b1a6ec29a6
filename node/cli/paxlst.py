"""``bxnode query batch`` and ``bxnode query paxlst``: whole flights, traveller by traveller.

``batch`` reads a CSV / JSON Lines manifest (:mod:`node.watchlist.manifest`) and asks one
peer in one signed batch; a row naming a document and a person is two items, and each row's
line says which of them hit.

``paxlst`` reads an airline's UN/EDIFACT PAXLST message (:mod:`node.watchlist.paxlst`),
refuses a malformed one before anything is sent, and asks each ``--peer`` in turn, in
signed batches of at most the node's ``[limits] max_batch`` items (a traveller's items stay
in one batch).  Each peer's answer is printed on its own, never merged: every traveller
with the item that hit, what was not checked and why, or the peer's refusal or silence.
Exit status: 0 when every peer answered every batch, 3 when a peer refused (and none was
unreachable), 1 when a peer could not be reached.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.cli.main import (
    EXIT_FAIL,
    EXIT_REFUSED,
    CliError,
    _client,
    _config,
    _positive_int,
    _run_query,
    add_command,
    get_group,
)
from node.core.errors import EnvironmentFault, RemoteError
from node.core.model import ItemResult

__all__ = ["cmd_query_batch", "cmd_query_paxlst", "register"]


def _result_text(r: ItemResult) -> str:
    if r.outcome.value != "hit":
        return "no hit"
    return (f"HIT  ref={r.reference or '-'} action={r.action.value if r.action else '-'} "
            f"contact={r.contact or '-'}" + (f" source={r.source_agency}" if r.source_agency
                                             else ""))


def _result_json(r: ItemResult) -> dict[str, Any]:
    return {"outcome": r.outcome.value, "reference": r.reference,
            "action": r.action.value if r.action else None, "contact": r.contact,
            **({"source_agency": r.source_agency} if r.source_agency else {})}


# --- query batch ------------------------------------------------------------------------


def cmd_query_batch(args: argparse.Namespace) -> int:
    """One signed batch; the per-item lines of before, then which item of each row hit."""
    from node.core.model import QueryKind
    from node.watchlist.manifest import read_manifest_rows

    rows = read_manifest_rows(Path(args.file))
    items = [q for row in rows for _, q in row.items]
    shown: list[tuple[Any, list[tuple[str, int]]]] = []
    index = 0
    for row in rows:
        shown.append((row, [(kind, index + k) for k, (kind, _) in enumerate(row.items)]))
        index += len(row.items)

    def rows_of(results: list[ItemResult]) -> tuple[list[dict[str, Any]], list[str]]:
        out, text = [], []
        for row, refs in shown:
            parts = [f"{kind}: {_result_text(results[i])}" for kind, i in refs]
            if row.person_not_checked:
                parts.append(f"person not checked: {row.person_not_checked}")
            text.append(f"line {row.line}: " + "; ".join(parts))
            out.append({"line": row.line, "items": [
                {"index": i, "item": kind, **_result_json(results[i])} for kind, i in refs],
                "hit": [kind for kind, i in refs if results[i].outcome.value == "hit"],
                "not_checked": ([f"person: {row.person_not_checked}"]
                                if row.person_not_checked else [])})
        return out, text

    return _run_query(args, QueryKind.BATCH, items, rows=rows_of)


# --- query paxlst -------------------------------------------------------------------------


@dataclass
class _PeerRun:
    peer: str
    status: str = "answered"  # answered | refused | unreachable | not_asked
    error: str = ""
    reason: str = ""
    refusal_verified: bool = False
    batches_answered: int = 0
    results: list[ItemResult] = field(default_factory=list)
    audit_seqs: list[int] = field(default_factory=list)


def _read_message(path: Path) -> bytes:
    from node.watchlist.paxlst import MAX_PAXLST_BYTES, PaxlstError

    if not path.is_file():
        raise CliError(f"{path} is not a readable file")
    with path.open("rb") as f:
        data = f.read(MAX_PAXLST_BYTES + 1)
    if len(data) > MAX_PAXLST_BYTES:  # refused before it is read further
        raise PaxlstError(f"the message is larger than {MAX_PAXLST_BYTES} bytes",
                          reason="paxlst_too_large")
    return data


def cmd_query_paxlst(args: argparse.Namespace) -> int:
    from node.cli.identity import officer
    from node.watchlist.paxlst import (
        flight_batches,
        flight_queries,
        parse_paxlst,
        traveller_results,
    )

    data = _read_message(Path(args.file))
    flight = parse_paxlst(data)  # a malformed message is refused here: nothing is sent
    items = flight_queries(flight)
    if not items:
        raise CliError(f"{Path(args.file).name} holds no traveller this node can check")
    cfg = _config(args)
    peers: list[str] = args.peers
    twice = next((p for i, p in enumerate(peers) if p in peers[:i]), None)
    if twice is not None:
        raise CliError(f"peer {twice} is named twice")
    size = min(args.batch_size or cfg.max_batch, cfg.max_batch)
    batches = flight_batches(items, size)
    runs: list[_PeerRun] = []
    local_seq = None
    with officer(args, cfg, "query paxlst") as off:
        if off.local is not None:
            if args.batch_size:
                raise CliError("--batch-size applies only when the CLI asks the peers itself "
                               "(dev_mode); the node batches by its [limits] max_batch")
            batches = flight_batches(items, cfg.max_batch)
            runs, local_seq = _through_local(args, off, data, len(batches))
    if local_seq is None:
        if "all" in peers:
            raise CliError("--peer all needs an officer identity: the node's LocalService "
                           "decides which peers our agreements let us ask")
        _ask_directly(args, cfg, off.operator, peers, batches, runs)
    text = [f"flight {flight.flight} {flight.route}: PAXLST {flight.version} "
            f"{'crew' if flight.list_type.value == 'crew' else 'passenger'} list "
            f"(message {flight.message_ref}), {len(flight.travellers)} traveller(s), "
            f"{len(items)} item(s) in {len(batches)} batch(es) per peer"]
    peers_json = []
    for run in runs:
        answered = [i for b in batches[:run.batches_answered] for i in b]
        per_traveller = traveller_results(flight, answered, run.results)
        text.append(f"{run.peer}:")
        travellers_json = []
        for tr in per_traveller:
            t = tr.traveller
            parts = [f"{item.label}: {_result_text(r)}" for item, r in tr.checks]
            asked = len(tr.checks)
            expected = sum(1 for i in items if i.traveller == t.index)
            if asked < expected:
                parts.append("not asked (see below)")
            parts += list(tr.not_checked)
            text.append(f"  #{t.index} {t.name} ({t.role.value.replace('_', ' ')}): "
                        + "; ".join(parts))
            travellers_json.append({
                "index": t.index, "name": t.name, "role": t.role.value,
                "hit": [item.kind.value for item, r in tr.checks if r.outcome.value == "hit"],
                "items": [{"item": item.kind.value, "label": item.label, **_result_json(r)}
                          for item, r in tr.checks],
                "not_asked": asked < expected, "not_checked": list(tr.not_checked),
                "notes": list(t.notes)})
        hits = sum(1 for r in run.results if r.outcome.value == "hit")
        if run.status == "not_asked":
            text.append(f"  {run.peer}: NOT ASKED ({run.reason}): no agreement in force lets "
                        "us ask it this")
        elif run.status == "answered":
            text.append(f"  {run.peer}: {hits} hit(s) in {len(run.results)} item(s), "
                        f"{run.batches_answered} batch(es); answers verified, receipts kept "
                        f"(peer audit entries {', '.join(map(str, run.audit_seqs))})")
        else:
            what = (f"REFUSED {run.error}"
                    f"{' (signed refusal verified)' if run.refusal_verified else ''}"
                    if run.status == "refused" else f"UNREACHABLE ({run.error})")
            if local_seq is not None:  # the node reports a peer's failure, not its batch
                text.append(f"  {run.peer}: {what}; none of its answers is used")
            else:
                text.append(f"  {run.peer}: {what} at batch {run.batches_answered + 1} of "
                            f"{len(batches)}; batches {run.batches_answered + 1}-"
                            f"{len(batches)} not asked")
        peers_json.append({
            "peer": run.peer, "status": run.status, "reason": run.reason or None,
            "error": run.error or None, "refusal_verified": run.refusal_verified,
            "batches": len(batches), "batches_answered": run.batches_answered,
            "hits": hits, "peer_audit_seqs": run.audit_seqs, "travellers": travellers_json})
    payload: dict[str, Any] = {"flight": {"flight": flight.flight, "route": flight.route,
                          "version": flight.version, "list": flight.list_type.value,
                          "message_ref": flight.message_ref,
                          "travellers": len(flight.travellers), "items": len(items),
                          "batches": len(batches)},
               "peers": peers_json}
    if local_seq is not None:
        payload["local_audit_seq"] = local_seq
        text.append(f"asked through the node's LocalService under your officer identity "
                    f"(local audit entry {local_seq})")
    if args.json:
        print(json.dumps(payload, ensure_ascii=False, sort_keys=True))
    else:
        print("\n".join(text))
    if any(r.status == "unreachable" for r in runs):
        return EXIT_FAIL
    if any(r.status == "refused" for r in runs):
        return EXIT_REFUSED
    return 0


def _ask_directly(args: argparse.Namespace, cfg: Any, operator: str, peers: list[str],
                  batches: list[list[Any]], runs: list[_PeerRun]) -> None:
    """Development only: this CLI signs and sends each batch to each peer in turn."""
    from node.app import open_store
    from node.client.peer import QueryContext
    from node.core.model import QueryKind
    from node.federation.members_file import load_members

    if cfg.registry is None:
        known = {m.node_id for m in load_members(cfg.members).members()}
        unknown = next((p for p in peers if p not in known), None)
        if unknown is not None:
            raise CliError(f"peer {unknown} is not in the members file {cfg.members}")
    ctx = QueryContext(operator=operator, purpose=args.purpose, legal_basis=args.legal_basis,
                       case_ref=args.case_ref)
    store = open_store(cfg)
    try:
        client = _client(cfg, store)
    except BaseException:
        store.close()
        raise
    try:
        client.header(ctx)  # a bad purpose, case reference or operator: refused, none sent
        for peer in peers:
            run = _PeerRun(peer)
            runs.append(run)
            for batch in batches:
                try:
                    answer = client.lookup(peer, ctx, QueryKind.BATCH,
                                           [i.query for i in batch])
                except RemoteError as exc:
                    run.status, run.reason = "refused", exc.reason
                    run.error = f"{exc.status.lower()}/{exc.reason}"
                    run.refusal_verified = exc.refusal_verified
                    break
                except EnvironmentFault as exc:
                    run.status, run.reason, run.error = "unreachable", exc.reason, str(exc)
                    break
                run.batches_answered += 1
                run.results.extend(answer.results)
                run.audit_seqs.append(answer.audit_seq)
    finally:
        client.close()
        store.close()


def _through_local(args: argparse.Namespace, off: Any, data: bytes,
                   n_batches: int) -> tuple[list[_PeerRun], int]:
    """Under an officer identity: the node's LocalService asks every peer in parallel."""
    from node.cli.identity import call
    text = data.decode(_syntax_codec(data))  # parse_paxlst decoded it this way already
    result = call(off.local.lookup_paxlst, text, peers=list(args.peers), purpose=args.purpose,
                  case_ref=args.case_ref, legal_basis=args.legal_basis)
    runs = []
    for p in result.peers:
        run = _PeerRun(p.peer, reason=p.reason, refusal_verified=p.refusal_verified)
        if p.outcome == "answered":
            run.batches_answered = n_batches
            run.results = list(p.results)
            run.audit_seqs = [p.peer_audit_seq]
        elif p.outcome == "refused":
            run.status, run.error = "refused", f"{p.status.lower()}/{p.reason}"
        elif p.outcome == "not_asked":
            run.status = "not_asked"
        else:  # unreachable, or an answer that did not verify: nothing of it is used
            run.status, run.error = "unreachable", f"{p.outcome}: {p.status.lower()}/{p.reason}"
        runs.append(run)
    return runs, int(result.audit_seq)


def _syntax_codec(data: bytes) -> str:
    """The character set UNB's syntax identifier names (the parser already checked it)."""
    import re

    from node.watchlist.paxlst import _CODECS

    m = re.search(rb"UNB.([A-Z]{4})", data)
    return _CODECS.get(m.group(1).decode(), "utf-8") if m else "utf-8"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    q = get_group(sub, "query")
    sp = add_command(q, "paxlst", cmd_query_paxlst,
                     "check an airline's UN/EDIFACT PAXLST message, traveller by traveller",
                     common)
    sp.add_argument("file", help="the PAXLST interchange (UNA? UNB ... UNZ)")
    sp.add_argument("--peer", "--peers", action="append", required=True, dest="peers",
                    metavar="PEER",
                    help="node id of a peer to ask (repeat to ask several); with an officer "
                         "identity, 'all': every peer whose agreement lets us ask")
    sp.add_argument("--purpose", required=True,
                    help="border_check, visa_application, migration_control, "
                         "criminal_investigation or counter_terrorism")
    sp.add_argument("--case-ref", required=True, help="your case or file reference")
    sp.add_argument("--legal-basis", default="bilateral agreement",
                    help="legal basis of the request")
    from node.cli.identity import add_officer_args

    add_officer_args(sp)
    sp.add_argument("--batch-size", type=_positive_int,
                    help="items per signed batch (default and at most: [limits] max_batch)")
