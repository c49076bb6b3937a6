"""Fine-tuning jobs: create (enqueued by id), list, retrieve, cancel, events (+ SSE), report
(JSON, and as an HTML page)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Header
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from sdk.types import SafetyReport
from service.api.deps import Context, Dispatch, Tenant, checked_id
from service.api.errors import APIError, not_found
from service.api.lock_lookup import LockNotFound, find_lock
from service.api.pagination import page, page_of_ids
from service.pipeline.gate import GatePolicy
from service.reports.html import CONTENT_SECURITY_POLICY, report_page
from service.state.records import (
    FINAL_STAGES,
    EventRecord,
    Hyperparameters,
    JobRecord,
    JobStatus,
    new_id,
    now,
)
from service.state.repo import JobConflict, TooManyActiveJobs
from service.store_layout import job_key
from service.sweeper import dispatch

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["jobs"])
RETRY_AFTER_SECONDS = 30
"""Retry-After of a create refused for the tenant's cap of unfinished jobs (jobs take minutes)."""


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    training_file: str = Field(min_length=1, max_length=100)
    validation_file: str | None = Field(None, min_length=1, max_length=100)
    method: Literal["lora", "full"] = "lora"
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    suffix: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,40}$")
    gate_policy: dict[str, float] = Field(default_factory=dict)
    lock_version: int | None = Field(None, ge=1)


def _own(ctx: Context, tenant: Tenant, job_id: str) -> JobRecord:
    record = ctx.records.get_job_for(tenant.id, checked_id("job", job_id))
    if record is None:
        raise not_found("job", job_id)
    return record


