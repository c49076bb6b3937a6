"""The workflow's guards, in embedded mode (local store, SQLite): the redelivery cap,
the lease that keeps a job to one worker, and finished jobs left alone."""

from __future__ import annotations

import pytest

from service.context import ServiceContext
from service.pipeline.workflow import JobBusy, run_job
from service.settings import Settings
from service.state.records import JobRecord, new_id


@pytest.fixture
def ctx(tmp_path) -> ServiceContext:
    return ServiceContext(Settings(data_dir=tmp_path, broker_url=None, redis_url=None, store_url=None,
                                   max_deliveries=2, lease_seconds=30))


def _job(ctx: ServiceContext, **fields) -> JobRecord:
    tenant, _ = ctx.records.create_tenant("t")
    job = JobRecord(id=new_id("ftjob"), tenant=tenant.id, model="m", training_file="file-x", **fields)
    ctx.records.add_job(job)
    return job


def test_a_job_lost_too_often_fails_once(ctx) -> None:
    job = _job(ctx, status="running", stage="train", deliveries=2)
    assert run_job(ctx, job.id) == "failed"
    record = ctx.records.get_job(job.id)
    assert record.error.code == "worker_lost" and record.deliveries == 3
    messages = [e.message for e in ctx.records.events(job.id)]
    assert "Resuming the job after a lost worker (delivery 3)." in messages and messages[-1] == "Job failed."
    assert ctx.store.exists(f"jobs/{job.tenant}/{job.id}/job.json")  # the record's mirror
    assert run_job(ctx, job.id) == "failed" and ctx.records.get_job(job.id).deliveries == 3  # terminal: untouched


def test_a_leased_job_is_not_run_twice(ctx) -> None:
    job = _job(ctx)
    assert ctx.records.kv.acquire(f"lease:{job.id}", "another-worker", 30)
    with pytest.raises(JobBusy):
        run_job(ctx, job.id)
    assert ctx.records.get_job(job.id).deliveries == 0


def test_a_cancelled_job_never_runs(ctx) -> None:
    job = _job(ctx, status="cancelled", cancel_requested=True)
    assert run_job(ctx, job.id) == "cancelled"
    assert ctx.records.events(job.id) == [] and ctx.records.get_job(job.id).deliveries == 0
    assert run_job(ctx, new_id("ftjob")) is None
