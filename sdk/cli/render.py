"""Rich renderings of jobs, events and safety reports, shared by the CLI and the demo."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Group
from rich.table import Column, Table
from rich.text import Text

from sdk.cli._common import num, pct
from sdk.precision import describe as describe_precision
from sdk.types import FineTuningJob, JobEvent, SafetyReport

STATUS_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def jobs_table(jobs: list[FineTuningJob]) -> Table:
    table = Table(Column("id", no_wrap=True), "status", "stage", "model", "method",
                  Column("fine-tuned model", no_wrap=True), "created")
    for j in jobs:
        table.add_row(j.id, Text(j.status, STATUS_STYLE.get(j.status, "")), j.stage or "-",
                      j.model, j.method, j.fine_tuned_model or "-", when(j.created_at))
    return table


def job_table(job: FineTuningJob) -> Table:
    table = Table(show_header=False, title=job.id)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("status", Text(job.status, STATUS_STYLE.get(job.status, ""))),
        ("stage", job.stage or "-"),
        ("model", job.model),
        ("method", job.method),
        ("training file", job.training_file),
        ("validation file", job.validation_file or "-"),
        ("hyperparameters", ", ".join(
            f"{k}={v}" for k, v in job.hyperparameters.model_dump().items() if v is not None)),
        ("lock", f"{job.lock.base_model} v{job.lock.version}" if job.lock else "-"),
        ("fine-tuned model", job.fine_tuned_model or "-"),
        ("created", when(job.created_at)),
        ("finished", when(job.finished_at)),
    ]
    if job.progress:
        p = job.progress
        rows.append(("progress", f"{p.stage} step {p.step}/{p.total_steps or '?'}"
                                 + (f" loss {p.loss:.4f}" if p.loss is not None else "")))
    if job.error:
        rows.append(("error", Text(f"{job.error.code}: {job.error.message}", "red")))
    for k, v in rows:
        table.add_row(k, v)
    return table


def events_table(events: list[JobEvent]) -> Table:
    table = Table("time", "level", "message")
    style = {"warn": "yellow", "error": "red"}
    for e in events:
        table.add_row(when(e.created_at), Text(e.level, style.get(e.level, "")), e.message)
    return table


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report_view(report: SafetyReport) -> Group:
    """The safety report: harmful rate, over-refusal and utility of each model, and the decision."""
    table = Table("model", "harmful rate", "over-refusal", "utility", "validation loss",
                  title=f"Safety report for {report.job_id} (held-out prompts)")
    for name, ev in (("base", report.base), ("fine-tuned, no lock", report.unlocked),
                     (f"fine-tuned + lock (alpha {num(report.alpha, 'g')})", report.relocked)):
        if ev is None:
            table.add_row(name, "not measured", "", "", "")
        else:
            table.add_row(name, pct(ev.harmful_rate), pct(ev.over_refusal_rate), num(ev.utility),
                          num(ev.validation_loss))
    parts: list = [table]
    if report.repair is not None:  # disclosed first: every figure is the repaired attempt's
        reasons = "; ".join(report.repair.first_attempt_reasons)
        parts.append(Text(f"repaired: {report.repair.describe()} First attempt rejected: {reasons}."))
    precision = describe_precision(report.relocked or report.unlocked)
    if precision:
        parts.append(Text(("locked model: " if report.relocked else "unlocked model: ") + precision))
    if report.alpha_curve:
        curve = Table("alpha", "harmful rate", "utility", "over-refusal", title="alpha search (selection prompts)")
        steered = {p.position for p in report.alpha_curve if p.position}
        for p in report.alpha_curve:  # the position only where relock searched more than one
            where = f" ({p.position})" if len(steered) > 1 and p.position else ""
            curve.add_row(num(p.alpha, "g") + where, pct(p.harmful_rate), num(p.utility),
                          pct(p.over_refusal))
        parts.append(curve)
    if report.samples:
        samples = Table("prompt", "fine-tuned, no lock", "fine-tuned + lock",
                        title="sample answers (held-out prompts)")
        for s in report.samples:  # Text: a model's answer is never read as rich markup
            samples.add_row(Text(_short(s.prompt)), Text(f"{_short(s.unlocked)} ({s.unlocked_verdict})"),
                            Text("not measured" if s.relocked is None
                                 else f"{_short(s.relocked)} ({s.relocked_verdict})"))
        parts.append(samples)
    if report.transfer is not None:
        t = report.transfer
        parts.append(Text(f"lock transfer: condition AUC {num(t.condition_auc)}, fires on "
                          f"{pct(t.condition_true_positive_rate)} of harmful / {pct(t.condition_false_positive_rate)} "
                          f"of benign calibration prompts, direction cosine {num(t.condition_cosine)}"))
    if report.veto is not None:
        v = report.veto
        where = "none added" if v.layer is None else f"at layer {v.layer}"
        parts.append(Text(f"task veto {where}: the condition fires on {v.tasks_fired} of {v.num_tasks} task "
                          f"prompts, {v.tasks_fired_after} with the veto"))
    colour = "green" if report.decision == "published" else "red"
    parts.append(Text.assemble("decision: ", (report.decision, f"bold {colour}")))
    parts.extend(Text(f"  - {r}") for r in report.reasons)
    return Group(*parts)
