"""The watchlist manager's, the auditor's and the administrator's pages.

Watchlist: the LocalService's alert methods (AlertStats, ListAlerts, AddAlert,
WithdrawAlert) through :meth:`Console.invoke`; import and sync of one source's complete list
through ``bxnode watchlist sync``'s own :meth:`AlertDesk.sync` (the LocalService's desk, on
the database thread): a dry run shows the difference, ``max_withdraw`` guards it, and only a
confirmation applies it, re-checking in the same batch that the difference is still the one
shown.  Audit: the log's own search
(``bxnode audit search``), the witnessing status and the HTML report of ``bxnode audit
report`` (served as a download: it carries its own styles).  Node: ``bxnode doctor``'s
checks (configuration, keys, certificate and registry expiry, policy, each peer's
reachability and clock), the policy digest, the last answer of each peer, and
configuration warnings.  Blocking work runs on the LocalService's worker threads or the
database thread, never on the loop.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.web.app import FORM, OFFICER, Refusal
from node.web.i18n import N_
from node.wire.local import lpb

if TYPE_CHECKING:
    from node.app import NodeRuntime
    from node.local.server import LocalApiServer
    from node.web.app import Console

__all__ = ["NodeFacts", "routes"]

ALERT_FIELDS = ("number", "issuing_state", "doc_type", "loss_type", "family_name",
                "given_names", "patronymic", "dob", "nationality", "sex")
AUDIT_LIMIT = 200


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the admin pages read: the node's runtime and its LocalService."""

    rt: NodeRuntime
    api: LocalApiServer


def routes(app: web.Application, c: Console) -> None:
    r = app.router
    r.add_get("/watchlist", partial(watchlist, c))
    r.add_post("/watchlist/search", partial(watchlist_search, c))
    r.add_post("/watchlist/add", partial(watchlist_add, c))
    r.add_post("/watchlist/withdraw", partial(watchlist_withdraw, c))
    r.add_post("/watchlist/sync", partial(sync_preview, c))
    r.add_post("/watchlist/sync/apply", partial(sync_apply, c))
    r.add_get("/audit", partial(audit, c))
    r.add_post("/audit/search", partial(audit_search, c))
    r.add_get("/audit/report", partial(audit_report, c))
    r.add_post("/audit/prove", partial(audit_prove, c))
    r.add_get("/node", partial(node, c))


def _text(request: web.Request, key: str, limit: int = 200) -> str:
    from node.web.pages import _text as text

    return text(request[FORM], key, limit=limit)


# --- watchlist ------------------------------------------------------------------------------


async def _watchlist_page(c: Console, request: web.Request, *, alerts: Any = None,
                          status: int = 200, flash: str = "") -> web.StreamResponse:
    stats = await c.invoke(request, "AlertStats", lpb.AlertStatsRequest())
    return c.render(request, "watchlist.html", status=status, stats=stats, alerts=alerts,
                    fields=ALERT_FIELDS, flash=flash)


async def watchlist(c: Console, request: web.Request) -> web.StreamResponse:
    return await _watchlist_page(c, request)


async def watchlist_search(c: Console, request: web.Request) -> web.StreamResponse:
    msg = lpb.ListAlertsRequest(kind=_text(request, "kind", 16), state=_text(request, "state", 16),
                                source=_text(request, "source", 64),
                                action=_text(request, "action", 32), limit=200)
    ref = _text(request, "owner_ref", 64)
    if ref:
        shown = await c.invoke(request, "ShowAlert", lpb.ShowAlertRequest(owner_ref=ref))
        return await _watchlist_page(c, request, alerts=[shown.alert])
    found = await c.invoke(request, "ListAlerts", msg)
    return await _watchlist_page(c, request, alerts=list(found.alerts))


async def watchlist_add(c: Console, request: web.Request) -> web.StreamResponse:
    record = lpb.AlertRecord(kind=_text(request, "kind", 16),
                             owner_ref=_text(request, "owner_ref", 64),
                             action=_text(request, "action", 32),
                             expires=_text(request, "expires", 10),
                             **{f: _text(request, f, 100) for f in ALERT_FIELDS})
    msg = lpb.AddAlertRequest(alert=record, source=_text(request, "source", 64))
    msg.reason = _text(request, "reason", 500)  # the officer's words, not a reason code
    await c.invoke(request, "AddAlert", msg)
    return await _watchlist_page(c, request, flash=N_("The alert was added."))


