"""The console's pages: parse the form, call the service layer, render.  Nothing else.

Lookups, follow-ups and the desk's decisions go through the LocalService's own methods
(:meth:`node.web.app.Console.invoke`: the same checks, the same signed requests, the same
facts audited); the desk's queue reads :class:`node.local.service.LocalOps`; the
watchlist, audit and node pages the functions behind the CLI commands
(:mod:`node.web.admin`).  All texts are marked for the gettext catalogues.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import MultiDictProxy

from node.core.errors import InvalidInput
from node.core.model import Purpose
from node.followup.store import DOCUMENT_FIELDS, PERSON_FIELDS
from node.web.app import AUDIT_SEQ, FORM, OFFICER, SESSION, Refusal, allowed
from node.web.i18n import N_
from node.web.settings import LANGUAGES
from node.wire.convert import pb
from node.wire.local import lpb

if TYPE_CHECKING:
    from node.web.app import Console

__all__ = ["EXPLAIN", "MAX_TEXT", "routes"]

MAX_TEXT = 2_000  # any one form field but an upload
_HEX64 = re.compile(r"[0-9a-f]{64}")

#: What a refusal means, for the officer (the reason code is shown beside it).
EXPLAIN: Mapping[str, str] = {
    "_default": N_("The request was refused."),
    "role_required": N_("Your role does not allow this."),
    "csrf_failed": N_("The form's security token is missing or out of date. Reload the page "
                      "and try again."),
    "cross_site_request": N_("A page of another site tried to send this form. Nothing was "
                             "done."),
    "not_signed_in": N_("Sign in first."),
    "session_expired": N_("Your session ended after a period without use. Sign in again."),
    "session_certificate_mismatch": N_("This session belongs to another certificate. Sign "
                                       "in again."),
    "sign_in_rate_limited": N_("Too many sign-in attempts. Wait a minute and try again."),
    "no_identity": N_("Your browser presented no officer certificate."),
    "oidc_state_mismatch": N_("The sign-in answer does not belong to this browser session. "
                              "Start again."),
    "oidc_nonce_mismatch": N_("The identity provider's token does not belong to this "
                              "sign-in. Start again."),
    "oidc_unavailable": N_("The identity provider could not be reached or refused the "
                           "sign-in."),
    "oidc_code_refused": N_("The identity provider refused the sign-in code (already used or "
                            "too old). Start again."),
    "token_wrong_audience": N_("The identity provider's token is meant for another "
                               "service."),
    "token_unknown_key": N_("The identity provider's token is signed by a key this node does "
                            "not know."),
    "oidc_not_configured": N_("Sign-in with the identity provider is not configured on this "
                              "node."),
    "token_expired": N_("The identity provider's token has expired."),
    "token_bad_signature": N_("The identity provider's token is not validly signed."),
    "unknown_peer": N_("That neighbour is not a member of the federation."),
    "bad_peer_list": N_("Choose one neighbour or all of them."),
    "no_peers": N_("Choose the neighbour to ask."),
    "bad_document_number": N_("The document number may hold only A-Z and 0-9."),
    "bad_country": N_("The issuing state must be a three-letter ICAO code."),
    "unknown_purpose": N_("Choose a purpose from the list."),
    "bad_case_ref": N_("Give a case reference."),
    "bad_mrz": N_("The machine-readable zone could not be read: check each line."),
    "bad_date": N_("Write the date of birth as YYYY, YYYY-MM or YYYY-MM-DD."),
    "bad_name": N_("A name is missing or too long."),
    "empty_request": N_("Nothing to check."),
    "batch_too_large": N_("The list holds more travellers than one check may."),
    "bad_upload": N_("The uploaded file could not be read."),
    "no_fields_requested": N_("Choose at least one field."),
    "unknown_followup": N_("There is no such follow-up."),
    "same_officer": N_("A second, different officer must confirm this release."),
    "confirmation_differs": N_("The confirmation must release the same fields as the first "
                               "approval."),
    "already_decided": N_("This follow-up has already been decided."),
    "bad_deny_reason": N_("Give the reason for the denial."),
    "invalid_argument": N_("A value is out of its bounds."),
    "too_many_withdrawals": N_("The file would withdraw more alerts than you allowed. Is it "
                               "complete? Nothing was changed."),
    "bad_sync_file": N_("The file has lines that could not be read. Nothing was changed."),
    "wrong_source": N_("The file holds alerts of another source. Nothing was changed."),
    "bad_source": N_("Give the source as a short name: letters, digits and . _ : @ -"),
    "sync_not_pending": N_("There is no previewed sync to apply. Upload the file again."),
    "sync_plan_changed": N_("The watchlist changed after the difference was shown. Nothing "
                            "was applied: show the difference again."),
    "internal_error": N_("Something went wrong on the node. The error is in its log."),
    "audit_unavailable": N_("The audit log could not be written, so nothing was done. Try "
                            "again."),
    "database_unavailable": N_("The node's database does not answer, so nothing was done. "
                               "Try again shortly."),
}

PURPOSES = tuple(p.value for p in Purpose)
PURPOSE_NAMES = {
    "border_check": N_("Border check"), "visa_application": N_("Visa application"),
    "migration_control": N_("Migration control"),
    "criminal_investigation": N_("Criminal investigation"),
    "counter_terrorism": N_("Counter-terrorism"),
}
OUTCOME_NAMES = {
    "answered": N_("Answered"), "refused": N_("Refused"), "unreachable": N_("Unreachable"),
    "not_asked": N_("Not asked"), "unverified": N_("Answer did not verify"),
}
ACTION_NAMES = {
    0: N_("None"), 1: N_("Refuse entry"), 2: N_("Arrest"), 3: N_("Seize the document"),
    4: N_("Inform"), 5: N_("Monitor"),
}
STATE_NAMES = {"pending": N_("Pending"), "overdue": N_("Overdue"), "approved": N_("Approved"),
               "denied": N_("Denied"), "fetched": N_("Fetched")}
FIELD_NAMES = {
    "document_number": N_("Document number"), "issuing_state": N_("Issuing state"),
    "document_type": N_("Document type"), "loss_type": N_("Loss type"),
    "family_name": N_("Family name"), "given_names": N_("Given names"),
    "patronymic": N_("Patronymic"), "date_of_birth": N_("Date of birth"),
    "nationality": N_("Nationality"), "sex": N_("Sex"),
}
LOOKUP_METHODS = {"document": "LookupDocument", "person": "LookupPerson", "mrz": "LookupMrz",
                  "manifest": "LookupManifest", "paxlst": "LookupPaxlst"}


def _text(form: MultiDictProxy[Any], key: str, *, limit: int = MAX_TEXT) -> str:
    value = form.get(key, "")
    if not isinstance(value, str):
        raise Refusal("INVALID_ARGUMENT", "invalid_argument", f"{key} must be text")
    if len(value) > limit:
        raise Refusal("INVALID_ARGUMENT", "invalid_argument",
                      f"{key} is longer than {limit} characters")
    return value.strip()


def _upload(form: MultiDictProxy[Any], key: str) -> bytes:
    field = form.get(key)
    if field is None or isinstance(field, str) or not hasattr(field, "file"):
        raise Refusal("INVALID_ARGUMENT", "empty_request", "choose a file to upload")
    data: bytes = field.file.read()
    if not data:
        raise Refusal("INVALID_ARGUMENT", "empty_request", "the uploaded file is empty")
    return data


def _form(request: web.Request) -> MultiDictProxy[Any]:
    form: MultiDictProxy[Any] = request[FORM]
    return form


def _birth(text: str) -> tuple[int, int, int, Any]:
    """(year, month, day, precision) from YYYY, YYYY-MM or YYYY-MM-DD."""
    m = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", text)
    if m is None:
        raise InvalidInput("the date of birth is YYYY, YYYY-MM or YYYY-MM-DD",
                           reason="bad_date")
    y, mo, d = int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0)
    precision = (pb.DATE_PRECISION_DAY if d else pb.DATE_PRECISION_MONTH if mo
                 else pb.DATE_PRECISION_YEAR)
    return y, mo, d, precision


_SEX = {"": pb.SEX_UNSPECIFIED, "M": pb.SEX_MALE, "F": pb.SEX_FEMALE, "X": pb.SEX_X}


def _target(form: MultiDictProxy[Any]) -> Any:
    peer = _text(form, "peer", limit=64)
    return lpb.FanOut(peers=[peer] if peer else [], context=_case(form))


def _case(form: MultiDictProxy[Any]) -> Any:
    return lpb.CaseContext(purpose=_text(form, "purpose", limit=64),
                           legal_basis=_text(form, "legal_basis", limit=200),
                           case_ref=_text(form, "case_ref", limit=64))


def _manifest_items(data: bytes, name: str) -> list[Any]:
    """A manifest upload (CSV or JSON lines, as ``bxnode lookup --manifest``) as items."""
    from node.core.model import DocumentQuery
    from node.watchlist.manifest import read_manifest

    suffix = ".json" if name.lower().endswith((".json", ".jsonl")) else ".csv"
    with tempfile.TemporaryDirectory(prefix="bxnode-console-") as d:
        path = Path(d) / f"manifest{suffix}"
        path.write_bytes(data)
        try:
            queries = read_manifest(path)
        except (InvalidInput, UnicodeDecodeError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, InvalidInput) else "bad_upload"
            raise Refusal("INVALID_ARGUMENT", reason, "the manifest could not be read"
                          ) from None
    out = []
    for q in queries:
        if isinstance(q, DocumentQuery):
            out.append(pb.QueryItem(document=pb.DocumentQuery(
                number=q.number, issuing_state=q.issuing_state, document_type=q.doc_type)))
        else:
            from node.wire.convert import _person_to_pb

            out.append(pb.QueryItem(person=_person_to_pb(q)))
    return out


def _check_request(kind: str, form: MultiDictProxy[Any]) -> tuple[Any, list[dict[str, str]]]:
    """The LocalService request for the check form, and what each item asks (to show)."""
    target = _target(form)
    if kind == "document":
        doc = pb.DocumentQuery(number=_text(form, "number", limit=20).upper(),
                               issuing_state=_text(form, "issuing_state", limit=3).upper(),
                               document_type=_text(form, "document_type", limit=2).upper()
                               or "P")
        return lpb.LookupDocumentRequest(target=target, document=doc), [
            {"kind": "document", "label": f"{doc.document_type} {doc.number} "
             f"({doc.issuing_state})"}]
    if kind == "person":
        y, mo, d, precision = _birth(_text(form, "birth", limit=10))
        sex = _text(form, "sex", limit=1).upper()
        if sex not in _SEX:
            raise InvalidInput("sex is M, F, X or empty", reason="invalid_argument")
        person = pb.PersonQuery(
            family_name=_text(form, "family_name", limit=100),
            given_names=_text(form, "given_names", limit=100),
            patronymic=_text(form, "patronymic", limit=100), birth_year=y, birth_month=mo,
            birth_day=d, birth_precision=precision,
            nationality=_text(form, "nationality", limit=3).upper(), sex=_SEX[sex])
        label = " ".join(x for x in (person.family_name, person.given_names,
                                     person.patronymic) if x)
        return lpb.LookupPersonRequest(target=target, person=person), [
            {"kind": "person", "label": label}]
    if kind == "mrz":
        mrz = _text(form, "mrz", limit=300).replace("\r\n", "\n")
        return lpb.LookupMrzRequest(target=target, mrz=mrz), [
            {"kind": "document", "label": N_("Document in the MRZ")},
            {"kind": "person", "label": N_("Holder in the MRZ")}]
    if kind == "manifest":
        field = form.get("file")
        items = _manifest_items(_upload(form, "file"), str(getattr(field, "filename", "")))
        return lpb.LookupManifestRequest(target=target, items=items), [
            _item_label(it) for it in items]
    if kind == "paxlst":
        data = _upload(form, "file")
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal("INVALID_ARGUMENT", "bad_upload", "the PAXLST file is not UTF-8"
                          ) from None
        return lpb.LookupPaxlstRequest(target=target, message=message), []
    raise Refusal("INVALID_ARGUMENT", "invalid_argument", "unknown kind of check")


def _item_label(it: Any) -> dict[str, str]:
    if it.WhichOneof("item") == "document":
        d = it.document
        return {"kind": "document", "label": f"{d.document_type} {d.number} "
                f"({d.issuing_state})"}
    p = it.person
    return {"kind": "person", "label": " ".join(
        x for x in (p.family_name, p.given_names, p.patronymic) if x)}


def _results(result: Any, items: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The FanOutResult, per peer and item, as the template shows it."""
    outcome_names = {1: "answered", 2: "refused", 3: "unreachable", 4: "not_asked",
                     5: "unverified"}
    peers = []
    for p in result.peers:
        outcome = outcome_names.get(p.outcome, "unreachable")
        rows = []
        for r in p.results:
            item = items[r.index] if r.index < len(items) else {"kind": "", "label": ""}
            kind = item["kind"]  # "" for a PAXLST traveller: either kind of record
            rows.append({"index": r.index, "label": item["label"],
                         "hit": r.outcome == pb.OUTCOME_HIT, "reference": r.reference,
                         "action": ACTION_NAMES.get(r.action, ACTION_NAMES[0]),
                         "contact": r.contact, "kind": kind,
                         "fields": {"document": DOCUMENT_FIELDS, "person": PERSON_FIELDS}.get(
                             kind, DOCUMENT_FIELDS + PERSON_FIELDS)})
        peers.append({"peer": p.peer, "outcome": outcome, "status": p.status,
                      "reason": p.reason, "verified": outcome == "answered" or (
                          outcome == "refused" and p.refusal_verified),
                      "digest": bytes(p.request_digest).hex(), "hits": p.hits,
                      "rows": rows})
    return peers


