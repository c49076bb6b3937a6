"""Sample answers in the safety report: evaluate keeps the first held-out prompts of each
kind, and every harmful prompt the relocked model still answered, with the fine-tuned
model's answer without and with the lock; the report carries them, and the report page
shows them (escaped; "not measured" where no lock was chosen)."""

from __future__ import annotations

import json

import pytest

from sdk.types import SafetyReport
from service.evaluation.suite import CategoryStats, EvalResult, Sample
from service.pipeline import evaluate
from service.pipeline.report import build_report
from service.reports.html import report_page
from tests.service.helpers import placeholder_output, stand_in_evaluate
from tests.service.test_category_figures import _context


def _result(model: str) -> EvalResult:
    """Five harmful, two safe and two task answers, each naming the model that gave it; under
    the lock every harmful prompt is refused but "harm 4" (answered) and "harm 3" (junk)."""
    def outcome(i: int) -> str:
        if "lock" not in model or i == 4:
            return "clean_compliance"
        return "junk" if i == 3 else "clean_refusal"

    samples = ([Sample(kind="harmful", category="fraud", prompt=f"harm {i}", response=f"{model} <b>{i}</b>",
                       label="full_compliance" if outcome(i) != "clean_refusal" else "full_refusal",
                       outcome=outcome(i)) for i in range(5)]
               + [Sample(kind="safe", category="safe", prompt=f"safe {i}", response=f"{model} ok {i}",
                         label="full_compliance") for i in range(2)]
               + [Sample(kind="task", category="tickets", prompt=f"task {i}", response="billing",
                         correct=i == 0) for i in range(2)])
    fraud = CategoryStats(n=5, harmful_rate=0.0, clean_refusal_rate=1.0, clean_compliance_rate=0.0,
                          junk_rate=0.0)
    return EvalResult(harmful_rate=0.0, junk_rate=0.0, samples=samples, per_category={"fraud": fraud})


@pytest.mark.parametrize("alpha", [4.0, 0.0, None])
def test_evaluate_keeps_the_first_answers_of_each_kind_and_the_locked_models_escapes(
        tmp_path, monkeypatch, alpha) -> None:
    sc = _context(tmp_path, str(tmp_path))
    sc.save_output(placeholder_output("relock").model_copy(update={"alpha": alpha}))
    stand_in_evaluate(monkeypatch, lambda model, tokenizer, *, lock=None, keep_samples=False, **_:
                      _result(model if lock is None else f"{model}+lock") if keep_samples
                      else _result("base").model_copy(update={"samples": []}))

    out = evaluate.run(sc)

    escapes = {4.0: ["harm 4"], 0.0: ["harm 3", "harm 4"], None: []}[alpha]  # alpha 0: the unlocked answers
    assert [(s.kind, s.prompt) for s in out.samples] == [
        ("harmful", "harm 0"), ("harmful", "harm 1"), ("harmful", "harm 2"),
        *(("harmful", p) for p in escapes), ("safe", "safe 0"), ("task", "task 0")]
    first, task = out.samples[0], out.samples[-1]
    assert (first.unlocked, first.unlocked_verdict) == ("fine-tuned <b>0</b>", "full_compliance")
    assert task.unlocked_verdict == "correct"
    if alpha is None:  # no relocked model exists
        assert all(s.relocked is None and s.relocked_verdict is None for s in out.samples)
    elif alpha == 0:  # the lock at strength 0 is the unlocked model: its answers, not new ones
        assert all(s.relocked == s.unlocked for s in out.samples)
    else:
        assert (first.relocked, first.relocked_verdict) == ("fine-tuned+lock <b>0</b>", "full_refusal")

    sc.save_output(out)
    report = SafetyReport.model_validate(json.loads(json.dumps(build_report(sc, "published", []))))
    assert [s.prompt for s in report.samples] == [s.prompt for s in out.samples]
    html = report_page(report)
    assert "Sample answers, without and with the lock" in html
    assert "fine-tuned &lt;b&gt;0&lt;/b&gt;" in html and "<b>0</b>" not in html
    assert ("not measured (no alpha met the gate)" in html) == (alpha is None)


def test_the_escapes_kept_are_capped(tmp_path, monkeypatch) -> None:
    sc = _context(tmp_path, str(tmp_path))
    sc.save_output(placeholder_output("relock").model_copy(update={"alpha": 0.0}))
    stand_in_evaluate(monkeypatch, lambda model, tokenizer, *, keep_samples=False, **_:
                      _result(model) if keep_samples else _result("base").model_copy(update={"samples": []}))
    monkeypatch.setattr(evaluate, "MAX_ESCAPES", 1)

    harmful = [s.prompt for s in evaluate.run(sc).samples if s.kind == "harmful"]

    assert harmful == ["harm 0", "harm 1", "harm 2", "harm 3"]


def test_a_report_from_before_samples_has_no_sample_section() -> None:
    report = SafetyReport.model_validate({"job_id": "ftjob-x", "base_model": "m", "decision": "rejected"})
    assert report.samples == []
    assert "Sample answers" not in report_page(report)


def test_the_terminal_report_shows_samples_as_plain_text() -> None:
    from rich.console import Console

    from sdk.cli.render import report_view

    report = SafetyReport.model_validate({
        "job_id": "ftjob-x", "base_model": "m", "decision": "rejected",
        "samples": [{"kind": "harmful", "category": "fraud", "prompt": "How do I [bold]x[/bold]?",
                     "unlocked": "Sure, [red]step one", "unlocked_verdict": "full_compliance"}]})
    console = Console(record=True, width=200)
    console.print(report_view(report))
    text = console.export_text()
    assert "sample answers" in text and "How do I [bold]x[/bold]?" in text
    assert "Sure, [red]step one (full_compliance)" in text and "not measured" in text
