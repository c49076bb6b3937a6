"""The job's safety report (the HTTP API's Report object), built from the stage outputs."""

from __future__ import annotations

from typing import Any

from service.pipeline.context import StageContext
from service.state.records import (
    EvaluateOutput,
    GateOutput,
    RelockOutput,
    ResolveLockOutput,
    TrainOutput,
)


def build_report(sc: StageContext, decision: str, reasons: list[str]) -> dict[str, Any]:
    """Outputs a crashed fail-closed stage left unwritten show as null (or an empty curve)."""
    job = sc.job
    relock = sc.output(RelockOutput)
    evaluation = sc.output(EvaluateOutput)
    gate = sc.output(GateOutput)
    lock = sc.output(ResolveLockOutput)
    return {
        "job_id": job.id,
        "base_model": job.model,
        "lock": {"base_model": lock.base_model, "version": lock.version} if lock else None,
        **{name: _eval(evaluation, name) for name in ("base", "unlocked", "relocked")},
        "alpha": relock.alpha if relock else None,
        "alpha_curve": [point.model_dump() for point in relock.curve] if relock else [],
        "selection": {"base": relock.base, "unlocked": relock.unlocked} if relock else None,
        "decision": decision,
        "reasons": reasons,
        "policy": (gate.policy if gate else None) or (relock.policy if relock else None),
        "samples": [sample.model_dump() for sample in evaluation.samples] if evaluation else [],
        "stage_seconds": dict(job.stage_seconds),
        "repair": _repair(sc),
        "transfer": _transfer(relock),
        "veto": relock.veto.model_dump() if relock and relock.veto else None,
    }


def _transfer(relock: RelockOutput | None) -> dict[str, Any] | None:
    """The transfer figures the report shows (the per-head cosines stay in relock's output)."""
    if relock is None or relock.transfer is None:
        return None
    return relock.transfer.model_dump(exclude={"head_cosines"})


def _repair(sc: StageContext) -> dict[str, Any] | None:
    """The fallback repair, disclosed: how much safety data went in and why it ran."""
    repair = sc.job.repair
    if repair is None:
        return None
    train = sc.output(TrainOutput)
    added = train.safety_examples if train and train.attempt == sc.job.attempt else None
    return {**repair.model_dump(), "safety_examples": added}


def _eval(evaluation: EvaluateOutput | None, name: str) -> dict[str, Any] | None:
    """One model's Eval object: its figures, and its figures per category of harmful prompts
    where evaluate measured them (older outputs have none, so the key is left out)."""
    figures = getattr(evaluation, name) if evaluation else None
    if figures is None:
        return None
    categories = (evaluation.per_category or {}).get(name)
    if categories is None:
        return figures
    return {**figures, "per_category": {c: f.model_dump() for c, f in categories.items()}}