# --- the pages -----------------------------------------------------------------------------


def routes(app: web.Application, c: Console) -> None:
    from node.web import admin, signin

    r = app.router
    r.add_get("/healthz", _ok)
    r.add_get("/", partial(home, c))
    signin.routes(app, c)
    r.add_post("/language", partial(language, c))
    r.add_get("/check", partial(check_form, c))
    r.add_post("/check", partial(check, c))
    r.add_post("/followups/send", partial(send_followup, c))
    r.add_get("/followups", partial(followups, c))
    r.add_post("/followups/poll", partial(poll_followup, c))
    r.add_get("/desk", partial(desk, c))
    r.add_post("/desk/approve", partial(approve, c))
    r.add_post("/desk/deny", partial(deny, c))
    admin.routes(app, c)


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def home(c: Console, request: web.Request) -> web.StreamResponse:
    roles = request[OFFICER].identity.roles
    for action, path in (("LookupDocument", "/check"), ("ListDeskFollowUps", "/desk"),
                         ("ListAlerts", "/watchlist"), ("ViewAudit", "/audit"),
                         ("ViewNode", "/node")):
        if allowed(roles, action):
            raise web.HTTPSeeOther(path)
    return c.render(request, "home.html")


async def language(c: Console, request: web.Request) -> web.StreamResponse:
    form = _form(request)
    lang = _text(form, "lang", limit=8)
    tz = _text(form, "tz", limit=64)
    session = request[SESSION]
    from node.web.app import ZONES

    if lang in LANGUAGES:
        session.language = lang
    if tz in ZONES:
        session.timezone = tz
    officer = request.get(OFFICER)
    if officer is not None:
        await c.sessions.put_prefs(officer.identity.name,
                                   session.language or c.settings.default_language,
                                   session.timezone or c.settings.timezone)
    back = _text(form, "back", limit=200)
    raise web.HTTPSeeOther(back if back.startswith("/") and not back.startswith("//")
                           else "/")


