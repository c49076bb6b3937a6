"""Everything a request or a worker needs, built once from `Settings`.

The API process builds this too, so it must stay light: the object store and the
registry read JSON and bytes; torch is only imported by the pipeline stages.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from service.settings import Settings
from service.state.kv import open_kv
from service.state.records import JobRecord
from service.state.repo import Records

log = logging.getLogger(__name__)

RUN_JOB_TASK = "safetylock.run_job"


class Dispatcher(Protocol):
    def submit(self, job_id: str, model: str) -> None: ...


@dataclass
class ServiceContext:
    settings: Settings
    stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set when this worker shuts down: a running job stops at its next training step and
    is handed back to the queue (workflow `HandedBack`), resumable by another worker."""

    @cached_property
    def store(self) -> Any:
        from lock_registry.store import open_store

        return open_store(self.settings.resolved_store_url, endpoint_url=self.settings.s3_endpoint_url)

    @cached_property
    def registry(self) -> Any:
        from lock_registry.registry import LockRegistry

        return LockRegistry(self.store)

    @cached_property
    def records(self) -> Records:
        kv = open_kv(self.settings.resolved_redis_url, self.settings.data_dir / "state.sqlite3")
        return Records(kv, self.settings.api_key_pepper, on_job_change=self._mirror_job)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return EmbeddedDispatcher(self) if self.settings.embedded else CeleryDispatcher(self.settings)

    def _mirror_job(self, job: JobRecord) -> None:
        """Keep `jobs/{tenant}/{job}/job.json` equal to the record."""
        self.store.put_bytes(job_key(job, "job.json"), job.model_dump_json(indent=2).encode())


def job_key(job: JobRecord, *parts: str) -> str:
    return "/".join(("jobs", job.tenant, job.id, *parts))


def model_key(tenant: str, model_id: str, *parts: str) -> str:
    return "/".join(("models", tenant, model_id, *parts))


def dumps(data: Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode()


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
