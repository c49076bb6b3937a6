"""What the demo measured, per job: the numbers of `demo-summary.json` and the table.

Every figure comes from the job's safety report as the service measured it; a relocked
figure is None (null, "not measured") when no lock strength was chosen.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.table import Table
from rich.text import Text

from sdk.types import FineTuningJob, SafetyReport


@dataclass
class JobSummary:
    """One customer job of the demo; rates are fractions in [0, 1]."""

    name: str
    base_harmful_rate: float | None
    unlocked_harmful_rate: float | None
    relocked_harmful_rate: float | None
    utility_unlocked: float | None
    utility_relocked: float | None
    over_refusal_unlocked: float | None
    over_refusal_relocked: float | None
    alpha: float | None
    decision: str
    stage_seconds: dict[str, float] = field(default_factory=dict)
    clean_refusal_unlocked: float | None = None
    """Harmful prompts answered with a clean refusal (not junk): table and HTML only."""
    clean_refusal_relocked: float | None = None
    model_dir: str | None = None
    """The customer's downloaded copy of the published model (None: not published)."""
    repair_safety_examples: int | None = None
    """Operator safety examples the repair mixed into the customer's file (None: not
    repaired); every figure is then the repaired attempt's."""

    @classmethod
    def from_report(cls, name: str, job: FineTuningJob, report: SafetyReport | None) -> JobSummary:
        """From a finished job and its report; without a report nothing is measured."""
        if report is None:
            return cls(name, None, None, None, None, None, None, None, None,
                       decision=job.status)
        base, unlocked, relocked = report.base, report.unlocked, report.relocked
        return cls(
            name=name,
            base_harmful_rate=base.harmful_rate if base else None,
            unlocked_harmful_rate=unlocked.harmful_rate if unlocked else None,
            relocked_harmful_rate=relocked.harmful_rate if relocked else None,
            utility_unlocked=unlocked.utility if unlocked else None,
            utility_relocked=relocked.utility if relocked else None,
            over_refusal_unlocked=unlocked.over_refusal_rate if unlocked else None,
            over_refusal_relocked=relocked.over_refusal_rate if relocked else None,
            alpha=report.alpha if relocked else None,
            decision=report.decision,
            stage_seconds={k: round(v, 3) for k, v in report.stage_seconds.items()},
            clean_refusal_unlocked=unlocked.clean_refusal_rate if unlocked else None,
            clean_refusal_relocked=relocked.clean_refusal_rate if relocked else None,
            repair_safety_examples=report.repair.safety_examples if report.repair else None,
        )


JSON_KEYS = ("name", "base_harmful_rate", "unlocked_harmful_rate", "relocked_harmful_rate",
             "utility_unlocked", "utility_relocked", "over_refusal_unlocked",
             "over_refusal_relocked", "alpha", "decision", "stage_seconds", "model_dir",
             "repair_safety_examples")
"""The fields of each job in demo-summary.json (the shape the README documents)."""


@dataclass
class DemoSummary:
    jobs: list[JobSummary]
    extra: dict = field(default_factory=dict)
    """Context beside the jobs (model, lock, operator timings); `jobs` keeps its fixed shape."""

    def to_json(self) -> str:
        jobs = [{k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(j).items()
                 if k in JSON_KEYS} for j in self.jobs]
        return json.dumps({"jobs": jobs, **self.extra}, indent=2)

    def write(self, path: Path) -> Path:
        path.write_text(self.to_json() + "\n")
        return path


def _pct(x: float | None) -> str:
    return "not measured" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


ROWS = (
    ("harmful rate, base model", "base_harmful_rate", _pct),
    ("harmful rate, fine-tuned (no lock)", "unlocked_harmful_rate", _pct),
    ("harmful rate, fine-tuned + lock", "relocked_harmful_rate", _pct),
    ("clean refusals, fine-tuned (no lock)", "clean_refusal_unlocked", _pct),
    ("clean refusals, fine-tuned + lock", "clean_refusal_relocked", _pct),
    ("utility, fine-tuned (no lock)", "utility_unlocked", _pct),
    ("utility, fine-tuned + lock", "utility_relocked", _pct),
    ("over-refusal, fine-tuned (no lock)", "over_refusal_unlocked", _pct),
    ("over-refusal, fine-tuned + lock", "over_refusal_relocked", _pct),
    ("lock strength alpha", "alpha", _num),
    ("repaired: safety examples mixed in", "repair_safety_examples", lambda n: "-" if n is None else str(n)),
)


def summary_table(summary: DemoSummary) -> Table:
    """One column per job; rows: the three harmful rates, utility, over-refusal, alpha,
    the gate's decision and the job's wall time."""
    table = Table(title="SafetyLock demo: what the service measured", show_lines=False)
    table.add_column("", no_wrap=True)
    for job in summary.jobs:
        table.add_column(job.name, justify="right")
    for title, key, fmt in ROWS:
        table.add_row(title, *(fmt(getattr(job, key)) for job in summary.jobs))
    table.add_row("gate decision", *(
        Text(job.decision, style="bold " + ("green" if job.decision == "published" else "red"))
        for job in summary.jobs))
    table.add_row("job time (s)", *(f"{sum(job.stage_seconds.values()):.0f}"
                                    for job in summary.jobs))
    return table
