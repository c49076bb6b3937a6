"""The job's safety report (the HTTP API's Report object), built from the stage outputs."""

from __future__ import annotations

from typing import Any

from service.pipeline.context import StageContext
from service.state.records import EvaluateOutput, GateOutput, RelockOutput, ResolveLockOutput


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
        "base": evaluation.base if evaluation else None,
        "unlocked": evaluation.unlocked if evaluation else None,
        "relocked": evaluation.relocked if evaluation else None,
        "alpha": relock.alpha if relock else None,
        "alpha_curve": [point.model_dump() for point in relock.curve] if relock else [],
        "selection": {"base": relock.base, "unlocked": relock.unlocked} if relock else None,
        "decision": decision,
        "reasons": reasons,
        "policy": (gate.policy if gate else None) or (relock.policy if relock else None),
        "stage_seconds": dict(job.stage_seconds),
    }
