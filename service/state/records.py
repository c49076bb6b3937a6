"""Typed records kept in the key-value store; `public()` gives the API's JSON shapes."""

from __future__ import annotations

import secrets
import time
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
StageName = Literal["validate", "resolve_lock", "train", "relock", "evaluate", "gate", "publish", "reject"]
"""In the order a job runs them: `service.pipeline.workflow.STAGES`, then PUBLISH or REJECT."""
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
# After the gate the worker commits to one of these; a job in one can no longer be cancelled.
FINAL_STAGES: tuple[StageName, ...] = ("publish", "reject")


def new_id(prefix: str) -> str:
    """An unguessable id: `prefix-` and 24 hex digits."""
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


class Hyperparameters(BaseModel):
    """Training knobs a customer may set; bounds keep a job from hogging a worker."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: int = Field(3, ge=1, le=50)
    learning_rate: float = Field(1e-4, gt=0, le=1.0)
    batch_size: int = Field(8, ge=1, le=256)
    lora_rank: int = Field(16, ge=1, le=256)
    lora_alpha: int = Field(32, ge=1, le=1024)
    max_seq_length: int = Field(512, ge=16, le=32768)
    seed: int = Field(0, ge=0, le=2**31 - 1)


class ErrorInfo(BaseModel):
    code: str
    message: str
    param: str | None = None


class Progress(BaseModel):
    stage: str
    step: int = 0
    total_steps: int | None = None
    loss: float | None = None
    eta_seconds: float | None = None


class TenantRecord(BaseModel):
    id: str
    name: str
    role: Literal["customer", "operator"] = "customer"
    weights_release: bool = Field(
        False, description="May download its models' weights (a holder can remove the lock: operators grant this)."
    )
    suspended: bool = Field(False, description=(
        "Every request with the tenant's keys is refused (403); its running jobs stop at their next stage or training step "
        "(failed, `tenant_suspended`) and publish nothing."))
    max_files: int | None = Field(None, ge=0, description="Quota of stored files (None: the service default).")
    max_storage_bytes: int | None = Field(None, ge=0, description="Quota of stored file bytes (None: the service default).")
    created_at: int = Field(default_factory=now)


class ApiKeyRecord(BaseModel):
    """An API key's public facts; the key itself is shown once and only its HMAC is kept."""

    id: str
    tenant: str
    hint: str = Field(description="The key's last four characters, to tell keys apart.")
    created_at: int = Field(default_factory=now)

    def public(self) -> dict[str, Any]:
        return {"object": "api_key", **self.model_dump(exclude={"tenant"})}


class Usage(BaseModel):
    """What a tenant stores now (counted against its quotas)."""

    files: int = 0
    bytes: int = 0


class FileRecord(BaseModel):
    id: str
    tenant: str
    bytes: int
    created_at: int = Field(default_factory=now)
    filename: str
    purpose: str = "fine-tune"
    num_examples: int
    sha256: str

    def public(self) -> dict[str, Any]:
        return {"object": "file", **self.model_dump(exclude={"tenant", "sha256"})}


class PinnedLock(BaseModel):
    """The registry lock a job uses, pinned by the API when it stores the job: the job keeps
    it when the `production` alias moves, and the worker refuses a lock of another sha256."""

    model_config = ConfigDict(frozen=True)

    base_model: str
    version: int
    sha256: str | None = Field(
        None, description="sha256 of the lock's tensors; None in a record stored before create pinned it."
    )


class RepairRecord(BaseModel):
    """The fallback repair a job went through (`service.pipeline.repair`): after the first
    attempt failed the gate, training ran again with the operator's safety examples mixed
    into the customer's file (Bianchi et al. 2024), then relock, evaluate and the gate."""

    method: Literal["safety_mix"] = "safety_mix"
    ratio: float = Field(description="Operator safety examples per customer example.")
    first_attempt_reasons: list[str] = Field(description="Why the gate rejected the first attempt.")


class JobRecord(BaseModel):
    id: str
    tenant: str
    created_at: int = Field(default_factory=now)
    finished_at: int | None = None
    model: str
    fine_tuned_model: str | None = None
    status: JobStatus = "validating_files"
    stage: StageName | None = None
    training_file: str
    validation_file: str | None = None
    method: Literal["lora", "full"] = "lora"
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    suffix: str | None = None
    gate_policy: dict[str, float] = Field(default_factory=dict)
    lock_version: int | None = None
    lock: PinnedLock | None = None
    """Pinned by create (older records: by resolve_lock); `public()` shows its base model and version."""
    progress: Progress | None = None
    error: ErrorInfo | None = None
    cancel_requested: bool = False
    deliveries: int = 0
    dispatched_at: float | None = None
    """When the job was last handed to the workers (None: the hand-over failed; the sweeper retries)."""
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    attempt: int = 1
    """2 once the fallback repair runs (train, relock, evaluate and gate again)."""
    repair: RepairRecord | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def public(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"tenant", "cancel_requested", "deliveries", "dispatched_at", "lock_version", "stage_seconds"})
        data["lock"] = self.lock.model_dump(include={"base_model", "version"}) if self.lock else None
        return {"object": "fine_tuning.job", **data}


