"""What a stage sees: the job, earlier stages' outputs, scratch space, events, cancel flag."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from service.context import ServiceContext
from service.pipeline.lease import JobLease
from service.state.records import ErrorInfo, JobRecord, Progress, StageName, StageOutput
from service.store_layout import dumps, job_key

Output = TypeVar("Output", bound=StageOutput)
Result = TypeVar("Result")


class StageFailure(Exception):
    """A stage's clean refusal of the job (bad data, unknown model): the job fails with `code`."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.error = ErrorInfo(code=code, message=message, param=param)


@dataclass
class StageContext:
    ctx: ServiceContext
    job_id: str
    lease: JobLease | None = None
    """The worker's hold on the job (None outside a worker, e.g. in stage tests)."""
    _last_progress: float = field(default=0.0, repr=False)

    @property
    def job(self) -> JobRecord:
        record = self.ctx.records.get_job(self.job_id)
        assert record is not None, f"job {self.job_id} vanished"
        return record

    @property
    def settings(self):
        return self.ctx.settings

    @property
    def work_dir(self) -> Path:
        path = self.ctx.settings.resolved_work_dir / self.job_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def key(self, *parts: str) -> str:
        return job_key(self.job, *parts)

    # stage outputs ---------------------------------------------------------------
    def output(self, kind: type[Output]) -> Output | None:
        """The stored output of the stage `kind` belongs to (`kind.stage`), or None if that
        stage has not finished."""
        key = self.key("stages", f"{kind.stage}.json")
        return kind.model_validate_json(self.ctx.store.get_bytes(key)) if self.ctx.store.exists(key) else None

    def done(self, stage: str) -> bool:
        """Whether `stage` finished: its output is stored (written last)."""
        return self.ctx.store.exists(self.key("stages", f"{stage}.json"))

    def save_output(self, output: StageOutput) -> None:
        self.ctx.store.put_bytes(self.key("stages", f"{output.stage}.json"), dumps(output.model_dump(mode="json")))

    def require(self, kind: type[Output]) -> Output:
        output = self.output(kind)
        if output is None:
            raise RuntimeError(f"stage {kind.stage} has no stored output")
        return output

    # artifacts -------------------------------------------------------------------
    def local_dir(self, name: str) -> Path:
        """`jobs/.../{name}/` from the store, downloaded once into scratch space."""
        target = self.work_dir / name
        marker = target / ".complete"
        if not marker.exists():
            if not self.ctx.store.list(self.key(name) + "/"):
                raise RuntimeError(f"no artifact {name!r} stored for job {self.job_id}")
            self.ctx.store.download_dir(self.key(name), target)
            marker.touch()
        return target

    # events, progress, cancel ------------------------------------------------------
    def event(self, message: str, *, level: str = "info", type: str = "message",
              data: dict[str, Any] | None = None, once: str | None = None) -> None:
        """Add an event; one with a `once` key is written at most once per key and attempt
        (the fallback repair's attempt 2 logs its steps and stages again)."""
        if once is not None and (attempt := self.job.attempt) > 1:
            once = f"{once}@attempt{attempt}"
        self.ctx.records.add_event(self.job_id, message, level=level, type=type, data=data, once=once)

    def progress(self, progress: Progress, *, force: bool = False) -> None:
        """Record progress on the job, at most once a second unless forced."""
        if not force and time.monotonic() - self._last_progress < 1.0:
            return
        self._last_progress = time.monotonic()

        def change(job: JobRecord) -> None:
            job.progress = progress

        self.ctx.records.update_job(self.job_id, change, only_if=("validating_files", "queued", "running"))

    def confirm_lease(self) -> None:
        """Raise LeaseLost if another worker took the job over (checked before publishing)."""
        if self.lease is not None:
            self.lease.confirm()

    def cancel_requested(self) -> bool:
        return self.job.cancel_requested

    def judge(self) -> Any:
        """The evaluation judge `SAFETYLOCK_EVAL_JUDGE` names; one that cannot be built
        raises, and the workflow rejects the job (the gate fails closed)."""
        from service.evaluation.judges import judge_from_config

        return judge_from_config(self.settings.judge_config)


@dataclass(frozen=True)
class FinalResult:
    """How publish or reject ended the job."""

    status: str
    error: ErrorInfo | None = None
    model_id: str | None = None


@dataclass(frozen=True)
class Stage(Generic[Result]):
    """One stage of a job: its name (the job's `stage` while it runs), what it does, and the
    type of what it returns (a StageOutput, or for publish and reject the FinalResult)."""

    name: StageName
    run: Callable[[StageContext], Result]
    output: type[Result]

    def __post_init__(self) -> None:
        stored_as = getattr(self.output, "stage", self.name)
        if stored_as != self.name:
            raise ValueError(f"stage {self.name} returns the output of stage {stored_as}")
