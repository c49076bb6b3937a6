"""`SafetyReport`: what the pipeline measured and what the gate decided."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sdk.types._base import BaseModel
from sdk.types.job import LockRef


class CategoryEval(BaseModel):
    """One model's answers to the harmful prompts of one category; rates are fractions of `n`."""

    n: int
    harmful_rate: float
    clean_refusal_rate: float | None = None
    clean_compliance_rate: float | None = None
    junk_rate: float | None = None


class Eval(BaseModel):
    """One model's evaluation; rates are fractions in [0, 1]."""

    harmful_rate: float | None = None
    """Share of held-out harmful prompts answered with compliance (judged)."""
    clean_refusal_rate: float | None = None
    clean_compliance_rate: float | None = None
    over_refusal_rate: float | None = None
    """Share of safe-but-scary-looking prompts refused."""
    utility: float | None = None
    """Task score on the customer's held-out data (higher is better)."""
    validation_loss: float | None = None
    junk_rate: float | None = None
    """Share of harmful prompts answered with garbled text (neither compliance nor refusal)."""
    per_category: dict[str, CategoryEval] | None = None
    """The harmful prompts by category; None where not measured (the selection figures, and
    reports written before the service measured it)."""


class AlphaPoint(BaseModel):
    """One alpha relock tried; a figure it did not measure is None. `position`: where the
    lock steered (`answer_start` or `answer`; None at alpha 0 and for locks without one)."""

    alpha: float
    harmful_rate: float | None = None
    utility: float | None = None
    over_refusal: float | None = None
    junk_rate: float | None = None
    position: str | None = None


class Selection(BaseModel):
    """The models as relock measured them on the selection prompts, where it chose alpha."""

    base: Eval | None = None
    unlocked: Eval | None = None


class AnswerSample(BaseModel):
    """One held-out prompt with the fine-tuned model's answer without and with the lock."""

    kind: Literal["harmful", "safe", "task"]
    category: str
    prompt: str
    unlocked: str
    unlocked_verdict: str | None = None
    """The judge's label (harmful and safe prompts) or correct / wrong (tasks)."""
    relocked: str | None = None
    """None when no alpha met the gate (no relocked model exists)."""
    relocked_verdict: str | None = None


class Repair(BaseModel):
    """The fallback repair the job went through: after the gate rejected its first attempt,
    it was trained again with the operator's safety examples mixed into the customer's file;
    every figure of the report is the repaired attempt's."""

    method: Literal["safety_mix"] = "safety_mix"
    ratio: float
    """Operator safety examples per customer example."""
    safety_examples: int | None = None
    """How many were mixed in."""
    first_attempt_reasons: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        """What the repair did, in one sentence: both the report page and the CLI show it."""
        added = "" if self.safety_examples is None else f" ({self.safety_examples} examples)"
        return (f"The gate rejected the first attempt; the model was trained again with {self.ratio:g} "
                f"operator safety example(s) per customer example mixed in{added} (after Bianchi et al. "
                f"2024), then relocked, evaluated and gated again. Every figure here is the repaired model's.")


class LockTransfer(BaseModel):
    """Whether the lock taken from the base model still reads the fine-tuned model, measured
    by relock on the lock's labelled calibration prompts; a figure the lock's kind cannot
    re-measure is None and `notes` says why."""

    num_calibration: int | None = None
    condition_auc: float | None = None
    """The condition's AUC, harmful vs benign calibration prompts, on the fine-tuned model."""
    condition_true_positive_rate: float | None = None
    condition_false_positive_rate: float | None = None
    condition_cosine: float | None = None
    """Cosine of the lock's condition direction with the same direction re-measured."""
    head_cosine_mean: float | None = None
    notes: list[str] = Field(default_factory=list)


class TaskVeto(BaseModel):
    """The task veto relock fitted to a conditional lock: a second reading that keeps the
    lock off the customer's task prompts while every harmful calibration prompt stays fired."""

    num_tasks: int
    num_harmful: int
    tasks_fired: int
    """Task prompts (selection half) the fitted condition fires on without the veto ..."""
    tasks_fired_after: int
    """... and with it (equal when no veto was added)."""
    layer: int | None = None
    """The decoder layer the veto reads; None when none was added (`reason` says why)."""
    threshold: float | None = None
    gap: float | None = None
    reason: str = ""


class SafetyReport(BaseModel):
    job_id: str
    base_model: str
    lock: LockRef | None = None
    base: Eval | None = None
    """The base model on the held-out confirmation prompts (the gate's figures, as are the
    next two); None when the job stopped before evaluation."""
    unlocked: Eval | None = None
    """The fine-tuned model without the lock."""
    relocked: Eval | None = None
    """The fine-tuned model with the lock at `alpha`; None when no alpha met the gate."""
    alpha: float | None = None
    alpha_curve: list[AlphaPoint] = Field(default_factory=list)
    """Each alpha relock tried, on the selection prompts (the other half of the set)."""
    selection: Selection | None = None
    decision: Literal["published", "rejected"]
    reasons: list[str] = Field(default_factory=list)
    policy: dict[str, Any] | None = None
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    samples: list[AnswerSample] = Field(default_factory=list)
    """The first held-out prompts of each kind with both answers (empty in older reports)."""
    repair: Repair | None = None
    """Set when the job was repaired (trained again with safety data mixed in)."""
    transfer: LockTransfer | None = None
    """The lock's transfer check on the fine-tuned model; None for a lock that has none
    (head_bias), a job stopped before relock, and older reports."""
    veto: TaskVeto | None = None
    """The task veto fitted at relock; None for locks without a condition and older reports."""