async def watchlist_withdraw(c: Console, request: web.Request) -> web.StreamResponse:
    msg = lpb.WithdrawAlertRequest(owner_ref=_text(request, "owner_ref", 64))
    msg.reason = _text(request, "reason", 500)  # the officer's words, not a reason code
    await c.invoke(request, "WithdrawAlert", msg)
    return await _watchlist_page(c, request, flash=N_("The alert was withdrawn."))


# --- import and sync: the difference first -----------------------------------------------------

#: ``bxnode watchlist sync --max-withdraw``'s default, and the most one form may allow.
DEFAULT_MAX_WITHDRAW = 100
MAX_MAX_WITHDRAW = 1_000_000
PENDING_SYNC_MS = 900_000  # a previewed sync waits this long for its confirmation
MAX_PENDING_SYNCS = 32     # previews kept (in the database), oldest dropped
_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


@dataclass(frozen=True, slots=True)
class PendingSync:
    """A previewed sync waiting for the same officer's confirmation."""

    officer: str
    data: bytes
    name: str          # the upload's name, reduced to [A-Za-z0-9._-]
    fmt: str
    source: str
    max_withdraw: int
    note: str          # the officer's words for the change (AlertDesk.sync's reason)
    plan: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], int]
    created_ms: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def reason(self) -> str:
        """Why, in the officer's words, or what the CLI would say (free text, not a code)."""
        return self.note or f"sync of {self.source} from {self.name} (console)"


def _plan_key(plan: Any) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], int]:
    return tuple(plan.added), tuple(plan.changed), tuple(plan.withdrawn), plan.unchanged


def _alert_ops(c: Console) -> Any:
    ops = c.api.watchlist
    if ops is None:  # pragma: no cover - build_local_api always gives the LocalService one
        raise Refusal("INTERNAL", "internal_error", "this node's LocalService has no watchlist")
    return ops


def _run_sync(c: Console, p: PendingSync, *, dry_run: bool) -> Any:
    """``AlertDesk.sync`` over the upload (written to a private temporary file)."""
    desk = _alert_ops(c).desk
    with tempfile.TemporaryDirectory(prefix="bxnode-console-sync-") as d:
        path = Path(d) / f"upload.{p.fmt}"
        path.write_bytes(p.data)
        return desk.sync(path, source=p.source, operator=p.officer,
                         max_withdraw=p.max_withdraw, dry_run=dry_run, fmt=p.fmt,
                         reason=p.reason)


def _sync_facts(facts: dict[str, Any], p: PendingSync, *, dry_run: bool) -> None:
    facts.update(dry_run=dry_run, source=p.source, max_withdraw=p.max_withdraw,
                 file_sha256=p.digest, file_bytes=len(p.data))


async def _sync_page(c: Console, request: web.Request, *, status: int = 200, **ctx: Any
                     ) -> web.StreamResponse:
    ctx.setdefault("plan", None)
    ctx.setdefault("pending", None)
    ctx.setdefault("token", "")
    ctx.setdefault("errors", [])
    ctx.setdefault("applied", False)
    return c.render(request, "watchlist_sync.html", status=status, **ctx)


async def _refused_page(c: Console, request: web.Request, r: Refusal, **ctx: Any
                        ) -> web.StreamResponse:
    from node.web.app import explain, http_status

    errors = getattr(r.__cause__, "errors", None) or []
    return await _sync_page(c, request, status=http_status(r.status), refusal=r,
                      reason=r.reason, explain=c.gettext(request, explain(r.reason)),
                      errors=[(n, m) for n, m in errors][:50], **ctx)


def _sync_record(p: PendingSync) -> dict[str, Any]:
    return {"officer": p.officer, "name": p.name, "fmt": p.fmt, "source": p.source,
            "max_withdraw": p.max_withdraw, "note": p.note,
            "plan": [list(p.plan[0]), list(p.plan[1]), list(p.plan[2]), p.plan[3]]}


def _pending_of(record: dict[str, Any], data: bytes, created_ms: int) -> PendingSync:
    plan = record["plan"]
    return PendingSync(officer=str(record["officer"]), data=data, name=str(record["name"]),
                       fmt=str(record["fmt"]), source=str(record["source"]),
                       max_withdraw=int(record["max_withdraw"]), note=str(record["note"]),
                       plan=(tuple(plan[0]), tuple(plan[1]), tuple(plan[2]), int(plan[3])),
                       created_ms=created_ms)


