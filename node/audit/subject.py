"""Data-subject access for the data-protection authority (issue 13): who asked about this
document or person, when, why, what was answered, and whether a follow-up released data.

Answered from the receipts still held, on both sides: ``received`` (a peer asked us) and
``sent`` (we asked a peer).  An erased receipt (past its retention) has only its digests
left and is not searched: the answer covers what the node still holds, as the law asks.
Persons are matched with the lookups' own cross-script matcher (:func:`node.matching.score`),
so Юсупов and YUSUPOV are found together; documents by number and issuing state.

What a follow-up released is named by its field **names** (both sides keep the signed
decision); the values -- the person's own data as the owner's record holds it -- are read
from that signed decision only when the auditor asks for them (``with_values``), and the
CLI records in the access's audit entry whether they were shown.

Who may ask: an **auditor**, proven by possession of the signing key of a member the
federation lists with the role ``auditor`` (members file or signed registry), with that
key inside its validity window and not revoked.  The node's own operators cannot.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import nacl.signing

from node.core import envelope as env_mod
from node.core.envelope import key_id_for
from node.core.errors import NotAuthorised
from node.core.members import Member, MemberDirectory
from node.core.model import DocumentQuery, LookupAnswer, PersonQuery
from node.matching import score
from node.store.db import Database
from node.store.followups import FollowUpTables
from node.store.retention import RetentionTables
from node.wire import convert
from node.wire import crossings as fwire
from node.wire.convert import pb

__all__ = ["Exchange", "authenticate_auditor", "render_html", "render_table", "subject_access"]


def authenticate_auditor(directory: MemberDirectory, key: nacl.signing.SigningKey, *,
                         now_ms: int) -> Member:
    """The auditor member whose listed key ``key`` is; else ``not_an_auditor``."""
    kid = key_id_for(bytes(key.verify_key))
    for m in directory.members():
        for k in m.keys:
            if k.key_id != kid or k.public_key != bytes(key.verify_key):
                continue
            if "auditor" not in m.roles:
                raise NotAuthorised(f"the key given is {m.node_id}'s, which has no auditor "
                                    "role", reason="not_an_auditor")
            if k.revoked or not getattr(k, "not_before_ms", 0) <= now_ms <= k.not_after_ms:
                raise NotAuthorised(f"{m.node_id}'s key is revoked or outside its validity",
                                    reason="not_an_auditor")
            return m
    raise NotAuthorised("the key given belongs to no member with the auditor role",
                        reason="not_an_auditor")


@dataclass(frozen=True, slots=True)
class Exchange:
    """One question about the data subject, as a receipt holds it."""

    direction: str          # received (a peer asked us) | sent (we asked a peer)
    peer: str
    time_ms: int
    operator: str
    purpose: str
    legal_basis: str
    case_ref: str
    item_index: int
    item_kind: str          # document | person
    answer: str             # hit | no_hit | refused
    reference: str
    followup: str           # "" | pending | approved | denied
    released: tuple[str, ...]
    request_digest: str
    #: the released values by field name; only when the auditor asked for them
    released_values: tuple[tuple[str, str], ...] | None = None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["released"] = list(self.released)
        if self.released_values is None:
            del out["released_values"]
        else:
            out["released_values"] = dict(self.released_values)
        return out

    def followup_text(self) -> str:
        """``-``, the state, or ``approved: name, name`` (``name=value`` with the values)."""
        if not self.followup:
            return "-"
        if self.released_values is not None and self.released_values:
            return f"{self.followup}: " + ", ".join(f"{k}={v}" for k, v in self.released_values)
        return f"{self.followup}: {', '.join(self.released)}" if self.released else self.followup


def _decision(env_bytes: bytes | None) -> dict[str, str]:
    """The field values a stored signed follow-up decision released (verified when it was
    made or fetched); ``{}`` for none or a denial."""
    if not env_bytes:
        return {}
    try:
        env = convert.envelope_from_pb(pb.SignedEnvelope.FromString(env_bytes))
        decision = fwire.decode_followup_decision(env.payload)
    except Exception:
        return {}
    return dict(decision.fields) if decision.state == "approved" else {}


def _matches(item: Any, *, document: tuple[str, str] | None,
             person: PersonQuery | None) -> bool:
    if document is not None and isinstance(item, DocumentQuery):
        return (item.number, item.issuing_state) == document
    if person is not None and isinstance(item, PersonQuery):
        return score(person, item).match
    return False


def subject_access(db: Database, *, document: tuple[str, str] | None = None,
                   person: PersonQuery | None = None,
                   with_values: bool = False) -> list[Exchange]:
    """Every lookup item in a held receipt about ``document`` (number, issuing state) or
    ``person``, oldest first; ``with_values``: also the values a follow-up released."""
    if (document is None) == (person is None):
        raise ValueError("give a document or a person")
    tables = RetentionTables(db)
    tables.ensure_schema()
    followups = FollowUpTables(db)
    followups.ensure_schema()
    # a follow-up names its hit by (peer, lookup request digest, item index); the latest
    # filed wins where one hit was followed up twice
    owner: dict[tuple[str, bytes, int], tuple[str, tuple[str, ...], bytes | None]] = {
        (f.requester, f.hit_request_digest, f.hit_item_index): (f.state, f.released,
                                                                 f.decision_env)
        for f in sorted(followups.all(), key=lambda f: f.filed_ms)}
    sent: dict[tuple[str, bytes, int], tuple[str, tuple[str, ...], bytes | None]] = {}
    for s in sorted(followups.all_sent(), key=lambda s: s.filed_ms):
        released = tuple(sorted(_decision(s.decision_env)))
        sent[(s.peer, s.hit_request_digest, s.hit_item_index)] = (s.state, released,
                                                                  s.decision_env)
    out: list[Exchange] = []
    for r in tables.all_receipts():
        if r.erased_ms is not None or not r.request_env:
            continue
        try:
            request = convert.envelope_from_pb(pb.SignedEnvelope.FromString(r.request_env))
            if request.payload_type != env_mod.REQUEST_TYPE:
                continue
            req = convert.decode_request(request.payload, max_items=100_000)
        except Exception:  # noqa: S112 - a malformed request was refused: nobody is in it
            continue
        answer: Any = None
        try:
            response = convert.envelope_from_pb(pb.SignedEnvelope.FromString(r.response_env))
            answer = convert.decode_response(response.payload)
        except Exception:
            answer = None
        h = req.header
        for i, item in enumerate(req.items):
            if not _matches(item, document=document, person=person):
                continue
            outcome, ref = "refused", ""
            if isinstance(answer, LookupAnswer) and i < len(answer.results):
                res = answer.results[i]
                outcome, ref = res.outcome.value, res.reference
            state, released = "", tuple[str, ...]()
            values: tuple[tuple[str, str], ...] | None = None
            f = (owner if r.direction == "received" else sent).get(
                (r.peer, bytes(r.request_digest), i))
            if f is not None:
                state, released = f[0], tuple(f[1])
                if with_values:
                    values = tuple(sorted(_decision(f[2]).items()))
            elif with_values:
                values = ()
            out.append(Exchange(
                direction=r.direction, peer=r.peer, time_ms=r.created_ms,
                operator=h.operator, purpose=h.purpose, legal_basis=h.legal_basis,
                case_ref=h.case_ref, item_index=i,
                item_kind="document" if isinstance(item, DocumentQuery) else "person",
                answer=outcome, reference=ref, followup=state, released=tuple(released),
                request_digest=r.request_digest.hex(), released_values=values))
    return sorted(out, key=lambda e: (e.time_ms, e.request_digest, e.item_index))


TABLE_HEAD: Final = ("when (UTC)", "direction", "node", "officer", "purpose",
                     "case reference", "about", "answer", "follow-up (fields released)")


def render_table(exchanges: Sequence[Exchange]) -> list[str]:
    """The plain table: a header and one line per question, columns as wide as their
    widest cell, two spaces apart, trailing blanks stripped."""
    rows = [TABLE_HEAD, *((_when(x.time_ms),
                           "asked us" if x.direction == "received" else "we asked",
                           x.peer, x.operator, x.purpose, x.case_ref, x.item_kind,
                           f"{x.answer} {x.reference}".strip(), x.followup_text())
                          for x in exchanges)]
    widths = [max(len(r[c]) for r in rows) for c in range(len(TABLE_HEAD))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def _when(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def render_html(*, node_id: str, subject: str, exchanges: Sequence[Exchange],
                generated_ms: int, auditor: str) -> str:
    """One self-contained page (no scripts, no external assets) for the authority's
    letter to the person."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(_when(x.time_ms))}</td><td>"
        f"{'asked us' if x.direction == 'received' else 'we asked'}</td>"
        f"<td>{e(x.peer)}</td><td>{e(x.operator)}</td><td>{e(x.purpose)}</td>"
        f"<td>{e(x.case_ref)}</td><td>{e(x.item_kind)}</td><td>{e(x.answer)}</td>"
        f"<td>{e(x.followup_text())}</td></tr>"
        for x in exchanges)
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Subject access "
            f"report {e(node_id)}</title><style>body{{font-family:sans-serif}}"
            "table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px}</style>"
            f"</head><body><h1>Who consulted this data at {e(node_id)}</h1>"
            f"<p>Subject: {e(subject)}. Prepared for {e(auditor)} on {e(_when(generated_ms))}"
            ". Covers the receipts this node still holds (older ones were erased at the "
            f"end of their retention).</p><p>{len(exchanges)} question(s).</p>"
            "<table><tr><th>when (UTC)</th><th>direction</th><th>node</th><th>officer</th>"
            "<th>purpose</th><th>case reference</th><th>asked about</th><th>answer</th>"
            "<th>follow-up (fields released)</th></tr>"
            f"{rows}</table></body></html>\n")
