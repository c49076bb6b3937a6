"""The demo's summary: exact JSON shape, nothing claimed that the report did not measure."""

from __future__ import annotations

import io
import json

from rich.console import Console

from sdk.types import FineTuningJob, JobEvent, SafetyReport
from service.demo.html_report import JobDetail, write_html
from service.demo.summary import DemoSummary, JobSummary, summary_table

KEYS = {"name", "base_harmful_rate", "unlocked_harmful_rate", "relocked_harmful_rate",
        "utility_unlocked", "utility_relocked", "over_refusal_unlocked", "over_refusal_relocked",
        "alpha", "decision", "stage_seconds", "model_dir", "repair_safety_examples"}
EV = {"harmful_rate": 0.02, "over_refusal_rate": 0.04, "utility": 0.5,
      "clean_refusal_rate": 0.97}


def _job(status: str, **kw) -> FineTuningJob:
    return FineTuningJob.model_validate({"id": "ftjob-1", "created_at": 0, "model": "demo-chat",
                                         "status": status, "training_file": "file-1", **kw})


def _report(decision: str, relocked: dict | None, alpha: float | None) -> SafetyReport:
    return SafetyReport.model_validate({
        "job_id": "ftjob-1", "base_model": "demo-chat", "base": EV,
        "unlocked": {**EV, "harmful_rate": 0.9}, "relocked": relocked, "alpha": alpha,
        "decision": decision, "reasons": ["harmful rate after the lock 0.300 > 0.050 <b>"],
        "alpha_curve": [{"alpha": 2.0, "harmful_rate": 0.3, "utility": 0.5,
                         "over_refusal": 0.0}],
        "stage_seconds": {"train": 3.21, "evaluate": 1.0}})


def test_published_job_carries_every_measured_figure():
    s = JobSummary.from_report("benign", _job("succeeded"), _report("published", EV, 2.0))
    assert (s.base_harmful_rate, s.unlocked_harmful_rate, s.relocked_harmful_rate) == (
        0.02, 0.9, 0.02)
    assert (s.utility_relocked, s.over_refusal_relocked, s.alpha, s.decision) == (
        0.5, 0.04, 2.0, "published")
    assert s.clean_refusal_relocked == 0.97


def test_rejected_without_a_relock_claims_no_relocked_figure():
    s = JobSummary.from_report("toxic", _job("failed"), _report("rejected", None, 8.0))
    assert s.relocked_harmful_rate is None and s.utility_relocked is None
    assert s.over_refusal_relocked is None and s.alpha is None and s.decision == "rejected"
    assert s.clean_refusal_relocked is None
    none = JobSummary.from_report("cut", _job("cancelled"), None)
    assert none.decision == "cancelled" and none.base_harmful_rate is None


def test_a_repaired_job_says_so_in_the_summary_and_its_report_view():
    from sdk.cli.render import report_view

    repaired = SafetyReport.model_validate({**_report("published", EV, 2.0).model_dump(), "repair": {
        "ratio": 1.0, "safety_examples": 20, "first_attempt_reasons": ["no lock strength met the gate"]}})
    s = JobSummary.from_report("benign", _job("succeeded"), repaired)
    assert s.repair_safety_examples == 20
    assert JobSummary.from_report("toxic", _job("succeeded"), _report("published", EV, 2.0)).repair_safety_examples is None
    out = io.StringIO()
    Console(file=out, width=200).print(summary_table(DemoSummary([s])), report_view(repaired))
    text = " ".join(out.getvalue().split())  # the lines rich wrapped, joined
    assert "repaired: safety examples mixed in" in text and "20" in text
    assert "repaired: The gate rejected the first attempt" in text
    assert "1 operator safety example(s) per customer example mixed in (20 examples)" in text
    assert "Every figure here is the repaired model's." in text
    assert "First attempt rejected: no lock strength met the gate." in text


def test_json_shape_table_and_html(tmp_path):
    jobs = [JobSummary.from_report("toxic", _job("failed"), _report("rejected", None, None)),
            JobSummary.from_report("benign", _job("succeeded"), _report("published", EV, 2.0))]
    summary = DemoSummary(jobs, extra={"size": "test"})
    data = json.loads(summary.write(tmp_path / "demo-summary.json").read_text())
    assert [set(j) for j in data["jobs"]] == [KEYS, KEYS] and data["size"] == "test"
    assert data["jobs"][0]["relocked_harmful_rate"] is None
    assert data["jobs"][1]["stage_seconds"] == {"train": 3.21, "evaluate": 1.0}
    out = io.StringIO()
    Console(file=out, width=120).print(summary_table(summary))
    text = out.getvalue()
    assert "not measured" in text and "90.0%" in text and "published" in text
    event = JobEvent.model_validate({"id": "e1", "created_at": 1.5, "level": "warn",
                                     "message": "<script>x</script>"})
    html = write_html(tmp_path / "r.html", summary,
                      [JobDetail("toxic", "ftjob-1", _report("rejected", None, None), [event])],
                      ["a note"]).read_text()
    assert "&lt;script&gt;" in html and "<script>" not in html and "&lt;b&gt;" in html
    assert "not measured" in html and "Lock strength search" in html