async def _keep_pending(c: Console, p: PendingSync) -> str:
    """Keep a previewed sync in the node's database (any replica may get its confirmation);
    the token naming it (only its SHA-256 is stored)."""
    token, tables = secrets.token_urlsafe(24), c.sessions.tables

    def step() -> None:
        tables.prune_syncs(before_ms=p.created_ms - PENDING_SYNC_MS, keep=MAX_PENDING_SYNCS)
        tables.put_sync(_token_key(token), _sync_record(p), p.data, created_ms=p.created_ms)

    await c.ops.writer.run_in_batch(step)
    return token


async def _pending(c: Console, token: str) -> PendingSync | None:
    """The previewed sync ``token`` names, if it is still waiting."""
    if not token:
        return None
    key, tables = _token_key(token), c.sessions.tables
    got = await c.ops.writer.call(lambda: tables.sync(key))
    if got is None or c.clock_ms() - got[2] > PENDING_SYNC_MS:
        return None
    return _pending_of(*got)


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def sync_preview(c: Console, request: web.Request) -> web.StreamResponse:
    from node.web.pages import _upload

    officer = request[OFFICER].identity.name
    form = request[FORM]
    try:
        source = _text(request, "source", 64)
        note = _text(request, "reason", 500)
        raw = _text(request, "max_withdraw", 8) or str(DEFAULT_MAX_WITHDRAW)
        if not raw.isdigit() or int(raw) > MAX_MAX_WITHDRAW:
            raise Refusal("INVALID_ARGUMENT", "invalid_argument",
                          f"max_withdraw is a number 0..{MAX_MAX_WITHDRAW}")
        data = _upload(form, "file")
        field = form.get("file")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", str(getattr(field, "filename", "")))[-64:]
        fmt = _FORMATS.get(Path(name).suffix.lower()) or _text(request, "format", 8)
        if fmt not in ("csv", "jsonl"):
            raise Refusal("INVALID_ARGUMENT", "bad_upload",
                          "the file is CSV (.csv) or JSON Lines (.jsonl)")
    except Refusal as r:  # audited like every refused action, then shown on the page
        async def refuse(facts: dict[str, Any], r: Refusal = r) -> Any:
            facts["dry_run"] = True
            raise r

        try:
            await c.call(request, "SyncAlerts", refuse)
        except Refusal as again:
            return await _refused_page(c, request, again)
        raise AssertionError("unreachable") from None  # pragma: no cover
    pending = PendingSync(officer=officer, data=data, name=name or "upload", fmt=fmt,
                          source=source, max_withdraw=int(raw), note=note,
                          plan=((), (), (), 0), created_ms=c.clock_ms())

    async def run(facts: dict[str, Any]) -> Any:
        _sync_facts(facts, pending, dry_run=True)
        plan = await _alert_ops(c).writer.run_in_batch(
            lambda: _run_sync(c, pending, dry_run=True))
        facts.update(plan.counts())
        return plan

    try:
        plan = await c.call(request, "SyncAlerts", run)
    except Refusal as r:
        return await _refused_page(c, request, r, pending=pending)
    token = ""
    if plan.added or plan.changed or plan.withdrawn:
        token = await _keep_pending(c, dataclasses.replace(pending, plan=_plan_key(plan)))
    return await _sync_page(c, request, plan=plan, pending=pending, token=token)


async def sync_apply(c: Console, request: web.Request) -> web.StreamResponse:
    officer = request[OFFICER].identity.name
    token = _text(request, "sync_token", 64)
    pending = await _pending(c, token)

    async def run(facts: dict[str, Any]) -> Any:
        if pending is None or pending.officer != officer:
            facts["dry_run"] = False
            raise Refusal("FAILED_PRECONDITION", "sync_not_pending",
                          "no previewed sync of yours waits for confirmation (it may have "
                          "been applied already or waited too long); upload the file again")
        _sync_facts(facts, pending, dry_run=False)
        key, tables = _token_key(token), c.sessions.tables

        def check_then_apply() -> Any:  # one batch on the database thread: nothing between
            if tables.drop_sync(key) != 1:  # one confirmation, on whichever replica
                raise Refusal("FAILED_PRECONDITION", "sync_not_pending",
                              "this previewed sync was applied already")
            again = _run_sync(c, pending, dry_run=True)
            if _plan_key(again) != pending.plan:
                raise Refusal("FAILED_PRECONDITION", "sync_plan_changed",
                              "the watchlist changed since the difference was shown; "
                              "nothing was applied: preview the file again")
            return _run_sync(c, pending, dry_run=False)

        plan = await _alert_ops(c).writer.run_in_batch(check_then_apply)
        facts.update(plan.counts())
        return plan

    try:
        plan = await c.call(request, "SyncAlerts", run)
    except Refusal as r:
        return await _refused_page(c, request, r, pending=pending)
    return await _sync_page(c, request, plan=plan, pending=pending, applied=True,
                            flash=N_("The sync was applied."))


