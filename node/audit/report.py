"""``bxnode audit report``: one self-contained HTML file an auditor opens in a browser.

No scripts, no external assets: charts are inline SVG, styles inline.  Sections: queries
per requesting peer and per purpose over time (per day), refusals with their reasons, hit
rates per peer, follow-ups and their delays, witnessing status.  Built from entry bodies
(erased entries count only as erased).  Sans-I/O: data in, HTML text out.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ReportInput", "render_report"]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")


@dataclass
class ReportInput:
    node_id: str
    from_ms: int
    to_ms: int
    entries: Iterable[dict[str, Any]]
    verified: bool | None = None
    verify_problem: str = ""
    checkpoint_size: int = 0
    cosignatures: Sequence[str] = ()
    quorum: int = 1
    cosigned_by: Mapping[str, int] = field(default_factory=dict)
    witnessed_logs: Mapping[str, int] = field(default_factory=dict)
    witness_alert: bool = False
    evidence: int = 0
    generated_ms: int = 0


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _e(v: object) -> str:
    return html.escape(str(v), quote=True)


def _chart(chart_id: str, title: str, days: list[str],
           series: Mapping[str, Mapping[str, int]]) -> str:
    """A grouped bar chart (inline SVG): one bar per series in each period of ``days``."""
    w, h, left, bottom, top = 720, 260, 50, 40, 20
    peak = max([1, *(v for s in series.values() for v in s.values())])
    names = sorted(series)
    slot = (w - left - 20) / max(1, len(days))
    bar = min(40.0, max(1.0, slot * 0.8 / max(1, len(names))))

    def y(v: int) -> float:
        return top + (h - top - bottom) * (1 - v / peak)

    parts = [f'<svg id="{_e(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
             f'width="{w}" height="{h}" role="img" aria-label="{_e(title)}">',
             f'<line x1="{left}" y1="{y(0)}" x2="{w - 10}" y2="{y(0)}" stroke="#444"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{y(0)}" stroke="#444"/>',
             f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" font-size="11">{peak}</text>',
             f'<text x="{left - 6}" y="{y(0)}" text-anchor="end" font-size="11">0</text>']
    step = max(1, len(days) // 8)
    for i, d in enumerate(days):
        if i % step == 0 or i == len(days) - 1:
            parts.append(f'<text x="{left + slot * (i + 0.5):.1f}" y="{h - bottom + 16}" '
                         f'text-anchor="middle" font-size="10">{_e(d[5:])}</text>')
    for k, name in enumerate(names):
        colour = _COLOURS[k % len(_COLOURS)]
        values = series[name]
        parts.append(f'<g class="series" data-series="{_e(name)}" fill="{colour}">')
        for i, d in enumerate(days):
            v = values.get(d, 0)
            x = left + slot * i + slot * 0.1 + bar * k
            parts.append(f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{bar:.1f}" '
                         f'height="{y(0) - y(v):.1f}"><title>{_e(name)} {_e(d)}: {v}</title>'
                         "</rect>")
        parts.append("</g>")
    parts.append("</svg>")
    legend = " ".join(
        f'<span class="key"><span class="swatch" style="background:'
        f'{_COLOURS[k % len(_COLOURS)]}"></span>{_e(name)}</span>'
        for k, name in enumerate(names))
    return f'<figure><figcaption>{_e(title)}</figcaption>{"".join(parts)}' \
           f'<div class="legend">{legend}</div></figure>'


def _bucket_key(day: str, unit: str) -> str:
    d = dt.date.fromisoformat(day)
    if unit == "week":
        return (d - dt.timedelta(days=d.weekday())).isoformat()  # the week's Monday
    if unit == "month":
        return d.replace(day=1).isoformat()
    return day


def _buckets(r: ReportInput, *series_sets: Mapping[str, Mapping[str, int]]) -> tuple[Any, ...]:
    """Choose days, weeks or months so a chart has at most ~92 points over the span that
    holds data (the period, clipped to the first and last entry), and re-bucket the series."""
    seen = sorted({d for ss in series_sets for s in ss.values() for d in s})
    start = dt.date.fromisoformat(_day(r.from_ms))
    end = dt.date.fromisoformat(_day(r.to_ms))
    if seen:
        start = max(start, dt.date.fromisoformat(seen[0]))
        end = min(end, dt.date.fromisoformat(seen[-1]))
    span = max(1, (end - start).days + 1)
    unit = "day" if span <= 92 else "week" if span <= 730 else "month"
    keys: list[str] = []
    d = start
    while d <= end:
        k = _bucket_key(d.isoformat(), unit)
        if not keys or keys[-1] != k:
            keys.append(k)
        d += dt.timedelta(days=1)
    out: list[Any] = [unit, keys or [start.isoformat()]]
    for ss in series_sets:
        merged: dict[str, Counter[str]] = defaultdict(Counter)
        for name, values in ss.items():
            for day, n in values.items():
                merged[name][_bucket_key(day, unit)] += n
        out.append(merged)
    return tuple(out)


def _table(table_id: str, head: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    if not body:
        body = f'<tr><td colspan="{len(head)}">none</td></tr>'
    return (f'<table id="{_e(table_id)}"><thead><tr>'
            + "".join(f"<th>{_e(c)}</th>" for c in head) + f"</tr></thead><tbody>{body}"
            "</tbody></table>")


def render_report(r: ReportInput) -> str:
    per_peer: dict[str, Counter[str]] = defaultdict(Counter)
    per_purpose: dict[str, Counter[str]] = defaultdict(Counter)
    refusals: Counter[tuple[str, str]] = Counter()
    hits: Counter[str] = Counter()
    items: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    followups: dict[str, list[int]] = defaultdict(list)
    followup_events: Counter[str] = Counter()
    erased = total = sent = 0
    for e in r.entries:
        total += 1
        if e.get("erased"):
            erased += 1
            continue
        event = str(e.get("event", ""))
        day = _day(int(e["time_ms"]))
        if event.startswith("followup"):
            followup_events[event] += 1
            key = str(e.get("followup_id") or e.get("case_ref") or "")
            if key:
                followups[key].append(int(e["time_ms"]))
        if event.endswith("_sent"):
            sent += 1
            continue
        peer = e.get("requester")
        if not peer or event in ("watchlist_import", "auditor_access"):
            continue
        peer = str(peer)
        per_peer[peer][day] += 1
        per_purpose[str(e.get("purpose") or "(unverified)")][day] += 1
        outcome = e.get("outcome")
        if outcome in ("denied", "rejected"):
            reasons = e.get("reasons") or [e.get("reason", "")]
            for reason in reasons:
                refusals[(str(outcome), str(reason))] += 1
        elif outcome == "answered":
            answered[peer] += 1
        hits[peer] += int(e.get("hits") or 0)
        items[peer] += int(e.get("items") or 0)
    unit, days, per_peer, per_purpose = _buckets(r, per_peer, per_purpose)
    delays = sorted((max(ts) - min(ts)) / 60_000 for ts in followups.values() if len(ts) > 1)
    witnessed = len(r.cosignatures) >= r.quorum
    status = ("verified" if r.verified else f"NOT INTACT: {r.verify_problem}"
              if r.verified is False else "not checked")
    sections = [
        f"<h1>Audit report: {_e(r.node_id)}</h1>",
        f'<p class="meta">Period {_e(_iso(r.from_ms))} to {_e(_iso(r.to_ms))}; generated '
        f"{_e(_iso(r.generated_ms))}. {total} entries in the period ({erased} erased after "
        f"their retention period, {sent} requests this node sent).</p>",
        f'<p id="integrity" class="{"ok" if r.verified else "bad"}">Log integrity: '
        f"{_e(status)}; latest signed checkpoint covers {r.checkpoint_size} entries.</p>",
        "<h2>Queries per requesting peer</h2>",
        _chart("chart-peers", f"Queries received per {unit}, by requesting node", days,
               per_peer),
        "<h2>Queries per purpose</h2>",
        _chart("chart-purposes", f"Queries received per {unit}, by purpose", days, per_purpose),
        "<h2>Refusals and their reasons</h2>",
        _table("refusals", ("outcome", "reason", "count"),
               [(o, reason, n) for (o, reason), n in refusals.most_common()]),
        "<h2>Hit rates</h2>",
        _table("hit-rates", ("requesting node", "answered", "items", "hits", "hit rate"),
               [(p, answered[p], items[p], hits[p],
                 f"{hits[p] / items[p]:.1%}" if items[p] else "-") for p in sorted(per_peer)]),
        "<h2>Follow-ups and their delays</h2>",
        _table("followups", ("event", "count"), sorted(followup_events.items())),
        f"<p>Follow-ups with more than one step: {len(delays)}"
        + (f"; delay from first to last step: median {delays[len(delays) // 2]:.0f} min, "
           f"longest {delays[-1]:.0f} min" if delays else "") + ".</p>",
        "<h2>Witnessing</h2>",
        f'<p id="witnessing" class="{"ok" if witnessed and not r.witness_alert else "bad"}">'
        f"Latest checkpoint (size {r.checkpoint_size}): {len(r.cosignatures)} cosignature(s), "
        f"quorum {r.quorum}: {'witnessed' if witnessed else 'NOT witnessed'}. "
        + (f"ALERT: {r.evidence} inconsistent checkpoint(s) from peers kept as evidence."
           if r.witness_alert else "No inconsistent checkpoint seen from any peer.") + "</p>",
        _table("cosigned-by", ("witness", "last size cosigned of this log"),
               sorted(r.cosigned_by.items())),
        _table("witnessed-logs", ("peer log", "last size this node cosigned"),
               sorted(r.witnessed_logs.items())),
    ]
    style = ("body{font-family:sans-serif;margin:2em;max-width:60em;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;"
             "padding:.2em .6em;text-align:left}.ok{color:#176b1c}.bad{color:#a40000;"
             "font-weight:bold}.legend .key{margin-right:1em}.swatch{display:inline-block;"
             "width:.8em;height:.8em;margin-right:.3em}figcaption{font-weight:bold}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>bxnode audit report {_e(r.node_id)}</title><style>{style}</style>"
            "</head><body>" + "\n".join(sections) + "</body></html>\n")
