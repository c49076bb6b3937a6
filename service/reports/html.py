"""A job's safety report as HTML: what each model measured, the gate's decision and
reasons, how the base's lock read the fine-tuned model (transfer check, task veto), the
alpha curve and the harmful rates per category (inline SVG, the numbers in a table beside
each plot), sample answers before and after the lock, the gate policy and the stage times.

`report_page` is the page `GET /v1/fine_tuning/jobs/{id}/report.html` serves;
`report_sections` is its body, which the demo's report embeds once per job. Every value
is escaped; the page has no script and fetches nothing, so it renders under
`CONTENT_SECURITY_POLICY`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from sdk.precision import describe as describe_precision
from sdk.types import Eval, Repair, SafetyReport
from service.pipeline.task_veto import describe as describe_veto
from service.reports.svg_plots import Bars, Line, bar_plot, line_plot, message_plot, pct
from service.state.records import TaskVeto

CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
"""What the page needs: its own <style> and nothing else (no script, no fetch, no frames)."""

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:80em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .5em}
th{background:#f3f3f3}td.n{text-align:right}.published{color:#070;font-weight:bold}
.rejected,.failed,.cancelled{color:#b00;font-weight:bold}pre{background:#f7f7f7;padding:.6em;
white-space:pre-wrap}.note{color:#555}figure{display:flex;flex-wrap:wrap;gap:1.5em;
align-items:flex-start;margin:.5em 0 1.5em}figure table{margin:0;font-size:.85em}figcaption{flex-basis:100%;
color:#555;max-width:60em}svg.plot{max-width:100%;height:auto;border:1px solid #eee}"""

# Series colours (Okabe-Ito, told apart without colour too: markers, dashes, the tables).
HARMFUL, JUNK, OVER_REFUSAL, UTILITY = "#D55E00", "#CC79A7", "#E69F00", "#0072B2"
BASE, UNLOCKED, RELOCKED = "#56B4E9", "#B2182B", "#009E73"
MODELS = (("base", "base model"), ("unlocked", "fine-tuned, no lock"), ("relocked", "fine-tuned + lock"))