@router.post("")
def create(
    ctx: Context,
    dispatcher: Dispatch,
    tenant: Tenant,
    body: JobCreate,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> dict:
    """Store the job, then hand it to the workers. With an Idempotency-Key the job's id
    derives from it, so a retry after a failure half-way finds the job it created."""
    job_id = ctx.records.derived_id("ftjob", f"{tenant.id}:{idempotency_key}") if idempotency_key else new_id("ftjob")
    if (existing := ctx.records.get_job(job_id)) is not None:
        if existing.model_dump(include=set(JobCreate.model_fields)) != body.model_dump():
            raise APIError(400, "idempotency_key_reused", "This Idempotency-Key was used for a different request.")
        return _resume_dispatch(ctx, dispatcher, existing).public()
    for param in ("training_file", "validation_file"):
        file_id = getattr(body, param)
        if file_id is not None and ctx.records.get_file(tenant.id, checked_id("file", file_id, param)) is None:
            raise not_found("file", file_id, param)
    if body.validation_file == body.training_file:
        raise APIError(
            422, "validation_file_is_training_file",
            f"validation_file {body.validation_file} is also the training_file: a validation loss measured on the "
            "training examples shows memorisation, not how the model generalises. Upload held-out examples as a "
            "separate file, or leave validation_file out.",
            "validation_file",
        )
    if body.model not in ctx.settings.base_models:
        known = ", ".join(sorted(ctx.settings.base_models)) or "none configured"
        raise APIError(400, "model_not_found", f"Unknown base model {body.model!r}; known: {known}.", "model")
    try:
        GatePolicy.current(ctx.settings, ctx.records.kv).check_overrides(body.gate_policy)
    except ValueError as exc:
        raise APIError(400, "invalid_gate_policy", str(exc), "gate_policy") from exc
    try:
        lock = find_lock(ctx.registry, body.model, body.lock_version, ttl=ctx.settings.lock_lookup_seconds)
    except LockNotFound as exc:
        raise APIError(400, "lock_not_found", str(exc), "lock_version" if body.lock_version else "model") from exc
    job = JobRecord(id=job_id, tenant=tenant.id, dispatched_at=time.time(), lock=lock, **body.model_dump())
    try:
        ctx.records.add_job_within_cap(job, ctx.settings.max_active_jobs_per_tenant)
    except TooManyActiveJobs as exc:
        raise APIError(
            429, "too_many_active_jobs",
            f"This tenant has {exc.active} unfinished fine-tuning jobs; the limit is {exc.limit}. Retry when one has "
            "finished (or cancel one).",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from exc
    except JobConflict:  # a concurrent retry with the same key stored it first
        return _resume_dispatch(ctx, dispatcher, ctx.records.get_job(job.id)).public()
    ctx.records.add_event(job.id, f"Created fine-tuning job {job.id} on {job.model}.", once="created")
    dispatch(ctx, dispatcher, job)  # stored is accepted: a failed hand-over is the sweeper's to retry
    return job.public()


def _resume_dispatch(ctx: Context, dispatcher: Dispatch, job: JobRecord) -> JobRecord:
    """A retried create: hand the stored job over again if its first hand-over failed."""
    ctx.records.add_event(job.id, f"Created fine-tuning job {job.id} on {job.model}.", once="created")
    if job.dispatched_at is None and not job.terminal:
        dispatch(ctx, dispatcher, job)
    return job


@router.get("")
def list_jobs(ctx: Context, tenant: Tenant, status: JobStatus | None = None, limit: int = 20, after: str | None = None) -> dict:
    if status is None:  # only this page's records are read
        return page_of_ids(ctx.records.job_ids(tenant.id), limit=limit, after=after,
                           fetch=lambda ids: ctx.records.get_jobs(tenant.id, ids), render=JobRecord.public)
    jobs = [j for j in ctx.records.list_jobs(tenant.id) if j.status == status]
    return page(jobs, limit=limit, after=after, render=JobRecord.public)


@router.get("/{job_id}")
def retrieve(ctx: Context, tenant: Tenant, job_id: str) -> dict:
    return _own(ctx, tenant, job_id).public()


@router.post("/{job_id}/cancel")
def cancel(ctx: Context, tenant: Tenant, job_id: str) -> dict:
    job = _own(ctx, tenant, job_id)

    def request(record: JobRecord) -> None:
        if record.stage in FINAL_STAGES:  # the worker committed to publish or reject
            raise JobConflict(f"job {job_id} is in its final stage")
        record.cancel_requested = True
        if record.status in ("validating_files", "queued"):  # nothing running: cancel at once
            record.status, record.finished_at = "cancelled", now()

    try:
        job = ctx.records.update_job(job.id, request, only_if=("validating_files", "queued", "running"))
    except JobConflict as exc:
        current = ctx.records.get_job(job.id) or job
        state = f"in its final stage ({current.stage})" if current.stage in FINAL_STAGES and not current.terminal \
            else f"already {current.status}"
        raise APIError(409, "job_not_cancellable", f"Job {job_id} is {state}.") from exc
    ctx.records.add_event(job.id, "Cancellation requested.", once="cancel_requested")
    if job.status == "cancelled":  # it was not running: nothing else will record the end
        ctx.records.add_event(job.id, "Job cancelled.", level="warn", once="finished")
    return job.public()


@router.get("/{job_id}/events")
def events(ctx: Context, tenant: Tenant, job_id: str, limit: int = 20, after: str | None = None, stream: bool = False):
    job = _own(ctx, tenant, job_id)
    if stream:
        return StreamingResponse(_sse(ctx, job.id, after), media_type="text/event-stream")
    return page(ctx.records.events(job.id), limit=limit, after=after, render=EventRecord.public)


async def _sse(ctx: Context, job_id: str, after: str | None) -> AsyncIterator[str]:
    """`data: <event json>` per event, oldest first, until the job is terminal and drained.
    The records are read in a worker thread: a slow store never blocks the event loop."""
    seen = 0
    if after is not None:
        ids = [e.id for e in await run_in_threadpool(ctx.records.events, job_id)]
        seen = ids.index(after) + 1 if after in ids else 0
    while True:
        terminal = (await run_in_threadpool(ctx.records.get_job, job_id)).terminal  # before the events: none is missed
        events = await run_in_threadpool(ctx.records.events, job_id)
        for event in events[seen:]:
            yield f"data: {json.dumps(event.public())}\n\n"
        seen = len(events)
        if terminal:
            return
        await asyncio.sleep(0.5)


@router.get("/{job_id}/report")
def report(ctx: Context, tenant: Tenant, job_id: str) -> dict:
    job = _own(ctx, tenant, job_id)
    key = job_key(job, "report.json")
    if not ctx.store.exists(key):
        raise APIError(404, "report_not_found", f"Job {job_id} has no safety report yet (status {job.status}, stage {job.stage}).")
    return json.loads(ctx.store.get_bytes(key))


@router.get("/{job_id}/report.html", response_class=HTMLResponse)
def report_html(ctx: Context, tenant: Tenant, job_id: str) -> HTMLResponse:
    """The same report as a page a person reads: the figures, the alpha curve and the harmful
    rates per category as inline SVG plots beside their tables. It has no script and fetches
    nothing; its Content-Security-Policy allows only its own inline style."""
    html = report_page(SafetyReport.model_validate(report(ctx, tenant, job_id)))
    return HTMLResponse(html, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY,
                                       "X-Content-Type-Options": "nosniff"})