# --- audit ------------------------------------------------------------------------------------


def _witness_status(c: Console) -> Any:
    from node.audit.witnessing import WitnessDesk

    rt = c.extras.rt
    log = c.ops.audit_log
    head = log.latest_head()
    desk = WitnessDesk(store=rt.store, node_id=rt.cfg.node_id, signing_key=rt.signing_key,
                       directory=rt.directory)
    return head, desk.status(our_size=head.size if head else 0)


async def _audit_page(c: Console, request: web.Request, entries: list[dict[str, Any]],
                      query: dict[str, str]) -> web.StreamResponse:
    head, status = await c.ops.writer.call(lambda: _witness_status(c))
    return c.render(request, "audit.html", entries=entries, query=query, head=head,
                    witness=status, quorum=c.extras.rt.cfg.audit.witness_quorum)


async def _search(c: Console, request: web.Request, query: dict[str, str]
                  ) -> list[dict[str, Any]]:
    from node.audit.log import AuditQuery

    q = AuditQuery(event=query.get("event") or None, case_ref=query.get("case_ref") or None,
                   operator=query.get("operator") or None, limit=AUDIT_LIMIT)

    async def run(facts: dict[str, Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await c.ops.writer.call(
            lambda: list(c.ops.audit_log.search(q)))
        facts.update(filters=sorted(k for k, v in query.items() if v), found=len(rows))
        return rows[-AUDIT_LIMIT:][::-1]

    rows: list[dict[str, Any]] = await c.call(request, "ViewAudit", run)
    return rows


async def audit(c: Console, request: web.Request) -> web.StreamResponse:
    return await _audit_page(c, request, await _search(c, request, {}), {})


async def audit_search(c: Console, request: web.Request) -> web.StreamResponse:
    query = {k: _text(request, k, 64) for k in ("event", "case_ref", "operator")}
    return await _audit_page(c, request, await _search(c, request, query), query)


async def audit_report(c: Console, request: web.Request) -> web.StreamResponse:
    from node.audit.report import ReportInput, render_report

    rt = c.extras.rt
    to_ms = c.ops.clock_ms()
    from_ms = to_ms - 30 * 86_400_000

    def build() -> str:
        log = c.ops.audit_log
        head, status = _witness_status(c)
        return render_report(ReportInput(
            node_id=rt.cfg.node_id, from_ms=from_ms, to_ms=to_ms,
            entries=log.bodies(from_ms=from_ms, to_ms=to_ms), verified=False,
            verify_problem="not verified by the console: run bxnode audit verify",
            checkpoint_size=head.size if head else 0,
            cosignatures=head.cosignatures if head else (), quorum=rt.cfg.audit.witness_quorum,
            cosigned_by=status.cosigned_by, witnessed_logs=status.witnessed_logs,
            witness_alert=status.alert, evidence=status.evidence, generated_ms=to_ms))

    async def run(facts: dict[str, Any]) -> str:
        facts.update(from_ms=from_ms, to_ms=to_ms)
        html: str = await c.ops.writer.call(build)
        return html

    html = await c.call(request, "ViewAudit", run)
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers={
        "Content-Disposition": 'attachment; filename="audit-report.html"'})


async def audit_prove(c: Console, request: web.Request) -> web.StreamResponse:
    """``bxnode audit prove --seq N`` as a download: the entry, its inclusion proof, the
    checkpoint and its cosignatures, for an auditor to check offline (``bxnode audit
    verify-bundle``)."""
    from node.audit.bundle import make_bundle

    raw = _text(request, "seq", 12)
    rt = c.extras.rt

    async def run(facts: dict[str, Any]) -> bytes:
        if not raw.isdigit() or not 0 < int(raw) < 2**63:
            raise Refusal("INVALID_ARGUMENT", "invalid_argument",
                          "the entry's number is a whole number from 1")
        facts["entry_seq"] = int(raw)  # "seq" is the audit entry's own number
        bundle: bytes = await c.ops.writer.call(
            lambda: make_bundle(c.ops.audit_log, int(raw), node_id=rt.cfg.node_id))
        facts["bundle_sha256"] = hashlib.sha256(bundle).hexdigest()
        return bundle

    bundle = await c.call(request, "AuditProof", run)
    return web.Response(body=bundle, content_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="audit-proof-{int(raw)}.json"'})


# --- node -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuotaUse:
    """One agreement under which a neighbour asks this node, and what it used today."""

    requester: str
    valid_from: str
    valid_until: str
    in_force: bool
    daily_quota: int | None
    used_today: int

    @property
    def percent(self) -> int | None:
        if not self.daily_quota:
            return None
        return min(100, self.used_today * 100 // self.daily_quota)


def _agreements(c: Console) -> list[dict[str, Any]]:
    """This node's agreements as responder, from the policy directory's data."""
    from node.policy._sources import read_policy_dir

    data = read_policy_dir(c.extras.rt.cfg.policy_dir).data
    found = data.get("bxnode", {}).get("agreements", [])
    me = c.extras.rt.cfg.node_id
    return [a for a in found if isinstance(a, dict) and a.get("responder") == me
            and isinstance(a.get("requester"), str)] if isinstance(found, list) else []


def _quotas(c: Console, agreements: list[dict[str, Any]], today: str) -> list[QuotaUse]:
    """The usage ledger (the figure step 8 checks a quota against) per requester, today."""
    from node.store.exchange import SqlUsageLedger

    usage = SqlUsageLedger(c.extras.rt.store)
    out = []
    for a in sorted(agreements, key=lambda a: (a["requester"], str(a.get("valid_from")))):
        quota = a.get("daily_quota")
        start, until = str(a.get("valid_from", "")), str(a.get("valid_until", ""))
        out.append(QuotaUse(
            requester=a["requester"], valid_from=start, valid_until=until,
            in_force=(not start or start <= today) and (not until or today <= until),
            daily_quota=quota if isinstance(quota, int) and not isinstance(quota, bool)
            else None, used_today=usage.items_today(a["requester"], today)))
    return out


def _last_answers(c: Console) -> dict[str, dict[str, Any]]:
    from node.audit.log import AuditQuery

    out: dict[str, dict[str, Any]] = {}
    for e in c.ops.audit_log.search(AuditQuery(event="lookup_sent", limit=500)):
        peer = str(e.get("peer", ""))
        if peer:
            out[peer] = {"time_ms": e.get("time_ms"), "outcome": e.get("outcome", ""),
                         "why": e.get("reason", "")}
    return out


def _warnings(c: Console) -> list[str]:
    from node.federation.pki import is_dev_material

    cfg = c.extras.rt.cfg
    out = []
    if cfg.dev_mode:
        out.append(N_("dev_mode is on: development settings are accepted."))
    if any(is_dev_material(p) for p in cfg.secret_paths()):
        out.append(N_("Development keys are in use: never in production."))
    return out


async def node(c: Console, request: web.Request) -> web.StreamResponse:
    from node.cli.doctor import run_checks

    rt = c.extras.rt

    async def run(facts: dict[str, Any]) -> dict[str, Any]:
        from node.web.pages import today

        checks = await c.ops.in_pool(lambda: list(run_checks(rt.cfg.root, peers=True)))
        answers = await c.ops.writer.call(lambda: _last_answers(c))
        agreements = await c.ops.in_pool(lambda: _agreements(c))
        day = today(c.ops.clock_ms())  # the usage ledger's day: UTC, on the node's clock
        quotas = await c.ops.writer.call(lambda: _quotas(c, agreements, day))
        facts["checks"] = {ch.status: sum(1 for x in checks if x.status == ch.status)
                           for ch in checks}
        # the digest of the policy that decides, as every audit record names it
        return {"checks": checks, "answers": answers, "digest": rt.policy.digest,
                "quotas": quotas, "quota_day": day}

    got = await c.call(request, "ViewNode", run)
    registry = rt.registry
    reg = None
    if registry is not None:
        cur = rt.directory
        reg = {"version": getattr(cur, "version", None), "expires_ms": getattr(
            cur, "expires_ms", None)}
    peers = sorted(m.node_id for m in rt.directory.members() if m.node_id != rt.cfg.node_id)
    from node.web.doctor_text import translate

    return c.render(request, "node.html", cfg=rt.cfg, warnings=_warnings(c), peers=peers,
                    registry=reg, doctor=lambda m: translate(m, partial(c.gettext, request)),
                    **got)
