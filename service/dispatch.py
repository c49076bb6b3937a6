"""Handing a job to a worker: a Celery task by name (cluster) or a thread (embedded).

The API owns its dispatcher (`create_app`), the sweeper borrows one; the service context
knows nothing of dispatch, so the workflow never imports its own caller.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from service.context import ServiceContext
from service.settings import Settings

log = logging.getLogger(__name__)

RUN_JOB_TASK = "safetylock.run_job"


class Dispatcher(Protocol):
    def submit(self, job_id: str, model: str) -> None: ...


def open_dispatcher(ctx: ServiceContext) -> Dispatcher:
    """Threads of this process in embedded mode, Celery in cluster mode."""
    return EmbeddedDispatcher(ctx) if ctx.settings.embedded else CeleryDispatcher(ctx.settings)


class EmbeddedDispatcher:
    """Runs each job's workflow in a background thread of this process, one at a time."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="safetylock-job")

    def submit(self, job_id: str, model: str) -> None:
        self._pool.submit(self._run, job_id, model)

    def resume_pending(self) -> int:
        """Resubmit every unfinished job (after a restart of the embedded service)."""
        records = self._ctx.records
        pending = [j for t in records.tenants() for j in records.list_jobs(t.id) if not j.terminal]
        for job in reversed(pending):  # oldest first
            self.submit(job.id, job.model)
        return len(pending)

    def _run(self, job_id: str, model: str) -> None:
        from service.pipeline.workflow import JobBusy, run_job

        try:
            run_job(self._ctx, job_id)
        except JobBusy:  # an earlier process's lease has not lapsed yet: look again later
            timer = threading.Timer(self._ctx.settings.lease_seconds, self.submit, args=[job_id, model])
            timer.daemon = True
            timer.start()
        except Exception:  # the workflow records its own failures; this is the last resort
            log.exception("job %s crashed", job_id)


class CeleryDispatcher:
    """Enqueues by task name, so the API process never imports torch or TRL."""

    def __init__(self, settings: Settings) -> None:
        from service.worker.celery_app import QUEUE, make_celery

        self._app = make_celery(settings)
        self._queues, self._default_queue = settings.queues, QUEUE

    def submit(self, job_id: str, model: str) -> None:
        """Enqueue on the base model's queue (the workers with fitting accelerators)."""
        self._app.send_task(RUN_JOB_TASK, args=[job_id], queue=self._queues.get(model, self._default_queue))
