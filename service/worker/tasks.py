"""The workflow task. It receives a job id and re-reads everything from the records, so
it is idempotent and safe to run again after a lost worker (acks_late)."""

from __future__ import annotations

from functools import lru_cache

from service.context import RUN_JOB_TASK, ServiceContext
from service.settings import get_settings
from service.worker.celery_app import make_celery

app = make_celery(get_settings())


@lru_cache
def context() -> ServiceContext:
    return ServiceContext(get_settings())


@app.task(name=RUN_JOB_TASK, bind=True, max_retries=None)
def run_job_task(self, job_id: str) -> str | None:
    from service.pipeline.workflow import JobBusy, run_job

    try:
        return run_job(context(), job_id)
    except JobBusy as exc:  # another live worker runs it; look again when its lease could lapse
        raise self.retry(countdown=context().settings.lease_seconds, exc=exc) from exc
