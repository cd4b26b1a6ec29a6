"""The watchlist manager's, the auditor's and the administrator's pages.

Watchlist: the LocalService's alert methods (AlertStats, ListAlerts, AddAlert,
WithdrawAlert) through :meth:`Console.invoke`.  Audit: the log's own search
(``bxnode audit search``), the witnessing status and the HTML report of ``bxnode audit
report`` (served as a download: it carries its own styles).  Node: ``bxnode doctor``'s
checks (configuration, keys, certificate and registry expiry, policy, each peer's
reachability and clock), the policy digest, the last answer of each peer, and
configuration warnings.  Blocking work runs on the LocalService's worker threads or the
database thread, never on the loop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.web.app import FORM
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
    r.add_get("/audit", partial(audit, c))
    r.add_post("/audit/search", partial(audit_search, c))
    r.add_get("/audit/report", partial(audit_report, c))
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


# --- node -------------------------------------------------------------------------------------


def _policy_digest(c: Console) -> str:
    h = hashlib.sha256()
    root = c.extras.rt.cfg.policy_dir
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in (".rego", ".json"):
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


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
        checks = await c.ops.in_pool(lambda: list(run_checks(rt.cfg.root, peers=True)))
        answers = await c.ops.writer.call(lambda: _last_answers(c))
        digest = await c.ops.in_pool(lambda: _policy_digest(c))
        facts["checks"] = {ch.status: sum(1 for x in checks if x.status == ch.status)
                           for ch in checks}
        return {"checks": checks, "answers": answers, "digest": digest}

    got = await c.call(request, "ViewNode", run)
    registry = rt.registry
    reg = None
    if registry is not None:
        cur = rt.directory
        reg = {"version": getattr(cur, "version", None), "expires_ms": getattr(
            cur, "expires_ms", None)}
    peers = sorted(m.node_id for m in rt.directory.members() if m.node_id != rt.cfg.node_id)
    return c.render(request, "node.html", cfg=rt.cfg, warnings=_warnings(c), peers=peers,
                    registry=reg, **got)