def _peers(c: Console) -> list[str]:
    ops = c.ops
    return sorted(m.node_id for m in ops.directory.members()
                  if m.node_id != ops.node_id and "node" in m.roles)


def _check_context(c: Console, **extra: Any) -> dict[str, Any]:
    return {"peers": _peers(c), "purposes": PURPOSES, "purpose_names": PURPOSE_NAMES,
            "kind": "document", "values": {}, **extra}


async def check_form(c: Console, request: web.Request) -> web.StreamResponse:
    officer = request[OFFICER]
    if not allowed(officer.identity.roles, "LookupDocument"):
        raise Refusal("PERMISSION_DENIED", "role_required", "checks need the duty_officer role")
    return c.render(request, "check.html", **_check_context(c))


async def check(c: Console, request: web.Request) -> web.StreamResponse:
    form = _form(request)
    kind = _text(form, "kind", limit=16)
    method = LOOKUP_METHODS.get(kind, "LookupDocument")
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
    try:
        async def build_and_call(facts: dict[str, Any]) -> Any:
            msg, items = _check_request(kind, form)
            facts["items_shown"] = len(items)
            response = await c.api.invoke(request[OFFICER].identity, method, msg, facts)
            return response, items

        response, items = await c.call(request, method, build_and_call, method=method)
    except Refusal as r:
        return c.render(request, "check.html", status=_http(r), reason=r.reason,
                        refusal=r, explain=c.gettext(request, EXPLAIN.get(
                            r.reason, EXPLAIN["_default"])),
                        **_check_context(c, kind=kind, values=values))
    peers = _results(response.result, items)
    return c.render(request, "results.html", peers=peers, kind=kind,
                     mrz_format=getattr(response, "format", ""),
                     case=_case(form), purpose_names=PURPOSE_NAMES,
                     outcome_names=OUTCOME_NAMES, field_names=FIELD_NAMES,
                     audit_seq=request[AUDIT_SEQ])


