"""One job's workflow: the stages of `STAGES` in order, each skipped when its output is
already stored, then the gate's decision (`PUBLISH` or `REJECT`).

A job runs under a lease (a key with an expiry, renewed by a heartbeat thread), so two
workers never run it at once; a worker that dies stops renewing and its lease lapses,
and the redelivered task resumes from the last finished stage. Every status change is
a conditional update: a cancelled or finished job is never brought back to life.
Any exception in relock, evaluate, gate or publish rejects the job: the gate fails closed.
A worker that shuts down (SIGTERM) hands the job back instead of finishing it: training
stops at its next step, and no new stage starts (`HandedBack`; the task requeues itself).
A suspended tenant's job stops at the next stage boundary, during training at its next
step, and before publishing (it fails with `tenant_suspended`, nothing published; any other
stage under way finishes first).
A job the gate rejects gets one fallback repair where the operator opted in
(`repair.py`): train, relock, evaluate and gate run again as attempt 2, and a stored
output counts as done only for the attempt that wrote it.
"""

from __future__ import annotations

import logging
import time

from service.context import ServiceContext
from service.mirror import copy_events
from service.outages import UNAVAILABLE
from service.pipeline import (
    evaluate,
    gate,
    publish,
    reject,
    relock,
    repair,
    resolve_lock,
    train,
    validate,
)
from service.pipeline.context import FinalResult, Stage, StageContext, StageFailure
from service.pipeline.incidents import new_incident, public_reason
from service.pipeline.lease import JobLease, LeaseLost
from service.state.records import (
    ErrorInfo,
    EvaluateOutput,
    GateOutput,
    JobRecord,
    RelockOutput,
    ResolveLockOutput,
    TrainOutput,
    ValidateOutput,
    now,
)
from service.state.repo import JobConflict

log = logging.getLogger(__name__)

STAGES: tuple[Stage, ...] = (
    Stage("validate", validate.run, ValidateOutput),
    Stage("resolve_lock", resolve_lock.run, ResolveLockOutput),  # before training: a lock gone since create costs none
    Stage("train", train.run, TrainOutput),
    Stage("relock", relock.run, RelockOutput),
    Stage("evaluate", evaluate.run, EvaluateOutput),
    Stage("gate", gate.run, GateOutput),
)
"""Every job runs these in order; each one's output is stored, and a resumed job skips it."""
# The final decision, taken by the gate's output. Not in STAGES: it is entered by a
# compare-and-set that ends cancelling, runs again in full on resume (publish rewrites the
# same model) and ends the job with its result instead of storing an output.
PUBLISH = Stage("publish", publish.run, FinalResult)
REJECT = Stage("reject", reject.run, FinalResult)

ACTIVE = ("validating_files", "queued", "running")
FAIL_CLOSED = frozenset({"relock", "evaluate", "gate", "publish"})


class JobBusy(Exception):
    """Another worker holds the job's lease; try again after it lapses."""


class HandedBack(Exception):
    """The worker is shutting down: the job stopped at a resumable point (the stage outputs
    so far, training's newest checkpoint) and goes back to the queue for another worker."""

    def __init__(self, where: str) -> None:
        super().__init__(f"worker shutting down; job handed back {where}")
        self.where = where


class DependencyDown(Exception):
    """The store or Redis could not be reached: the job stops where it is and the task runs
    it again later; this delivery does not count towards `max_deliveries`."""


class Cancelled(Exception):
    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


def run_job(ctx: ServiceContext, job_id: str) -> str | None:
    """Run or resume `job_id`; returns its final status (None if it does not exist).

    Raises JobBusy when another live worker holds the job.
    """
    job = ctx.records.get_job(job_id)
    if job is None or job.terminal:
        return job.status if job else None
    lease = JobLease(ctx.records.kv, job_id, ctx.settings.lease_seconds)
    if not lease.acquire():
        raise JobBusy(job_id)
    with lease:
        return _run(StageContext(ctx, job_id, lease=lease))


