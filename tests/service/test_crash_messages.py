"""A crashed stage tells the customer an incident id, never the exception's text (which
may hold internal endpoints and paths); the worker's log has the details. Lock errors,
written for people, are shown. Embedded service with stand-in stages."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from lock_registry.errors import LockShapeError
from service.context import ServiceContext
from service.pipeline import workflow
from service.pipeline.context import StageContext
from service.settings import Settings
from service.state.records import GateOutput
from tests.service.helpers import add_job, placeholder_output, stand_in_stages

SECRET = "could not reach http://10.0.0.7:9000/platform-bucket with key AKIAXXXX at /srv/secrets/s3.json"


@pytest.fixture
def ctx(tmp_path) -> ServiceContext:
    return ServiceContext(Settings(data_dir=tmp_path, broker_url=None, redis_url=None, store_url=None))


def _run_with(ctx, monkeypatch, crash_in: str, exc: Exception, before_crash=None, **job_fields):
    job = add_job(ctx, **job_fields)

    def stage(name: str):
        def run(sc):
            if name == crash_in:
                if before_crash is not None:
                    before_crash(sc)
                raise exc
            return placeholder_output(name)
        return SimpleNamespace(run=run)

    stand_in_stages(monkeypatch, stage)
    return job, workflow.run_job(ctx, job.id)


def _public_text(ctx, job) -> str:
    record = ctx.records.get_job(job.id)
    events = " ".join(e.message for e in ctx.records.events(job.id))
    return f"{record.error.message if record.error else ''} {events}"


def test_a_crash_outside_the_gate_shows_an_incident_not_the_exception(ctx, monkeypatch, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger=workflow.log.name):
        job, status = _run_with(ctx, monkeypatch, "train", RuntimeError(SECRET))
    record = ctx.records.get_job(job.id)
    assert status == "failed" and record.error.code == "train_failed"
    public = _public_text(ctx, job)
    assert "10.0.0.7" not in public and "/srv/secrets" not in public and "RuntimeError" not in public
    incident = record.error.message.split("incident ", 1)[1].split(";", 1)[0]
    assert incident.startswith("inc-") and incident in caplog.text and SECRET in caplog.text


def test_a_crash_in_a_fail_closed_stage_rejects_with_an_incident(ctx, monkeypatch) -> None:
    job, status = _run_with(ctx, monkeypatch, "relock", OSError(SECRET))
    gate = StageContext(ctx, job.id).require(GateOutput)
    assert status == "failed" and gate.passed is False and gate.crashed_stage == "relock"
    assert "incident inc-" in gate.reasons[0] and "10.0.0.7" not in " ".join(gate.reasons)
    assert "10.0.0.7" not in _public_text(ctx, job)


def test_a_lock_error_is_shown_as_written(ctx, monkeypatch) -> None:
    job, _ = _run_with(ctx, monkeypatch, "relock", LockShapeError("the lock has 30 layers, the model 4"))
    reason = StageContext(ctx, job.id).require(GateOutput).reasons[0]
    assert reason == "relock failed: LockShapeError: the lock has 30 layers, the model 4"


def test_a_cancel_accepted_before_a_fail_closed_stage_crashes_still_wins(ctx, monkeypatch) -> None:
    def cancel(sc) -> None:  # as the API records it while the stage runs
        sc.ctx.records.update_job(sc.job_id, lambda j: setattr(j, "cancel_requested", True))

    job, status = _run_with(ctx, monkeypatch, "evaluate", RuntimeError("boom"), before_crash=cancel)
    assert status == "cancelled" and ctx.records.get_job(job.id).status == "cancelled"
    assert "Job cancelled during before reject." in [e.message for e in ctx.records.events(job.id)]