class EventRecord(BaseModel):
    id: str
    created_at: float = Field(default_factory=time.time)
    level: Literal["info", "warn", "error"] = "info"
    message: str
    type: Literal["message", "metrics"] = "message"
    data: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        return {"object": "fine_tuning.job.event", **self.model_dump()}


class ModelRecord(BaseModel):
    id: str
    tenant: str
    created_at: int = Field(default_factory=now)
    base_model: str
    job_id: str
    lock: dict[str, Any]
    files: list[str]

    def public(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"tenant", "files"})
        return {"object": "model", "owned_by": self.tenant, **data}


# Stage outputs -----------------------------------------------------------------------
Figures = dict[str, float | None]
"""One evaluation's figures, the report's Eval object (`loading.summarise`): harmful_rate,
clean_refusal_rate, clean_compliance_rate, over_refusal_rate, utility, validation_loss,
junk_rate; `GatePolicy.decide` reads them."""


class StageOutput(BaseModel):
    """What a stage stores as `jobs/{tenant}/{job}/stages/{stage}.json` when it is done
    (`StageContext.save_output`; a stored one makes a resumed job skip the stage). Fields
    a model does not know, written by another version of the service, are ignored."""

    stage: ClassVar[StageName]
    attempt: int = Field(1, description="The job's attempt that wrote it (2: the fallback repair's).")


class FileStats(BaseModel):
    examples: int
    tokens: int
    max_tokens: int


class ValidateOutput(StageOutput):
    stage: ClassVar[StageName] = "validate"

    training_file: FileStats
    validation_file: FileStats | None = None


class TrainOutput(StageOutput):
    stage: ClassVar[StageName] = "train"

    steps: int
    train_loss: float
    validation_loss: float | None = None
    seconds: float
    method: Literal["lora", "full"]
    resumed_from_step: int | None = Field(None, description="The checkpoint's step a lost worker's run resumed from.")
    safety_examples: int = Field(0, description="Operator safety examples mixed into the customer's file (repair).")


class ResolveLockOutput(StageOutput):
    """The registry lock the job uses: its base model, version and the sha256 of its tensors."""

    stage: ClassVar[StageName] = "resolve_lock"

    base_model: str
    version: int
    sha256: str


class AlphaPoint(BaseModel):
    """One alpha of relock's grid as measured by generating and judging answers (figures it
    did not measure are None), with the first-token screen's figures at that alpha when
    the screen ran (`ScreenPoint`; None otherwise and in older outputs)."""

    alpha: float
    harmful_rate: float | None
    utility: float | None
    over_refusal: float | None
    junk_rate: float | None
    first_token_refusal: float | None = None
    position: str | None = Field(
        None, description="Where the lock steered (a conditional lock's position policy); None at alpha 0, for kinds "
        "without one, and in older outputs."
    )


class ScreenPoint(BaseModel):
    """One alpha as relock's first-token screen measured it: one forward pass per prompt,
    no answer generated or judged (`pipeline/alpha_screen.py`)."""

    alpha: float
    first_token_refusal: float = Field(
        description="Share of the harmful selection prompts whose refusal first token outscores the compliance one."
    )


class AlphaScreen(BaseModel):
    """How relock ordered its alpha search (`pipeline/alpha_screen.py`): the first-token
    screen's figures, the shortlist it generated answers for first, and every alpha it
    generated answers for. The screen orders the search; it never chooses an alpha."""

    num_harmful: int = 0
    target: float | None = Field(None, description="First-token refusal rate on the harmful prompts that shortlists an alpha.")
    points: list[ScreenPoint] = Field(
        default_factory=list, description="The alphas screened, smallest first, up to the first that reached the target."
    )
    shortlist: list[float] = Field(default_factory=list, description="Alphas generated first, smallest first.")
    generated: list[float] = Field(default_factory=list, description="Every alpha above 0 answers were generated for, in order (an alpha again for each fallback steering position searched).")
    full_search: bool = Field(False, description="True when the search went on past the shortlist, through the rest of the grid.")
    unavailable: str | None = Field(None, description="Why no screen ran (the grid was then searched in full); else None.")


class AppliedLock(BaseModel):
    """A lock as a stage applied it: its kind, its tensors' sha256 and, for a conditional
    lock, the condition threshold (None for other kinds)."""

    kind: str
    sha256: str
    threshold: float | None = None


