"""The demo's HTML report: the summary table, and per job its safety report as the API
serves it (`service.reports.html`: decision, figures, the alpha curve and the harmful
rates per category as inline SVG plots, gate policy, stage times) and its event log.
One self-contained file, every value escaped."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

from sdk.types import JobEvent, SafetyReport
from service.demo.summary import ROWS, DemoSummary
from service.reports.html import decision, page, report_sections, table


@dataclass
class JobDetail:
    name: str
    job_id: str
    report: SafetyReport | None
    events: list[JobEvent]


def write_html(path: Path, summary: DemoSummary, details: list[JobDetail],
               notes: list[str]) -> Path:
    parts = ["<h1>SafetyLock demo</h1>"]
    parts += [f'<p class="note">{escape(n)}</p>' for n in notes]
    rows = [[title, *(fmt(getattr(j, key)) for j in summary.jobs)] for title, key, fmt in ROWS]
    rows.append(["gate decision", *(decision(j.decision) for j in summary.jobs)])
    rows.append(["job time (s)", *(f"{sum(j.stage_seconds.values()):.0f}" for j in summary.jobs)])
    parts.append(table(["", *(j.name for j in summary.jobs)], rows))
    for d in details:
        parts.append(f"<h2>{escape(d.name)} <small>({escape(d.job_id)})</small></h2>")
        if d.report is None:
            parts.append("<p>No safety report: the job ended before evaluation.</p>")
        else:
            parts += report_sections(d.report, id_prefix=d.name)
        log = "\n".join(f"[{e.level}] {e.message}" for e in d.events)
        parts.append(f"<h3>Events</h3><pre>{escape(log)}</pre>")
    path.write_text(page("SafetyLock demo", parts), encoding="utf-8")
    return path
