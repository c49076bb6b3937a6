"""The workflow task. It receives a job id and re-reads everything from the records, so
it is idempotent and safe to run again after a lost worker (acks_late).

Warm shutdown (SIGTERM, solo pool: the task runs in the worker's main process) sets the
context's `stopping` flag: the running job stops at its next training step or stage
boundary and its message is requeued (`Reject(requeue=True)`) for another worker.
An error that escapes the workflow (Redis or the store unreachable while it records a
step) retries the task with backoff; if even that fails, the sweeper this worker runs
finds the job stranded and dispatches it again, so no job is acked and forgotten.
"""

from __future__ import annotations

import logging
import os
import socket
from functools import lru_cache

from celery.exceptions import Reject
from celery.signals import worker_ready, worker_shutting_down

from service.context import ServiceContext
from service.dispatch import RUN_JOB_TASK, CeleryDispatcher
from service.settings import get_settings
from service.sweeper import Sweeper
from service.worker.celery_app import make_celery

log = logging.getLogger(__name__)
app = make_celery(get_settings())
MAX_BACKOFF_SECONDS = 300


@lru_cache
def context() -> ServiceContext:
    return ServiceContext(get_settings())


@worker_shutting_down.connect
def _hand_back_on_shutdown(**_: object) -> None:
    context().stopping.set()


@worker_ready.connect
def _start_sweeper(**_: object) -> None:
    ctx = context()
    Sweeper(ctx, CeleryDispatcher(ctx.settings), owner=f"{socket.gethostname()}:{os.getpid()}").start()


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
    except Exception as exc:  # escaped the workflow's own handling: run it again later
        countdown = min(MAX_BACKOFF_SECONDS, 5 * 2 ** self.request.retries)
        log.exception("job %s: the task failed; retrying in %s s", job_id, countdown)
        raise self.retry(countdown=countdown, exc=exc) from exc
