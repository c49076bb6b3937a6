"""Fit a conditional lock to a fine-tuned model: re-fit its condition threshold on the
calibration prompts it carries (fine-tuning keeps the harmfulness direction but shrinks
the feature, so the base model's threshold does not transfer). ``fit_conditional`` is
the kind's fit (``lock_registry.fit.fit_to_model``); ``alpha_curve`` is a cheap proxy
for choosing alpha.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from lock_registry.apply import apply_lock
from lock_registry.errors import LockError
from lock_registry.kinds.conditional.activations import (
    _encode,
    _first_token_id,
    format_prompts,
    prompt_activations,
)
from lock_registry.kinds.conditional.condition import (
    ThresholdFit,
    condition_direction,
    condition_scores,
    fit_threshold,
)
from lock_registry.kinds.conditional.format import (
    KIND,
    MEAN_DIFFERENCE_TENSOR,
    ConditionalFields,
    calibration_prompts,
    with_threshold,
)
from lock_registry.lock import MetaSafetyLock


def calibrate_threshold(model: nn.Module, tokenizer, lock: MetaSafetyLock) -> ThresholdFit:
    """Fit the condition threshold on *this* model from the calibration set the lock carries,
    by the rule the lock records (``max_false_fire``)."""
    if lock.manifest.kind != KIND:
        raise LockError(f"a {lock.manifest.kind!r} lock has no condition to calibrate")
    prompts = calibration_prompts(lock)
    if not prompts:
        raise LockError("the lock carries no calibration prompts")
    fields = ConditionalFields.of(lock)
    acts = prompt_activations(model, tokenizer, [p.text for p in prompts], window=fields.condition_window)
    labels = torch.tensor([p.harmful for p in prompts])
    scores = condition_scores(acts.pooled[:, fields.condition_layer], lock.tensors["condition_direction"])
    if not torch.isfinite(scores).all():
        raise LockError(
            f"the condition scores of the calibration prompts are not finite on this model "
            f"(its residual after layer {fields.condition_layer} holds NaN or inf): the threshold cannot be fitted"
        )
    return fit_threshold(scores, labels, fields.max_false_fire)


@dataclass(frozen=True)
class AlphaPoint:
    """First-token decision of the calibration prompts under the lock at one alpha."""

    alpha: float
    harmful_refusal_start: float  # harmful prompts whose refusal start beats compliance
    benign_refusal_start: float  # benign prompts likewise (over-refusal)


def alpha_curve(
    model: nn.Module, tokenizer, lock: MetaSafetyLock, alphas: Sequence[float]
) -> list[AlphaPoint]:
    """Refusal-start rates on the carried calibration set under the lock, per alpha.

    A cheap proxy for generation plus judging (one forward per prompt and alpha): the
    relock stage can shortlist alphas with it before the judged evaluation.
    """
    prompts = calibration_prompts(lock)
    labels = torch.tensor([p.harmful for p in prompts])
    fields = ConditionalFields.of(lock)
    if fields.refusal_start is None or fields.compliance_start is None:
        raise LockError("the lock records no refusal_start / compliance_start tokens")
    curve = []
    for alpha in alphas:
        with apply_lock(model, lock, alpha):
            margin = prompt_activations(
                model, tokenizer, [p.text for p in prompts],
                refusal_start=fields.refusal_start, compliance_start=fields.compliance_start,
            ).margin
        refuses = margin > 0
        curve.append(
            AlphaPoint(
                alpha=float(alpha),
                harmful_refusal_start=float(refuses[labels].float().mean()),
                benign_refusal_start=float(refuses[~labels].float().mean()),
            )
        )
    return curve


@torch.no_grad()
def refusal_start_rate(
    model: nn.Module,
    tokenizer,
    lock: MetaSafetyLock,
    alpha: float,
    prompts: Sequence[str],
    *,
    batch_size: int = 64,
) -> float:
    """Share of ``prompts`` whose refusal first token outscores the compliance one under
    the lock at ``alpha``: the first-token decision ``alpha_curve`` counts, for any user
    prompts, read from the last position's logits alone (one forward per batch, no
    activations kept)."""
    fields = ConditionalFields.of(lock)
    if fields.refusal_start is None or fields.compliance_start is None:
        raise LockError("the lock records no refusal_start / compliance_start tokens")
    if not prompts:
        raise LockError("the first-token rate needs at least one prompt")
    refuse_id = _first_token_id(tokenizer, fields.refusal_start)
    comply_id = _first_token_id(tokenizer, fields.compliance_start)
    device = next(model.parameters()).device
    texts = format_prompts(tokenizer, prompts)
    refuses = []
    with apply_lock(model, lock, alpha):
        for start in range(0, len(texts), batch_size):
            enc = _encode(tokenizer, texts[start : start + batch_size], device)
            logits = model(**enc, use_cache=False, logits_to_keep=1).logits[:, -1].float()
            refuses.append(logits[:, refuse_id] - logits[:, comply_id] > 0)
    return float(torch.cat(refuses).float().mean())


def calibrated(model: nn.Module, tokenizer, lock: MetaSafetyLock) -> tuple[MetaSafetyLock, ThresholdFit]:
    """The lock with its threshold re-fitted on ``model`` (what the relock stage applies).

    The fitted lock's manifest records the fit as ``threshold_fit`` (the threshold it
    replaced, the calibration AUC and the condition's firing rates); the tensors, and so
    the sha256, are the original lock's.
    """
    fit = calibrate_threshold(model, tokenizer, lock)
    record = {"previous_threshold": ConditionalFields.of(lock).threshold, **asdict(fit)}
    return with_threshold(lock, fit.threshold, threshold_fit=record), fit


fit_conditional = calibrated  # the kind's fit: lock_registry.fit.fit_to_model calls it


@dataclass(frozen=True)
class DirectionTransfer:
    """The lock's directions re-measured on a model from the calibration prompts it carries,
    each compared with the lock's own by cosine (1: the model still reads as the base did)."""

    condition_cosine: float  # the harmful-minus-benign residual mean difference at the condition layer
    head_cosines: list[float]  # per steered head, in the lock's order: its harmful-minus-benign output shift


