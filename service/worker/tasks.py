"""The workflow task. It receives a job id and re-reads everything from the records, so
it is idempotent and safe to run again after a lost worker (acks_late).

Warm shutdown (SIGTERM, solo pool: the task runs in the worker's main process) sets the
context's `stopping` flag: the running job stops at its next training step or stage
boundary and its message is requeued (`Reject(requeue=True)`) for another worker.
"""

from __future__ import annotations

from functools import lru_cache

from celery.exceptions import Reject
from celery.signals import worker_shutting_down

from service.context import RUN_JOB_TASK, ServiceContext
from service.settings import get_settings
from service.worker.celery_app import make_celery

app = make_celery(get_settings())


@lru_cache
def context() -> ServiceContext:
    return ServiceContext(get_settings())


@worker_shutting_down.connect
def _hand_back_on_shutdown(**_: object) -> None:
    context().stopping.set()


@app.task(name=RUN_JOB_TASK, bind=True, max_retries=None)
def run_job_task(self, job_id: str) -> str | None:
    from service.pipeline.workflow import HandedBack, JobBusy, run_job

    if context().stopping.is_set():  # a message taken while shutting down goes straight back
        raise Reject("worker shutting down", requeue=True)
    try:
        return run_job(context(), job_id)
    except JobBusy as exc:  # another live worker runs it; look again when its lease could lapse
        raise self.retry(countdown=context().settings.lease_seconds, exc=exc) from exc
    except HandedBack as exc:
        raise Reject(str(exc), requeue=True) from exc
