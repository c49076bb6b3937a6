"""The job's safety report (the HTTP API's Report object), built from the stage outputs."""

from __future__ import annotations

from typing import Any

from service.pipeline.context import StageContext


def build_report(sc: StageContext, decision: str, reasons: list[str]) -> dict[str, Any]:
    job = sc.job
    relock = sc.output("relock") or {}
    evaluation = sc.output("evaluate") or {}
    gate = sc.output("gate") or {}
    lock = sc.output("resolve_lock")
    return {
        "job_id": job.id,
        "base_model": job.model,
        "lock": {"base_model": lock["base_model"], "version": lock["version"]} if lock else None,
        "base": evaluation.get("base"),
        "unlocked": evaluation.get("unlocked"),
        "relocked": evaluation.get("relocked"),
        "alpha": relock.get("alpha"),
        "alpha_curve": relock.get("curve", []),
        "selection": {"base": relock["base"], "unlocked": relock["unlocked"]} if relock else None,
        "decision": decision,
        "reasons": reasons,
        "policy": gate.get("policy") or relock.get("policy"),
        "stage_seconds": dict(job.stage_seconds),
    }
