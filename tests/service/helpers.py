"""Small helpers for the service tests: uploads, waiting on jobs, reading events."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from service.state.records import JobRecord

TERMINAL = {"succeeded", "failed", "cancelled"}
TINY_BASE = "tiny-chat"  # base id of the shared tiny chat Llama in embedded-mode job tests
OPEN_GATE = {"gate_max_harmful_rate": 1.0, "gate_max_over_refusal_increase": 1.0,
             "gate_max_utility_drop": 1.0, "gate_max_junk_increase": 1.0}  # fmt: skip
"""Gate settings that pass any measurement: for tests that follow the lock, not the model's safety."""


def upload_records(client: httpx.Client, records: list[dict], name: str = "train.jsonl") -> str:
    content = "".join(json.dumps(r) + "\n" for r in records).encode()
    response = client.post("/v1/files", files={"file": (name, content, "application/jsonl")},
                           data={"purpose": "fine-tune"})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def create_job(client: httpx.Client, **body) -> dict:
    response = client.post("/v1/fine_tuning/jobs", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(client: httpx.Client, job_id: str, predicate, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; job: {job}; events: {event_messages(client, job_id)[-10:]}")


def wait_terminal(client: httpx.Client, job_id: str, timeout: float = 240) -> dict:
    return wait_for(client, job_id, lambda j: j["status"] in TERMINAL, timeout, "a terminal status")


def all_events(client: httpx.Client, job_id: str) -> list[dict]:
    events, after = [], None
    while True:
        params = {"limit": 100, **({"after": after} if after else {})}
        page = client.get(f"/v1/fine_tuning/jobs/{job_id}/events", params=params).json()
        events += page["data"]
        if not page["has_more"]:
            return events
        after = page["last_id"]


def event_messages(client: httpx.Client, job_id: str) -> list[str]:
    return [e["message"] for e in all_events(client, job_id)]


def train_steps(events: list[dict]) -> list[int]:
    return [e["data"]["step"] for e in events if e["type"] == "metrics" and e["data"] and "step" in e["data"]]


def _as_eval(point: dict) -> dict:
    """An alpha-curve point as the gate reads a measurement."""
    return {"harmful_rate": point["harmful_rate"], "over_refusal_rate": point["over_refusal"],
            "junk_rate": point["junk_rate"], "utility": point["utility"]}


def assert_decision_matches_measurements(report: dict, job: dict) -> None:
    """The gate's decision is the policy applied to the figures the report shows, whatever
    they are: relock chose the first alpha of its curve that the policy passes on the
    selection prompts (every point before it fails), and the job is published exactly when
    the relocked model passes on the held-out confirmation prompts and the lock transferred
    (relock's check), with the same reasons."""
    from service.pipeline.gate import GatePolicy

    policy = GatePolicy(**report["policy"])
    selection = report["selection"]
    verdicts = [policy.decide(selection["base"], selection["unlocked"], _as_eval(p))[0] for p in report["alpha_curve"]]
    assert not any(verdicts[:-1]), report["alpha_curve"]  # relock stops at the first pass
    if report["alpha"] is None:
        assert not any(verdicts) and report["relocked"] is None
    else:
        assert verdicts[-1] and report["alpha_curve"][-1]["alpha"] == report["alpha"]
    passed, reasons = policy.decide(report["base"], report["unlocked"], report["relocked"])
    transfer = [r for r in report["reasons"] if r.startswith("lock_not_transferred: ")]  # relock's transfer check
    assert report["reasons"] == transfer + reasons, (report["reasons"], reasons)
    passed = passed and not transfer
    assert report["decision"] == ("published" if passed else "rejected")
    assert job["status"] == ("succeeded" if passed else "failed"), job


def add_job_and_key(ctx, model: str = "m", **fields) -> tuple[JobRecord, str]:
    """A new job (training file `file-x`; `fields` set the rest) of a new tenant named "acme",
    both recorded in `ctx.records`, and that tenant's API key. Each call creates another
    tenant: tenant names are not unique."""
    from service.state.records import JobRecord, new_id

    tenant, key = ctx.records.create_tenant("acme")
    job = JobRecord(id=new_id("ftjob"), tenant=tenant.id, model=model, training_file="file-x", **fields)
    ctx.records.add_job(job)
    return job, key


def add_job(ctx, model: str = "m", **fields) -> JobRecord:
    """`add_job_and_key` without the key: a new job of a new tenant "acme" in `ctx.records`."""
    return add_job_and_key(ctx, model, **fields)[0]


def placeholder_output(stage: str):
    """What a stand-in of `stage` returns: the smallest well-formed output of its type (the
    gate passes; publish succeeds with model `model-x`, reject fails the job)."""
    from service.pipeline.context import FinalResult
    from service.state.records import (
        EvaluateOutput,
        FileStats,
        FittedLock,
        GateOutput,
        RelockOutput,
        ResolveLockOutput,
        TrainOutput,
        ValidateOutput,
    )

    outputs = {
        "validate": lambda: ValidateOutput(training_file=FileStats(examples=1, tokens=1, max_tokens=1)),
        "train": lambda: TrainOutput(steps=1, train_loss=1.0, seconds=0.0, method="lora"),
        "resolve_lock": lambda: ResolveLockOutput(base_model="m", version=1, sha256="0" * 64),
        "relock": lambda: RelockOutput(alpha=None, curve=[], base={}, unlocked={}, policy={}, lock=FittedLock(
            key="relock/lock", kind="head_bias", sha256="0" * 64, manifest_sha256="0" * 64)),
        "evaluate": lambda: EvaluateOutput(base={}, unlocked={}, relocked=None, alpha=None, lock=None),
        "gate": lambda: GateOutput(passed=True, reasons=[], policy=None),
        "publish": lambda: FinalResult(status="succeeded", model_id="model-x"),
        "reject": lambda: FinalResult(status="failed"),
    }
    return outputs[stage]()


def stand_in_stages(monkeypatch, stage) -> None:
    """Run the workflow with stand-ins: `stage(name)` gives an object whose `run(sc)` takes
    the place of that stage's (the names, order and output types stay the workflow's)."""
    from service.pipeline import workflow
    from service.pipeline.context import Stage

    def stand_in(real: Stage) -> Stage:
        return Stage(real.name, stage(real.name).run, real.output)

    monkeypatch.setattr(workflow, "STAGES", tuple(stand_in(s) for s in workflow.STAGES))
    monkeypatch.setattr(workflow, "PUBLISH", stand_in(workflow.PUBLISH))
    monkeypatch.setattr(workflow, "REJECT", stand_in(workflow.REJECT))


def stand_in_evaluate(monkeypatch, evaluate_model) -> None:
    """Run the evaluate stage on stand-ins: `evaluate_model(model, tokenizer, **kw)` gets
    "base" or "fine-tuned" as the model (and `lock="lock"` for the relocked one)."""
    from service.pipeline import base_evaluation, evaluate
    from service.state.records import AppliedLock

    monkeypatch.setattr("service.evaluation.suite.evaluate_model", evaluate_model)
    monkeypatch.setattr(base_evaluation, "load_model", lambda path: ("base", None))
    monkeypatch.setattr(evaluate, "trained_model", lambda sc: ("fine-tuned", None))
    monkeypatch.setattr(evaluate, "fitted_lock", lambda sc: "lock")
    monkeypatch.setattr(evaluate, "lock_summary", lambda lock: AppliedLock(kind="head_bias", sha256="0" * 64))


def run_trained_job(tmp_path, models, lock, trained: str, **settings):
    """Publish `lock` as the tiny base's production lock (`models/base`, evaluation prompts
    `models/prompts.jsonl`) and run a job whose train stage is done (`models/<trained>` as
    its trained model): its stage context and final status."""
    from service.context import ServiceContext
    from service.pipeline.context import StageContext
    from service.pipeline.train import TRAINED
    from service.pipeline.workflow import run_job
    from service.settings import Settings
    from service.state.records import TrainOutput

    ctx = ServiceContext(Settings(
        data_dir=tmp_path, broker_url=None, redis_url=None, store_url=None,
        base_models={TINY_BASE: str(models / "base")}, eval_prompts=str(models / "prompts.jsonl"),
        eval_max_new_tokens=4, **{"alpha_grid": [4.0], **OPEN_GATE, **settings},
    ))  # fmt: skip
    info = ctx.registry.publish(lock.save(tmp_path / "lock"), base_model=TINY_BASE, actor="tests")
    ctx.registry.promote(f"{TINY_BASE}@v{info.version}", "production", actor="tests")
    job = add_job(ctx, TINY_BASE)
    sc = StageContext(ctx, job.id)
    ctx.store.upload_dir(models / trained, sc.key(TRAINED))
    sc.save_output(placeholder_output("validate"))
    sc.save_output(TrainOutput(steps=1, train_loss=1.0, seconds=0.0, method="full"))
    return sc, run_job(ctx, job.id)
