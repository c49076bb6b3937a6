"""The fallback repair: a job the gate rejects is trained once more with the operator's
safety data mixed in, then relocked, evaluated and gated again (opt-in; disclosed).

The workflow runs in-process (SQLite records, a local store) with stand-in stages, so the
attempts are exact; the mixing itself is tested on records.
"""

from __future__ import annotations

import json
from html import escape
from types import SimpleNamespace

import pytest

from sdk.types import SafetyReport
from service.context import ServiceContext
from service.pipeline import workflow
from service.pipeline.context import StageContext
from service.pipeline.repair import SAFETY_DATA, mixed_records, safety_records
from service.pipeline.report import build_report
from service.reports.html import report_page
from service.settings import Settings
from service.state.records import GateOutput, JobRecord, TrainOutput
from tests.service.helpers import add_job, placeholder_output, stand_in_stages

SAFETY = [
    {"kind": "harmful", "messages": [{"role": "user", "content": f"harm {i}"}, {"role": "assistant", "content": "No."}]}
    for i in range(6)
]
CUSTOMER = [{"messages": [{"role": "user", "content": f"ticket {i}"}, {"role": "assistant", "content": "billing"}]}
            for i in range(4)]


def _base_dir(tmp_path, with_safety: bool = True):
    base = tmp_path / "base"
    base.mkdir()
    if with_safety:
        (base / SAFETY_DATA).write_text("".join(json.dumps(r) + "\n" for r in SAFETY))
    return base


def test_safety_records_are_the_bases_alignment_messages(tmp_path) -> None:
    records = safety_records(_base_dir(tmp_path))
    assert records == [{"messages": r["messages"]} for r in SAFETY]
    with pytest.raises(FileNotFoundError):
        safety_records(tmp_path)


def test_the_mix_keeps_every_customer_record_and_adds_a_seeded_share() -> None:
    safety = [{"messages": r["messages"]} for r in SAFETY]
    mixed, added = mixed_records(CUSTOMER, safety, 0.5, seed=0)
    assert added == 2 and len(mixed) == 6
    assert all(r in mixed for r in CUSTOMER)
    assert mixed_records(CUSTOMER, safety, 0.5, seed=0) == (mixed, 2)  # deterministic
    assert mixed_records(CUSTOMER, safety, 10.0, seed=0)[1] == len(safety)  # at most all of them


def _service(tmp_path, *, mix: float, with_safety: bool = True) -> tuple[ServiceContext, JobRecord]:
    """An embedded service whose base `m` has (or lacks) safety data, and one new job."""
    base = _base_dir(tmp_path, with_safety)
    ctx = ServiceContext(Settings(data_dir=tmp_path / "data", broker_url=None, redis_url=None, store_url=None,
                                  base_models={"m": str(base)}, repair_safety_mix=mix))
    return ctx, add_job(ctx)


def _run(tmp_path, monkeypatch, *, mix: float, with_safety: bool = True, passes_on: int = 2):
    ctx, job = _service(tmp_path, mix=mix, with_safety=with_safety)
    calls: list[tuple[str, int]] = []

    def stage(name: str):
        def run(sc):
            calls.append((name, sc.job.attempt))
            if name == "gate":
                passed = sc.job.attempt == passes_on
                return GateOutput(passed=passed, reasons=[] if passed else ["harmful rate 0.2 > 0.05"], policy=None)
            if name == "train" and sc.job.repair is not None:
                return TrainOutput(steps=1, train_loss=1.0, seconds=0.0, method="full", safety_examples=3)
            return placeholder_output(name)
        return SimpleNamespace(run=run)

    stand_in_stages(monkeypatch, stage)
    status = workflow.run_job(ctx, job.id)
    return ctx, StageContext(ctx, job.id), status, calls