def _run(sc: StageContext) -> str:
    ctx, job_id = sc.ctx, sc.job_id
    try:
        job = ctx.records.update_job(job_id, _count_delivery, only_if=ACTIVE)
    except JobConflict:
        return sc.job.status
    if job.deliveries > 1:
        sc.event(f"Resuming the job after a lost worker (delivery {job.deliveries}).", level="warn",
                 once=f"delivery:{job.deliveries}")
    if job.deliveries > ctx.settings.max_deliveries:
        return _finish(sc, "failed", ErrorInfo(code="worker_lost", message=(
            f"The job's worker was lost {job.deliveries - 1} times; giving up.")))
    try:
        for stage in STAGES:
            _run_stage(sc, stage)
        decision = sc.require(GateOutput)
        if repair.requested(sc, decision):
            if obstacle := repair.obstacle(sc, decision):
                sc.event(f"No repair: {obstacle}.", level="warn", once="repair:none")
            else:
                repair.begin(sc, decision)
                for stage in STAGES:
                    _run_stage(sc, stage)
                decision = sc.require(GateOutput)
        return _run_final(sc, PUBLISH if decision.passed else REJECT)
    except Cancelled as exc:
        sc.event(f"Job cancelled during {exc.where}.", level="warn", once="cancelled")
        return _finish(sc, "cancelled", None)
    except StageFailure as exc:
        sc.event(exc.error.message, level="error", once="failed")
        return _finish(sc, "failed", exc.error)
    except JobConflict:
        return sc.job.status  # cancelled or finished under us: leave it as it is
    except LeaseLost:
        log.error("job %s: another worker took it over; this one stops without publishing", job_id)
        return sc.job.status
    except HandedBack as exc:  # not a lost worker: this delivery does not count towards the cap
        ctx.records.update_job(job_id, _uncount_delivery, only_if=ACTIVE)
        sc.event(f"The worker is shutting down: job handed back {exc.where}; another worker resumes it.",
                 level="warn")
        raise
    except UNAVAILABLE as exc:  # an outage, not a fault of the job: run it again when it is over
        log.warning("job %s: a backend is unreachable (%s); the task runs it again later", job_id, exc)
        try:
            ctx.records.update_job(job_id, _uncount_delivery, only_if=ACTIVE)
        except Exception:  # Redis itself is down: this delivery stays counted
            log.warning("job %s: could not give the delivery back", job_id, exc_info=True)
        raise DependencyDown(str(exc)) from exc
    except Exception as exc:
        stage = sc.job.stage or "validate"
        incident = new_incident()
        log.exception("job %s: stage %s crashed (%s)", job_id, stage, incident)
        reason = public_reason(exc, incident)
        if stage in FAIL_CLOSED:
            if stage == "publish":  # nothing half-published may stay under models/
                publish.unpublish(sc)
            sc.event(f"Stage {stage} failed ({reason}); the gate fails closed.",
                     level="error", once=f"crash:{stage}")
            sc.save_output(GateOutput(passed=False, reasons=[f"{stage} failed: {reason}"], policy=None,
                                      crashed_stage=stage, attempt=sc.job.attempt))
            try:
                return _run_final(sc, REJECT)
            except Cancelled as cancelled:  # a cancel accepted before the crash still wins
                sc.event(f"Job cancelled during {cancelled.where}.", level="warn", once="cancelled")
                return _finish(sc, "cancelled", None)
        sc.event(f"Stage {stage} failed: {reason}", level="error", once="failed")
        return _finish(sc, "failed", ErrorInfo(code=f"{stage}_failed", message=reason))


def _count_delivery(job: JobRecord) -> None:
    job.deliveries += 1


def _uncount_delivery(job: JobRecord) -> None:
    job.deliveries -= 1