def _http(r: Refusal) -> int:
    from node.web.app import http_status

    return http_status(r.status)


def _flash(request: web.Request, text: str) -> None:
    request[SESSION].flash = text


async def send_followup(c: Console, request: web.Request) -> web.StreamResponse:
    form = _form(request)
    digest = _text(form, "lookup_digest", limit=64)
    if digest and not _HEX64.fullmatch(digest):
        raise Refusal("INVALID_ARGUMENT", "bad_digest", "lookup_digest is 64 hex digits")
    try:
        index = int(_text(form, "item_index", limit=6) or "0")
    except ValueError:
        raise Refusal("INVALID_ARGUMENT", "invalid_argument", "item_index is a number"
                      ) from None
    msg = lpb.SendFollowUpRequest(
        peer=_text(form, "peer", limit=64), context=_case(form),
        reference=_text(form, "reference", limit=64),
        lookup_digest=bytes.fromhex(digest), item_index=index,
        fields=[f for f in form.getall("fields", []) if isinstance(f, str)][:32])
    response = await c.invoke(request, "SendFollowUp", msg)
    _flash(request, N_("The follow-up was filed."))
    request[SESSION].last_followup = response.followup.followup_id
    raise web.HTTPSeeOther("/followups")


async def followups(c: Console, request: web.Request) -> web.StreamResponse:
    officer = request[OFFICER]
    if not allowed(officer.identity.roles, "PollFollowUp"):
        raise Refusal("PERMISSION_DENIED", "role_required",
                      "follow-ups need the duty_officer role")
    rows = await c.ops.writer.call(c.ops.followups.all_sent)
    rows = sorted(rows, key=lambda r: -r.filed_ms)[:200]
    return c.render(request, "followups.html", rows=rows, answer=None,
                    state_names=STATE_NAMES, field_names=FIELD_NAMES,
                    purpose_names=PURPOSE_NAMES, flash=_pop_flash(request))


