"""The sweeper: no job is stranded and no store copy stays stale.

A job is stranded when it is unfinished, no worker holds its lease, and it was last
handed to the workers more than `redispatch_seconds` ago, or the hand-over failed (a
message the broker lost, a task that gave up, a dispatch that failed as the job was
created). The sweeper dispatches it again. The workflow resumes from its last finished
stage and counts every delivery against `max_deliveries`, so a job that keeps failing
ends `failed`: every job reaches exactly one terminal state.
A duplicate message (the job was only waiting in a long queue) is harmless: the lease
keeps a job to one worker and a finished job is left as it is.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from service import mirror
from service.context import ServiceContext
from service.dispatch import Dispatcher
from service.pipeline.lease import lease_key
from service.state.records import JobRecord
from service.state.repo import JobConflict

log = logging.getLogger(__name__)

ACTIVE = ("validating_files", "queued", "running")
SWEEP_LEASE = "sweeper"


@dataclass(frozen=True)
class SweepReport:
    redispatched: list[str] = field(default_factory=list)
    repaired: int = 0


def dispatch(ctx: ServiceContext, dispatcher: Dispatcher, job: JobRecord) -> bool:
    """Hand `job` to the workers; False if the broker refused it (the next sweep retries).

    The record's `dispatched_at` already says now (written with the record, or by the
    sweeper), so a process that dies right here leaves a job the sweeper finds later;
    a refused hand-over clears it, so the next sweep retries at once.
    """
    try:
        dispatcher.submit(job.id, job.model)
    except Exception:  # any broker failure: the job is stored, the sweeper hands it over
        log.exception("job %s: dispatch failed; the sweeper retries it", job.id)
        ctx.records.add_event(job.id, "Handing the job to the workers failed; it is retried shortly.", level="warn")
        _set_dispatched(ctx, job.id, None)
        return False
    return True


def sweep(ctx: ServiceContext, dispatcher: Dispatcher, *, now: float | None = None) -> SweepReport:
    """Dispatch every stranded job again and repair stale store copies."""
    now = time.time() if now is None else now
    due = now - ctx.settings.redispatch_seconds
    redispatched = []
    for tenant in ctx.records.tenants():
        for job in ctx.records.list_jobs(tenant.id):
            if job.terminal or ctx.records.kv.get(lease_key(job.id)) is not None:
                continue
            if job.dispatched_at is not None and job.dispatched_at > due:
                continue
            log.warning("job %s: stranded (%s, last dispatched %s); dispatching it again",
                        job.id, job.status, job.dispatched_at)
            ctx.records.add_event(job.id, "No worker had the job; handing it to the workers again.", level="warn")
            _set_dispatched(ctx, job.id, now)
            if dispatch(ctx, dispatcher, job):
                redispatched.append(job.id)
    return SweepReport(redispatched=redispatched, repaired=mirror.repair(ctx))


class Sweeper(threading.Thread):
    """Sweeps every `sweep_seconds`; of several processes, one sweeps per period (a KV lease)."""

    def __init__(self, ctx: ServiceContext, dispatcher: Dispatcher, owner: str) -> None:
        super().__init__(daemon=True, name="safetylock-sweeper")
        self.ctx, self.dispatcher, self.owner = ctx, dispatcher, owner
        self.stopped = threading.Event()

    def run(self) -> None:
        period = self.ctx.settings.sweep_seconds
        while not self.stopped.wait(period):
            try:
                if self.ctx.records.kv.acquire(SWEEP_LEASE, self.owner, period * 0.9):
                    sweep(self.ctx, self.dispatcher)
            except Exception:  # Redis or the store down: sweep again next period
                log.exception("sweep failed; retrying in %s s", period)


def _set_dispatched(ctx: ServiceContext, job_id: str, when: float | None) -> None:
    def change(job: JobRecord) -> None:
        job.dispatched_at = when

    try:
        ctx.records.update_job(job_id, change, only_if=ACTIVE)
    except JobConflict:  # finished or cancelled meanwhile: nothing to remember
        pass