class FittedLock(AppliedLock):
    """The lock relock fitted to the job's model, stored under the job's `key`."""

    key: str
    manifest_sha256: str = Field(description="sha256 of the stored manifest; evaluate and publish check it.")
    fit: dict[str, Any] | None = Field(None, description="The threshold fit (None for kinds that need none).")


class TransferCheck(BaseModel):
    """Whether the lock taken from the base still reads the fine-tuned model, measured by
    relock on the labelled calibration prompts the lock carries (`pipeline/transfer.py`).
    A figure the lock's kind cannot re-measure is None, and `notes` says why."""

    num_calibration: int | None = None
    condition_auc: float | None = Field(None, description="The condition's AUC, harmful vs benign, on the fine-tuned model.")
    condition_true_positive_rate: float | None = Field(None, description="Harmful prompts the fitted condition fires on.")
    condition_false_positive_rate: float | None = Field(None, description="Benign prompts the fitted condition fires on.")
    condition_cosine: float | None = Field(
        None, description="Cosine of the lock's condition direction with the same direction re-measured on the fine-tuned model."
    )
    head_cosines: list[float] | None = Field(
        None, description="Per steered head (the lock's order): cosine of its direction with the same direction re-measured."
    )
    head_cosine_mean: float | None = None
    notes: list[str] = Field(default_factory=list)


class TaskVeto(BaseModel):
    """The task veto relock fitted to a conditional lock (lock_registry's `veto.py`), counted on
    the evaluation's task prompts of the selection half and the lock's harmful calibration prompts."""

    num_tasks: int
    num_harmful: int = Field(description="Harmful calibration prompts; the veto keeps every one of them fired.")
    tasks_fired: int = Field(description="Task prompts on which the fitted condition fires without the veto.")
    tasks_fired_after: int = Field(description="... and with the veto (equal: no veto added).")
    layer: int | None = Field(None, description="Decoder layer the veto reads; None: no veto added (see reason).")
    threshold: float | None = None
    gap: float | None = Field(None, description="Lowest harmful score minus highest task score at that layer (< 0: overlap).")
    reason: str = ""


class RelockOutput(StageOutput):
    stage: ClassVar[StageName] = "relock"

    alpha: float | None = Field(description="The smallest alpha of the grid that met the gate; None if none did.")
    curve: list[AlphaPoint]
    base: Figures
    unlocked: Figures
    policy: dict[str, float]
    lock: FittedLock
    screen: AlphaScreen | None = Field(
        None, description="The first-token screen that ordered the alpha search; None when alpha 0 met the gate "
        "(no screen needed) and in outputs stored before the screen existed."
    )
    transfer: TransferCheck | None = Field(
        None, description="The lock's transfer check on the fine-tuned model; None in outputs stored before it existed."
    )
    veto: TaskVeto | None = Field(
        None, description="The task veto fitted to the lock; None when the lock's kind has no condition, the "
        "operator turned it off (`task_veto`), or in outputs stored before it existed."
    )


class CategoryFigures(BaseModel):
    """One model's answers to the harmful prompts of one category (rates are fractions of `n`)."""

    n: int
    harmful_rate: float
    clean_refusal_rate: float
    clean_compliance_rate: float
    junk_rate: float


class AnswerSample(BaseModel):
    """One held-out prompt with the fine-tuned model's answer before and after the lock."""

    kind: Literal["harmful", "safe", "task"]
    category: str
    prompt: str
    unlocked: str
    unlocked_verdict: str | None = Field(description="The judge's label (harmful, safe) or "
                                         "correct / wrong (task).")
    relocked: str | None = Field(description="None when relock chose no alpha.")
    relocked_verdict: str | None


class EvaluateOutput(StageOutput):
    stage: ClassVar[StageName] = "evaluate"

    base: Figures
    unlocked: Figures
    relocked: Figures | None = Field(description="None when relock chose no alpha.")
    alpha: float | None
    lock: AppliedLock | None
    per_category: dict[Literal["base", "unlocked", "relocked"], dict[str, CategoryFigures]] | None = Field(
        None, description="Per model, its figures on each category of harmful prompts (no `relocked` when no "
        "alpha was chosen); None in outputs stored before evaluate measured them.")
    samples: list[AnswerSample] = Field(
        default_factory=list, description="The first few prompts of each kind with both answers "
        "(empty in outputs stored before evaluate kept them).")


class GateOutput(StageOutput):
    stage: ClassVar[StageName] = "gate"

    passed: bool
    reasons: list[str]
    reason_codes: list[str] = Field(
        default_factory=list, description="The gate's code of each reason, in order: lock_not_transferred, "
        "no_alpha_passed or confirmation_failed (empty when a crashed stage decided, and in older outputs)."
    )
    policy: dict[str, float] | None
    crashed_stage: StageName | None = Field(
        None, description="The fail-closed stage whose crash decided (the workflow writes this output then)."
    )
