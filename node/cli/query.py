"""``bxnode query doc|person|batch`` under an officer identity: a LocalService client.

The node asks (``--peer`` a node id, or ``all``: every peer whose agreement lets us ask),
verifies each answer and audits the call with the authenticated officer; the CLI prints
each peer's result as the direct commands print one answer, never merged.  Exit status:
0 when every peer asked answered, 3 when one refused, 1 when one was unreachable or its
answer did not verify (see :func:`node.cli.identity.fan_out_exit`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from node.cli.identity import (
    Officer,
    call,
    fan_out_exit,
    peer_result_json,
    peer_result_lines,
)
from node.core.model import DocumentQuery, ItemResult, PersonQuery, Query, QueryKind

__all__ = ["ask_through_local", "print_fan_out"]

Rows = Callable[[list[ItemResult]], tuple[list[Any], list[str]]]


def ask_through_local(args: argparse.Namespace, off: Officer, kind: QueryKind,
                      items: Sequence[Query], rows: Rows | None = None) -> int:
    assert off.local is not None
    node = off.local
    target = {"peers": [args.peer], "purpose": args.purpose, "case_ref": args.case_ref,
              "legal_basis": args.legal_basis}
    if kind is QueryKind.DOCUMENT:
        d = items[0]
        assert isinstance(d, DocumentQuery)
        result = call(node.lookup_document, d.number, d.issuing_state, d.doc_type, **target)
    elif kind is QueryKind.PERSON:
        p = items[0]
        assert isinstance(p, PersonQuery)
        result = call(node.lookup_person, p, **target)
    else:
        result = call(node.lookup_manifest, list(items), **target)
    return print_fan_out(args, result, single=args.peer != "all", rows=rows)


def print_fan_out(args: argparse.Namespace, result: Any, *, single: bool,
                  rows: Rows | None = None) -> int:
    """Each peer's result on its own; with one named peer, the JSON of a direct query
    (plus ``local_audit_seq``), else ``{"peers": [...]}``."""
    text: list[str] = []
    peers_json = []
    for p in result.peers:
        pj = peer_result_json(p)
        lines = peer_result_lines(p, per_item=rows is None)
        if rows is not None and p.outcome == "answered":
            pj["rows"], row_text = rows(list(p.results))
            lines = row_text + lines
        if not single:
            lines = [f"{p.peer}:"] + [f"  {ln}" for ln in lines]
        text += lines
        peers_json.append(pj)
    text.append(f"asked through the node's LocalService under your officer identity "
                f"(local audit entry {result.audit_seq})")
    code = fan_out_exit(result.peers)
    if single and len(peers_json) == 1 and peers_json[0]["outcome"] != "answered":
        p = result.peers[0]
        if args.json:
            print(json.dumps({"error": {"status": p.status, "reason": p.reason,
                                        "refused_by_peer": p.outcome == "refused",
                                        "refusal_verified": p.refusal_verified,
                                        "outcome": p.outcome,
                                        "local_audit_seq": result.audit_seq}},
                             ensure_ascii=False, sort_keys=True))
        detail = (f"{p.status.lower()}/{p.reason}"
                  f"{' (signed refusal verified)' if p.refusal_verified else ''}")
        print(f"bxnode: the peer refused: {detail}" if p.outcome == "refused"
              else f"bxnode: peer {p.peer} {p.outcome}: {detail}", file=sys.stderr)
        return code
    if args.json:
        if single and len(peers_json) == 1:
            payload = {k: v for k, v in peers_json[0].items() if k != "outcome"}
        else:
            payload = {"peers": peers_json}
        payload["local_audit_seq"] = result.audit_seq
        print(json.dumps(payload, ensure_ascii=False, sort_keys=True))
    else:
        print("\n".join(text))
    return code