def direction_transfer(model: nn.Module, tokenizer, lock: MetaSafetyLock) -> DirectionTransfer:
    """Re-measure the lock's directions on ``model`` (mean over harmful minus mean over benign
    prompts; the condition over its window, the heads at the last prompt token), on the
    labelled calibration prompts the lock carries (held out when the lock was taken), and
    compare them with the lock's by cosine. A condition taken by shrinkage LDA is compared
    through the mean difference the lock carries beside it: an LDA direction re-estimated
    from a few dozen prompts is mostly noise, a mean difference is not."""
    if lock.manifest.kind != KIND:
        raise LockError(f"a {lock.manifest.kind!r} lock carries no labelled prompts to re-measure its directions on")
    prompts = calibration_prompts(lock)
    labels = torch.tensor([p.harmful for p in prompts])
    if labels.all() or not labels.any():
        raise LockError("the lock's calibration prompts need harmful and benign ones")
    fields = ConditionalFields.of(lock)
    acts = prompt_activations(model, tokenizer, [p.text for p in prompts], window=fields.condition_window)
    residual = acts.pooled[:, fields.condition_layer]
    condition = condition_direction(residual[labels], residual[~labels])
    reference = lock.tensors.get(MEAN_DIFFERENCE_TENSOR, lock.tensors["condition_direction"])
    cosine = torch.nn.functional.cosine_similarity(condition, reference, dim=0)
    heads = acts.heads[:, lock.tensors["layers"], lock.tensors["heads"]]  # [n, N, head_dim]
    shifts = heads[labels].mean(0) - heads[~labels].mean(0)
    head_cosines = torch.nn.functional.cosine_similarity(shifts, lock.tensors["directions"], dim=-1)
    return DirectionTransfer(condition_cosine=float(cosine), head_cosines=[float(c) for c in head_cosines])
