"""`FineTuningJob` and its parts, as the service returns them."""

from __future__ import annotations

from typing import Any, Literal

from sdk.types._base import BaseModel

JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: tuple[str, ...] = JobStatus.__args__
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
Stage = Literal["validate", "resolve_lock", "train", "relock", "evaluate", "gate", "publish",
                "reject"]
Method = Literal["lora", "full"]


class Hyperparameters(BaseModel):
    n_epochs: int | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    lora_rank: int | None = None
    lora_alpha: float | None = None
    max_seq_length: int | None = None
    seed: int | None = None


class LockRef(BaseModel):
    """Which Meta-SafetyLock relocks (or relocked) this job's model."""

    base_model: str
    version: int | str | None = None


class JobProgress(BaseModel):
    stage: Stage | None = None
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    eta_seconds: float | None = None


class JobError(BaseModel):
    """Why a job failed; `code == "gate_rejected"` when the safety gate said no."""

    code: str
    message: str
    param: str | None = None


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: int | None = None
    model: str
    fine_tuned_model: str | None = None
    status: JobStatus
    stage: Stage | None = None
    training_file: str
    validation_file: str | None = None
    method: Method = "lora"
    hyperparameters: Hyperparameters = Hyperparameters()
    suffix: str | None = None
    gate_policy: dict[str, Any] | None = None
    lock: LockRef | None = None
    progress: JobProgress | None = None
    error: JobError | None = None

    @property
    def done(self) -> bool:
        """True once the job can no longer change (succeeded, failed or cancelled)."""
        return self.status in TERMINAL_STATUSES

    @property
    def rejected(self) -> bool:
        """True when the safety gate rejected the fine-tuned model."""
        return self.error is not None and self.error.code == "gate_rejected"
