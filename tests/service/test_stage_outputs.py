"""Stage outputs are typed: each stage's output model round-trips through the store, and
the outputs an earlier version of the service stored (plain JSON, some with fields the
models no longer have) load as the same models, so a job stored then still resumes.
Embedded context (a local store, SQLite), stand-in stages, no models."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from service.context import ServiceContext
from service.pipeline.context import FinalResult, StageContext
from service.pipeline.workflow import run_job
from service.settings import Settings
from service.state.records import (
    AlphaPoint,
    AppliedLock,
    EvaluateOutput,
    FileStats,
    FittedLock,
    GateOutput,
    JobRecord,
    RelockOutput,
    ResolveLockOutput,
    TrainOutput,
    ValidateOutput,
)
from service.store_layout import dumps
from tests.service.helpers import add_job, placeholder_output, stand_in_stages

SHA = "ab" * 32
FIGURES = {"harmful_rate": 0.02, "clean_refusal_rate": 0.9, "clean_compliance_rate": 0.1,
           "over_refusal_rate": 0.05, "utility": 0.95, "validation_loss": None, "junk_rate": 0.0}

OUTPUTS = [
    ValidateOutput(training_file=FileStats(examples=10, tokens=300, max_tokens=40),
                   validation_file=FileStats(examples=4, tokens=100, max_tokens=30)),
    TrainOutput(steps=12, train_loss=1.25, validation_loss=1.5, seconds=3.2, method="lora", resumed_from_step=10),
    ResolveLockOutput(base_model="tiny", version=3, sha256=SHA),
    RelockOutput(alpha=4.0, curve=[AlphaPoint(alpha=0.0, harmful_rate=0.5, utility=1.0, over_refusal=0.0, junk_rate=0.0),
                                   AlphaPoint(alpha=4.0, harmful_rate=0.0, utility=None, over_refusal=None, junk_rate=0.0)],
                 base=FIGURES, unlocked={**FIGURES, "harmful_rate": 0.5}, policy={"max_harmful_rate": 0.05},
                 lock=FittedLock(key="relock/lock", kind="conditional", sha256=SHA, threshold=0.25,
                                 manifest_sha256="cd" * 32, fit={"threshold": 0.25, "num_calibration": 8})),
    EvaluateOutput(base=FIGURES, unlocked=FIGURES, relocked=None, alpha=None, lock=None),
    EvaluateOutput(base=FIGURES, unlocked=FIGURES, relocked=FIGURES, alpha=2.0,
                   lock=AppliedLock(kind="head_bias", sha256=SHA)),
    GateOutput(passed=False, reasons=["relock failed: boom"], policy=None, crashed_stage="relock"),
]


@pytest.fixture
def sc(tmp_path) -> StageContext:
    ctx = ServiceContext(Settings(data_dir=tmp_path, broker_url=None, redis_url=None, store_url=None))
    return StageContext(ctx, add_job(ctx, "tiny").id)


@pytest.mark.parametrize("output", OUTPUTS, ids=lambda o: f"{o.stage}")
def test_an_output_round_trips_through_the_store(sc, output) -> None:
    kind = type(output)
    assert sc.output(kind) is None and not sc.done(kind.stage)
    sc.save_output(output)
    assert sc.done(kind.stage) and sc.ctx.store.exists(sc.key("stages", f"{kind.stage}.json"))
    assert sc.require(kind) == output
    assert StageContext(sc.ctx, sc.job_id).require(kind) == output  # another worker reads the same


def test_require_names_the_missing_stage(sc) -> None:
    with pytest.raises(RuntimeError, match="stage relock has no stored output"):
        sc.require(RelockOutput)


# As the previous version wrote them: plain dicts, through the same `dumps`.
STORED_BEFORE = {
    "validate": {"lock": {"base_model": "tiny", "version": 1, "sha256": SHA},
                 "training_file": {"examples": 10, "tokens": 300, "max_tokens": 40}},
    "train": {"steps": 12, "train_loss": 1.25, "validation_loss": None, "seconds": 3.2, "method": "full",
              "resumed_from_step": None},
    "resolve_lock": {"base_model": "tiny", "version": 1, "sha256": SHA},
    "relock": {"alpha": 4, "curve": [{"alpha": 4, "harmful_rate": 0.0, "utility": 1.0, "over_refusal": 0.0,
                                      "junk_rate": 0.0}],
               "base": FIGURES, "unlocked": FIGURES, "policy": {"max_harmful_rate": 0.05},
               "lock": {"key": "relock/lock", "kind": "head_bias", "sha256": SHA, "threshold": None,
                        "manifest_sha256": SHA, "fit": None}},
    "evaluate": {"base": FIGURES, "unlocked": FIGURES, "relocked": FIGURES, "alpha": 4,
                 "lock": {"kind": "head_bias", "sha256": SHA, "threshold": None}},
    "gate": {"passed": True, "reasons": [], "policy": {"max_harmful_rate": 0.05}},
}


def test_outputs_stored_by_the_previous_version_load_typed(sc) -> None:
    for stage, data in STORED_BEFORE.items():
        sc.ctx.store.put_bytes(sc.key("stages", f"{stage}.json"), dumps(data))
    assert sc.require(ValidateOutput).training_file.examples == 10  # its old `lock` field is ignored
    assert sc.require(ValidateOutput).validation_file is None
    assert sc.require(TrainOutput).method == "full" and sc.require(TrainOutput).resumed_from_step is None
    assert sc.require(ResolveLockOutput) == ResolveLockOutput(base_model="tiny", version=1, sha256=SHA)
    relock = sc.require(RelockOutput)
    assert relock.alpha == 4.0 and relock.curve[0].harmful_rate == 0.0 and relock.lock.fit is None
    assert sc.require(EvaluateOutput).lock.kind == "head_bias"
    gate = sc.require(GateOutput)
    assert gate.passed is True and gate.crashed_stage is None


def test_a_job_whose_outputs_the_previous_version_stored_resumes_from_them(sc, monkeypatch) -> None:
    """The job was lost after evaluate; the outputs its worker stored then are skipped, and
    the stages that run now read them as typed models."""
    for stage, data in STORED_BEFORE.items():
        if stage != "gate":
            sc.ctx.store.put_bytes(sc.key("stages", f"{stage}.json"), dumps(data))

    def lost_after_evaluate(job: JobRecord) -> None:
        job.status, job.stage, job.deliveries = "running", "evaluate", 1

    sc.ctx.records.update_job(sc.job_id, lost_after_evaluate)
    ran: list[str] = []

    def stage(name: str):
        def run(sc):
            ran.append(name)
            if name == "gate":
                relocked = sc.require(EvaluateOutput).relocked
                return GateOutput(passed=relocked["harmful_rate"] <= 0.05, reasons=[], policy=None)
            lock, alpha = sc.require(ResolveLockOutput), sc.require(RelockOutput).alpha
            return FinalResult(status="succeeded", model_id=f"model-{lock.base_model}-v{lock.version}-{alpha:g}")
        return SimpleNamespace(run=run)

    stand_in_stages(monkeypatch, stage)
    assert run_job(sc.ctx, sc.job_id) == "succeeded"
    assert ran == ["gate", "publish"]
    assert sc.ctx.records.get_job(sc.job_id).fine_tuned_model == "model-tiny-v1-4"
    messages = [e.message for e in sc.ctx.records.events(sc.job_id)]
    for name in ("validate", "train", "resolve_lock", "relock", "evaluate"):
        assert f"Stage {name} already done; skipping it." in messages
    assert sc.require(GateOutput) == GateOutput(passed=True, reasons=[], policy=None)


def test_a_stage_that_returns_another_stage_s_output_fails_without_storing_it(sc, monkeypatch) -> None:
    def stage(name: str):
        wrong = GateOutput(passed=True, reasons=[], policy=None)
        return SimpleNamespace(run=lambda sc: wrong if name == "train" else placeholder_output(name))

    stand_in_stages(monkeypatch, stage)
    assert run_job(sc.ctx, sc.job_id) == "failed"
    assert sc.ctx.records.get_job(sc.job_id).error.code == "train_failed"
    assert not sc.done("train") and not sc.done("gate")