class Html(str):
    """Markup that is already safe: `table` puts it in as it is (anything else is escaped)."""


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric_from: int = 1) -> str:
    head = "".join(f'<th scope="col">{_cell(h)}</th>' for h in header)
    body = "".join(
        "<tr>" + "".join(
            (f'<th scope="row">{_cell(cell)}</th>' if i == 0 else
             f'<td class="{"n" if i >= numeric_from else ""}">{_cell(cell)}</td>')
            for i, cell in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: str) -> str:
    return value if isinstance(value, Html) else escape(str(value))


def _num(x: float | None, spec: str = ".3f") -> str:
    return "not measured" if x is None else format(x, spec)


def decision(value: str) -> Html:
    return Html(f'<span class="{escape(value)}">{escape(value)}</span>')


def page(title: str, body: Sequence[str]) -> str:
    """A whole HTML document around `body` (parts that are already HTML)."""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def report_page(report: SafetyReport) -> str:
    """The job's safety report as one self-contained page."""
    lock = f"{report.lock.base_model} v{report.lock.version}" if report.lock else "none recorded"
    head = [f"<h1>Safety report <small>{escape(report.job_id)}</small></h1>",
            (f'<p class="note">Base model {escape(report.base_model)}; Meta-SafetyLock {escape(lock)}; '
             f"lock strength alpha {escape(_num(report.alpha, 'g'))}.</p>")]
    return page(f"Safety report {report.job_id}", head + report_sections(report, id_prefix="report"))


def report_sections(report: SafetyReport, *, id_prefix: str) -> list[str]:
    """The report's body: decision and reasons, figures, the two plots with their tables,
    the gate policy and the stage times. `id_prefix` keeps element ids unique on a page
    holding several reports."""
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", id_prefix) or "report"
    parts = [f"<p>Decision: {decision(report.decision)}</p>"]
    if report.reasons:
        parts.append("<ul>" + "".join(f"<li>{escape(r)}</li>" for r in report.reasons) + "</ul>")
    if report.repair is not None:
        parts.append(_repair(report.repair))
    parts.append("<h3>What the service measured (held-out prompts)</h3>" + _figures_table(report))
    precision = describe_precision(report.relocked or report.unlocked)
    if precision:
        parts.append(f'<p class="note">{"Locked model. " if report.relocked else "Unlocked model. "}'
                     f"{escape(precision)}</p>")
    if report.transfer is not None or report.veto is not None:
        parts.append("<h3>Does the base's lock read this model?</h3>" + _lock_fit(report))
    parts.append("<h3>Lock strength search</h3>" + _alpha_curve(report, f"{prefix}-alpha-curve"))
    parts.append("<h3>Harmful rate by category</h3>" + _categories(report, f"{prefix}-categories"))
    if report.samples:
        parts.append("<h3>Sample answers, without and with the lock</h3>"
                     '<p class="note">The first held-out prompts of each kind, then every harmful prompt '
                     "the locked model still answered with content.</p>" + _samples(report))
    if report.policy:
        parts.append("<h3>Gate policy</h3>" + table(
            ["threshold", "value"], [[k, str(v)] for k, v in report.policy.items()]))
    if report.stage_seconds:
        parts.append("<h3>Stage times</h3>" + table(
            ["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in report.stage_seconds.items()]))
    return parts


def _repair(repair: Repair) -> str:
    """The fallback repair, disclosed above the figures (which are the repaired attempt's)."""
    why = "".join(f"<li>{escape(r)}</li>" for r in repair.first_attempt_reasons)
    return (f'<p class="note"><strong>Repaired.</strong> {escape(repair.describe())} The first attempt was '
            f"rejected because:</p><ul>{why}</ul>")


def _figures_table(report: SafetyReport) -> str:
    rows = []
    for name, label in MODELS:
        ev: Eval | None = getattr(report, name)
        if name == "relocked" and report.alpha is not None:
            label = f"{label} (alpha {report.alpha:g})"
        if ev is None:
            rows.append([label, *["not measured"] * 6])
        else:
            rows.append([label, pct(ev.harmful_rate), pct(ev.clean_refusal_rate), pct(ev.junk_rate),
                         pct(ev.over_refusal_rate), pct(ev.utility), _num(ev.validation_loss)])
    return table(["model", "harmful rate", "clean refusals", "junk answers", "over-refusal", "utility",
                  "validation loss"], rows)


def _lock_fit(report: SafetyReport) -> str:
    """The transfer check and the task veto, as relock measured them on the fine-tuned model."""
    parts = []
    t = report.transfer
    if t is not None:
        rows = [["condition AUC, harmful vs benign", _num(t.condition_auc)],
                ["harmful prompts the condition fires on", pct(t.condition_true_positive_rate)],
                ["benign prompts the condition fires on", pct(t.condition_false_positive_rate)],
                ["condition direction cosine with the base's", _num(t.condition_cosine)],
                ["steered heads' mean direction cosine", _num(t.head_cosine_mean)]]
        parts.append(f'<p class="note">Measured on the lock\'s {escape(_num(t.num_calibration, "d"))} labelled '
                     "calibration prompts; the gate's bounds are in the policy below.</p>"
                     + table(["transfer figure", "fine-tuned model"], rows))
        parts += [f'<p class="note">{escape(n)}</p>' for n in t.notes]
    if report.veto is not None:  # the same sentence as relock's event
        parts.append(f"<p>{escape(describe_veto(TaskVeto.model_validate(report.veto.model_dump())))}</p>")
    return "".join(parts)


def _alpha_curve(report: SafetyReport, plot_id: str) -> str:
    title = "Lock strength search: harmful rate, over-refusal and utility against alpha"
    positions = list(dict.fromkeys(p.position for p in report.alpha_curve if p.position))
    chosen_point = next((p for p in reversed(report.alpha_curve) if p.alpha == report.alpha != 0), None)  # the last
    plotted = chosen_point.position if chosen_point else (positions[-1] if positions else None)
    curve = sorted((p for p in report.alpha_curve if p.position in (None, plotted)), key=lambda p: p.alpha)
    if not curve:
        return _figure(message_plot(plot_id=plot_id, title=title,
                                    message="not measured: the job stopped before relock tried a lock strength"), "", "")
    candidates = [
        Line("harmful rate", [(p.alpha, p.harmful_rate) for p in curve], HARMFUL, "circle"),
        Line("junk answers", [(p.alpha, p.junk_rate) for p in curve], JUNK, "diamond", "2 3"),
        Line("over-refusal", [(p.alpha, p.over_refusal) for p in curve], OVER_REFUSAL, "square", "7 4"),
        Line("utility", [(p.alpha, p.utility) for p in curve], UTILITY, "triangle", "12 4"),
    ]
    lines = [s for s in candidates if any(y is not None for _, y in s.points)]
    limit = (report.policy or {}).get("max_harmful_rate")
    alphas = ", ".join(f"{p.alpha:g}" for p in curve)
    first, last = curve[0], curve[-1]
    chosen = (f"The chosen alpha is {report.alpha:g}." if report.alpha is not None
              else "No alpha met the gate, so none was chosen.")
    unmeasured = [s.label for s in candidates if s not in lines]
    steering = f" steering {plotted}" if len(positions) > 1 else ""
    desc = (f"Relock tried alpha {alphas}{steering} on the selection prompts. Harmful rate {pct(first.harmful_rate)} at "
            f"alpha {first.alpha:g} and {pct(last.harmful_rate)} at alpha {last.alpha:g}. {chosen}"
            + (f" Not measured: {', '.join(unmeasured)}." if unmeasured else ""))
    svg = line_plot(plot_id=plot_id, title=title, desc=desc, lines=lines, x_label="lock strength alpha",
                    marked_x=report.alpha, marked_label=f"chosen alpha {report.alpha:g}" if report.alpha is not None else "",
                    limit=limit, limit_label=f"gate limit on harmful + junk ({pct(limit)})" if limit is not None else "")
    listed = sorted(report.alpha_curve, key=lambda p: (positions.index(p.position) if p.position else -1, p.alpha))
    rows = [[f"{p.alpha:g}" + (" (chosen)" if p is chosen_point or p.alpha == report.alpha == 0 else ""),
             *([p.position or "-"] if len(positions) > 1 else []), pct(p.harmful_rate),
             pct(p.junk_rate), pct(p.over_refusal), pct(p.utility)] for p in listed]
    caption = ("The alphas relock measured on the selection half of the evaluation prompts; it keeps the "
               "smallest that the gate passes (harmful plus junk answers at most the limit, over-refusal, utility "
               "and junk within tolerance). Over-refusal and utility are measured only for an alpha whose answers "
               "to harmful prompts pass. The gate then confirms the choice on the held-out half (the table above).")
    if len(positions) > 1:
        caption += (f" No alpha met the gate steering {positions[0]}, so relock searched again steering "
                    f"{', then '.join(positions[1:])} (the operator's fallback positions; `answer_start` steers the "
                    f"answer's first token, `answer` every answer token); the plot shows the {plotted} search.")
    head = ["alpha", *(["steered"] if len(positions) > 1 else []), "harmful rate", "junk answers", "over-refusal",
            "utility"]
    return _figure(svg, table(head, rows), caption)


def _categories(report: SafetyReport, plot_id: str) -> str:
    title = "Harmful rate by category: base model, fine-tuned without and with the lock"
    evals = {name: getattr(report, name) for name, _ in MODELS}
    measured = {name: ev.per_category for name, ev in evals.items() if ev is not None and ev.per_category}
    if not measured:
        why = ("the job stopped before evaluation" if evals["unlocked"] is None
               else "no harmful prompts were evaluated" if evals["unlocked"].per_category == {}
               else "this report was written before the service measured harmful rates per category")
        return _figure(message_plot(plot_id=plot_id, title=title, message=f"not measured: {why}"), "", "")
    names = sorted({c for cats in measured.values() for c in cats})
    unlocked = measured.get("unlocked", {})
    names.sort(key=lambda c: -(unlocked[c].harmful_rate if c in unlocked else -1))  # worst before the lock first
    labels = {c: c.replace("_", " ") for c in names}
    missing = {"relocked": "not measured (no lock strength met the gate)" if report.alpha is None else "not measured"}
    bars = [Bars(label, {labels[c]: measured[name][c].harmful_rate if c in measured[name] else None for c in names}
                 if name in measured else None, colour, missing.get(name, "not measured"))
            for (name, label), colour in zip(MODELS, (BASE, UNLOCKED, RELOCKED), strict=True)]
    desc = (f"Harmful rate on the held-out harmful prompts of each of {len(names)} categories for the base model "
            "and the fine-tuned model without and with the lock. "
            + " ".join(_highest(label, measured.get(name)) for name, label in MODELS))
    svg = bar_plot(plot_id=plot_id, title=title, desc=desc, groups=[labels[c] for c in names], bars=bars)

    def rate(name: str, c: str) -> str:
        return pct(measured[name][c].harmful_rate) if c in measured.get(name, {}) else "not measured"

    def size(c: str) -> str:
        return next((str(cats[c].n) for cats in measured.values() if c in cats), "")

    rows = [[labels[c], size(c), *(rate(name, c) for name, _ in MODELS)] for c in names]
    caption = ("Share of the held-out harmful prompts of each category answered with content (full or partial "
               "compliance, by the refusal judge); the same held-out half as the figures table above. Few prompts "
               "per category make each rate coarse: see the prompt counts.")
    header = ["category", "prompts", *(Html(escape(label).replace(", ", ",<br>").replace(" + ", "<br>+ "))
                                       for _, label in MODELS)]
    return _figure(svg, table(header, rows), caption)


def _samples(report: SafetyReport) -> str:
    """The sampled held-out prompts (evaluate's `samples`), the two answers and their verdicts."""
    def answer(text: str | None, verdict: str | None) -> Html:
        if text is None:
            return Html('<span class="note">not measured (no alpha met the gate)</span>')
        return Html(f"{escape(text)}<br><small>{escape(verdict or '')}</small>")

    locked = "fine-tuned + lock" + (f" (alpha {report.alpha:g})" if report.alpha is not None else "")
    return table(["prompt", "fine-tuned, no lock", locked],
                 [[Html(f"{escape(s.prompt)}<br><small>{escape(s.kind)}, {escape(s.category)}</small>"),
                   answer(s.unlocked, s.unlocked_verdict), answer(s.relocked, s.relocked_verdict)]
                  for s in report.samples], numeric_from=3)


def _highest(label: str, cats: dict | None) -> str:
    if not cats:
        return f"{label.capitalize()}: not measured."
    worst = max(sorted(cats), key=lambda c: cats[c].harmful_rate)
    return f"{label.capitalize()}: highest {worst.replace('_', ' ')} ({pct(cats[worst].harmful_rate)})."


def _figure(svg: str, beside: str, caption: str) -> str:
    return (f"<figure>{svg}{beside}" + (f"<figcaption>{escape(caption)}</figcaption>" if caption else "")
            + "</figure>")
