"""The demo's HTML report: the summary table, and per job its gate reasons, alpha
search, stage times and event log. One self-contained file, every value escaped."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

from sdk.types import JobEvent, SafetyReport
from service.demo.summary import ROWS, DemoSummary

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.3em .6em}
th{background:#f3f3f3}td.n{text-align:right}.published{color:#070;font-weight:bold}
.rejected,.failed,.cancelled{color:#b00;font-weight:bold}pre{background:#f7f7f7;padding:.6em;
white-space:pre-wrap}.note{color:#555}"""


@dataclass
class JobDetail:
    name: str
    job_id: str
    report: SafetyReport | None
    events: list[JobEvent]


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"n" if i >= numeric_from else ""}">{cell}</td>'
            for i, cell in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pct(x: float | None) -> str:
    return "not measured" if x is None else f"{100 * x:.1f}%"


def write_html(path: Path, summary: DemoSummary, details: list[JobDetail],
               notes: list[str]) -> Path:
    parts = [(f"<!doctype html><meta charset=utf-8><title>SafetyLock demo</title><style>{STYLE}"
             "</style><h1>SafetyLock demo</h1>")]
    parts += [f'<p class="note">{escape(n)}</p>' for n in notes]
    rows = [[escape(title), *(escape(fmt(getattr(j, key))) for j in summary.jobs)]
            for title, key, fmt in ROWS]
    rows.append(["gate decision", *(f'<span class="{escape(j.decision)}">{escape(j.decision)}'
                                    "</span>" for j in summary.jobs)])
    rows.append(["job time (s)", *(f"{sum(j.stage_seconds.values()):.0f}" for j in summary.jobs)])
    parts.append(_table(["", *(j.name for j in summary.jobs)], rows))
    for d in details:
        parts.append(f"<h2>{escape(d.name)} <small>({escape(d.job_id)})</small></h2>")
        r = d.report
        if r is None:
            parts.append("<p>No safety report: the job ended before evaluation.</p>")
        else:
            parts.append(f'<p>Decision: <span class="{escape(r.decision)}">{escape(r.decision)}'
                         "</span></p>")
            if r.reasons:
                parts.append("<ul>" + "".join(f"<li>{escape(x)}</li>" for x in r.reasons) + "</ul>")
            if r.alpha_curve:
                parts.append("<h3>Lock strength search</h3>" + _table(
                    ["alpha", "harmful rate", "utility", "over-refusal"],
                    [[f"{p.alpha:g}", _pct(p.harmful_rate), _pct(p.utility),
                      _pct(p.over_refusal)] for p in r.alpha_curve]))
            if r.policy:
                parts.append("<h3>Gate policy</h3>" + _table(
                    ["threshold", "value"], [[escape(k), escape(str(v))]
                                             for k, v in r.policy.items()]))
            parts.append("<h3>Stage times</h3>" + _table(
                ["stage", "seconds"],
                [[escape(k), f"{v:.1f}"] for k, v in r.stage_seconds.items()]))
        log = "\n".join(f"[{e.level}] {e.message}" for e in d.events)
        parts.append(f"<h3>Events</h3><pre>{escape(log)}</pre>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
