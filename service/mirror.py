"""The store's copies of a job's record and event log: `job.json` and `events.json`.

The records (Redis or SQLite) are the truth; the copies keep a job's history beside its
artifacts. A copy that fails (the store is down) never undoes or fails the state change
it follows: the job goes on a stale list and `repair` (the sweeper) copies it again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lock_registry.store.errors import StoreError
from service.state.records import JobRecord
from service.store_layout import dumps, job_key

if TYPE_CHECKING:
    from service.context import ServiceContext

log = logging.getLogger(__name__)

STALE = "mirror:stale"
"""KV list of job ids whose copies may be behind their records."""


def copy_job(ctx: ServiceContext, job: JobRecord) -> None:
    """Write `job.json`; on failure remember the job as stale."""
    _guarded(ctx, job, lambda: _put_job(ctx, job))


def copy_events(ctx: ServiceContext, job: JobRecord) -> None:
    """Write `events.json`; on failure remember the job as stale."""
    _guarded(ctx, job, lambda: _put_events(ctx, job))


def repair(ctx: ServiceContext) -> int:
    """Copy every stale job again (record and events); returns how many are now current."""
    repaired = 0
    for job_id in dict.fromkeys(ctx.records.kv.items(STALE)):
        job = ctx.records.get_job(job_id)
        if job is not None:
            try:
                _put_job(ctx, job)
                _put_events(ctx, job)
            except (StoreError, OSError) as exc:  # the store is still down: try again next sweep
                log.warning("job %s: copies still stale (%s)", job_id, exc)
                continue
            if ctx.records.get_job(job_id) != job:  # changed while copying: copy again next time
                continue
        ctx.records.kv.remove(STALE, job_id)
        repaired += 1
    return repaired


def _guarded(ctx: ServiceContext, job: JobRecord, write) -> None:
    try:
        write()
    except (StoreError, OSError) as exc:
        log.warning("job %s: could not copy to the store (%s); marked stale", job.id, exc)
        ctx.records.kv.append(STALE, job.id)


def _put_job(ctx: ServiceContext, job: JobRecord) -> None:
    ctx.store.put_bytes(job_key(job, "job.json"), job.model_dump_json(indent=2).encode())


def _put_events(ctx: ServiceContext, job: JobRecord) -> None:
    events = [e.public() for e in ctx.records.events(job.id)]
    ctx.store.put_bytes(job_key(job, "events.json"), dumps(events))