def _run_stage(sc: StageContext, stage: Stage) -> None:
    name = stage.name
    if sc.cancel_requested():
        raise Cancelled(f"before {name}")
    if sc.ctx.stopping.is_set():
        raise HandedBack(f"before {name}")
    refuse_suspended(sc, f"before {name}")
    if _done(sc, stage):
        sc.event(f"Stage {name} already done; skipping it.", once=f"skip:{name}:{sc.job.deliveries}")
        return
    status = "validating_files" if name == "validate" else "running"

    def enter(job: JobRecord) -> None:
        job.status, job.stage = status, name

    if name == "train":  # validation passed: the job waited in the queue, now it runs
        sc.ctx.records.update_job(sc.job_id, lambda j: setattr(j, "status", "queued"), only_if=ACTIVE)
    sc.ctx.records.update_job(sc.job_id, enter, only_if=ACTIVE)
    sc.event(f"Stage {name} started.", once=f"start:{name}")
    started = time.monotonic()
    output = stage.run(sc)
    seconds = round(time.monotonic() - started, 3)
    if not isinstance(output, stage.output):  # stored under another stage's name, it would skip that one
        raise TypeError(f"stage {name} returned {type(output).__name__}, not {stage.output.__name__}")
    sc.save_output(output.model_copy(update={"attempt": sc.job.attempt}))  # the completion marker: written last

    def record(job: JobRecord) -> None:
        job.stage_seconds[name if job.attempt == 1 else f"{name} (repair)"] = seconds

    sc.ctx.records.update_job(sc.job_id, record, only_if=ACTIVE)
    sc.event(f"Stage {name} finished in {seconds:.1f} s.", once=f"end:{name}",
             data={"stage": name, "seconds": seconds})


def tenant_suspended(sc: StageContext) -> bool:
    """Whether the operator suspended the job's tenant."""
    tenant = sc.ctx.records.get_tenant(sc.job.tenant)
    return tenant is not None and tenant.suspended


def refuse_suspended(sc: StageContext, where: str) -> None:
    """StageFailure `tenant_suspended` if the operator suspended the job's tenant."""
    if tenant_suspended(sc):
        raise StageFailure("tenant_suspended", f"Tenant {sc.job.tenant} was suspended: the job stopped {where}; "
                           "nothing was published.")


def _done(sc: StageContext, stage: Stage) -> bool:
    """Whether `stage` is done for the job's attempt: its output is stored and, for the
    stages a repair runs again, written by this attempt."""
    attempt = sc.job.attempt
    if stage.name not in repair.REPAIRED_STAGES or attempt == 1:
        return sc.done(stage.name)
    stored = sc.output(stage.output)
    return stored is not None and stored.attempt == attempt


def _run_final(sc: StageContext, stage: Stage[FinalResult]) -> str:
    def enter(job: JobRecord) -> None:
        # One atomic step: a cancel accepted until now wins; from here on the API refuses
        # cancels (FINAL_STAGES), so a cancelled job is never published.
        if job.cancel_requested:
            raise Cancelled(f"before {stage.name}")
        job.stage = stage.name

    sc.confirm_lease()
    if stage.name == PUBLISH.name:
        refuse_suspended(sc, "before publish")
    sc.ctx.records.update_job(sc.job_id, enter, only_if=ACTIVE)
    result = stage.run(sc)
    return _finish(sc, result.status, result.error, fine_tuned_model=result.model_id)


def _finish(sc: StageContext, status: str, error: ErrorInfo | None, fine_tuned_model: str | None = None) -> str:
    def change(job: JobRecord) -> None:
        job.status, job.error, job.finished_at = status, error, now()
        job.fine_tuned_model = fine_tuned_model or job.fine_tuned_model

    job = sc.ctx.records.update_job(sc.job_id, change, only_if=ACTIVE)
    level = "info" if status == "succeeded" else "warn" if status == "cancelled" else "error"
    sc.event(f"Job {status}.", level=level, once="finished")
    copy_events(sc.ctx, job)  # the event log beside the job manifest: the store keeps its history
    return job.status