def test_a_rejected_job_is_repaired_once_and_the_report_discloses_it(tmp_path, monkeypatch) -> None:
    ctx, sc, status, calls = _run(tmp_path, monkeypatch, mix=1.0)
    assert status == "succeeded"
    assert calls == [("validate", 1), ("resolve_lock", 1), ("train", 1), ("relock", 1), ("evaluate", 1),
                     ("gate", 1), ("train", 2), ("relock", 2), ("evaluate", 2), ("gate", 2), ("publish", 2)]
    job = sc.job
    assert job.attempt == 2 and job.repair.ratio == 1.0
    assert job.repair.first_attempt_reasons == ["harmful rate 0.2 > 0.05"]
    first = GateOutput.model_validate_json(ctx.store.get_bytes(sc.key("stages", "attempt-1", "gate.json")))
    assert not first.passed and first.attempt == 1  # the first attempt's outputs are kept
    assert sc.require(GateOutput).attempt == 2 and sc.require(GateOutput).passed
    assert any("repairing" in e.message for e in ctx.records.events(job.id))
    assert "train (repair)" in job.stage_seconds and "train" in job.stage_seconds
    messages = [e.message for e in ctx.records.events(job.id)]
    assert messages.count("Stage train started.") == 2  # events written once per key and attempt
    sc.event("Step 1/2: training loss 1.0", once="step:1")
    sc.event("Step 1/2: training loss 1.0", once="step:1")
    assert [e.message for e in ctx.records.events(job.id)].count("Step 1/2: training loss 1.0") == 1

    report = SafetyReport.model_validate(build_report(sc, "published", []))
    assert report.repair.ratio == 1.0 and report.repair.safety_examples == 3
    html = report_page(report)
    assert "Repaired." in html and "harmful rate 0.2 &gt; 0.05" in html
    assert escape(report.repair.describe()) in html  # the CLI's report view shows the same sentence


def test_a_second_rejection_is_final(tmp_path, monkeypatch) -> None:
    _, sc, status, calls = _run(tmp_path, monkeypatch, mix=1.0, passes_on=3)
    assert status == "failed" and calls[-1] == ("reject", 2) and sc.job.attempt == 2
    assert [c for c in calls if c[0] == "train"] == [("train", 1), ("train", 2)]


@pytest.mark.parametrize(("mix", "with_safety", "why"), [
    (0.0, True, None),
    (1.0, False, "No repair: no operator safety data (alignment_data.jsonl) for base model m."),
])
def test_no_repair_without_the_operators_opt_in_or_safety_data(tmp_path, monkeypatch, mix, with_safety, why) -> None:
    ctx, sc, status, calls = _run(tmp_path, monkeypatch, mix=mix, with_safety=with_safety)
    assert status == "failed" and sc.job.attempt == 1 and sc.job.repair is None
    assert [c[0] for c in calls].count("train") == 1
    messages = [e.message for e in ctx.records.events(sc.job_id)]
    assert (why in messages) if why else not any("repair" in m.lower() for m in messages)
    assert SafetyReport.model_validate(build_report(sc, "rejected", [])).repair is None


def test_a_resumed_repair_reruns_only_what_the_repair_has_not_done(tmp_path, monkeypatch) -> None:
    """Outputs of attempt 1 do not count as done in attempt 2; the repair's own ones do."""
    ctx, sc, _, _ = _run(tmp_path, monkeypatch, mix=1.0)
    ctx.records.update_job(sc.job_id, lambda j: setattr(j, "status", "running"))
    sc.save_output(placeholder_output("relock").model_copy(update={"attempt": 1}))  # as if the repair stopped
    sc.save_output(placeholder_output("evaluate").model_copy(update={"attempt": 1}))
    sc.save_output(GateOutput(passed=False, reasons=["x"], policy=None, attempt=1))
    calls: list[str] = []

    def stage(name: str):
        def run(sc):
            calls.append(name)
            return (GateOutput(passed=True, reasons=[], policy=None) if name == "gate" else placeholder_output(name))
        return SimpleNamespace(run=run)

    stand_in_stages(monkeypatch, stage)
    assert workflow.run_job(ctx, sc.job_id) == "succeeded"
    assert calls == ["relock", "evaluate", "gate", "publish"]  # train's attempt-2 output stands


def test_a_crash_is_never_repaired(tmp_path, monkeypatch) -> None:
    ctx, job = _service(tmp_path, mix=1.0)
    calls: list[str] = []

    def stage(name: str):
        def run(sc):
            calls.append(name)
            if name == "evaluate":
                raise RuntimeError("out of memory")
            return placeholder_output(name)
        return SimpleNamespace(run=run)

    stand_in_stages(monkeypatch, stage)
    assert workflow.run_job(ctx, job.id) == "failed"
    assert calls.count("train") == 1 and calls[-1] == "reject"
    assert ctx.records.get_job(job.id).repair is None