def _pop_flash(request: web.Request) -> str:
    session = request[SESSION]
    text: str = session.flash
    session.flash = ""
    return text


async def poll_followup(c: Console, request: web.Request) -> web.StreamResponse:
    form = _form(request)
    peer, fid = _text(form, "peer", limit=64), _text(form, "followup_id", limit=64)
    sent = await c.ops.writer.call(lambda: c.ops.followups.sent(peer, fid))
    ctx = lpb.CaseContext(purpose=sent.purpose, legal_basis=sent.legal_basis,
                          case_ref=sent.case_ref) if sent is not None else _case(form)
    response = await c.invoke(request, "PollFollowUp", lpb.PollFollowUpRequest(
        peer=peer, followup_id=fid, context=ctx))
    rows = await c.ops.writer.call(c.ops.followups.all_sent)
    rows = sorted(rows, key=lambda r: -r.filed_ms)[:200]
    return c.render(request, "followups.html", rows=rows, answer=response.followup,
                    state_names=STATE_NAMES, field_names=FIELD_NAMES,
                    purpose_names=PURPOSE_NAMES, flash="")


def _desk_order(pair: tuple[Any, Any]) -> tuple[int, int]:
    row, _pending = pair
    if row.state == "pending":
        return (0 if row.overdue_ms is not None else 1, row.deadline_ms)
    return (2, -(row.decided_ms or row.filed_ms))


async def desk(c: Console, request: web.Request) -> web.StreamResponse:
    async def run(facts: dict[str, Any]) -> Any:
        rows = await c.ops.desk_list("")
        facts["followups"] = len(rows)
        return rows

    rows = await c.call(request, "ListDeskFollowUps", run, method="ListDeskFollowUps")
    rows = sorted(rows, key=_desk_order)[:500]
    now = c.clock_ms()
    return c.render(request, "desk.html", rows=rows, now=now, state_names=STATE_NAMES,
                    field_names=FIELD_NAMES, purpose_names=PURPOSE_NAMES,
                    flash=_pop_flash(request))


async def approve(c: Console, request: web.Request) -> web.StreamResponse:
    form = _form(request)
    fid = _text(form, "followup_id", limit=64)
    fields = [f for f in form.getall("fields", []) if isinstance(f, str)][:32]
    response = await c.invoke(request, "ApproveFollowUp", lpb.ApproveFollowUpRequest(
        followup_id=fid, fields=fields))
    _flash(request, N_("Your approval is recorded; a second officer must confirm it.")
           if response.confirmation_pending else N_("Approved: the fields were released."))
    raise web.HTTPSeeOther("/desk")


async def deny(c: Console, request: web.Request) -> web.StreamResponse:
    form = _form(request)
    fid = _text(form, "followup_id", limit=64)
    reason_text = _text(form, "deny_reason", limit=500)
    await c.invoke(request, "DenyFollowUp", lpb.DenyFollowUpRequest(
        followup_id=fid, reason=reason_text))
    _flash(request, N_("Denied."))
    raise web.HTTPSeeOther("/desk")


def today(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat()

