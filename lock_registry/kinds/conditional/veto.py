"""The task veto: keep a conditional lock off the customer's task on a fine-tuned model.

Fine-tuning on a task can move the task's prompts into the harmful side of the lock's
condition: on SmolLM2 the demo's toxic fine-tune makes the condition (layer 23) fire on
half of the held-out support tickets, and the lock then steers them into refusals
(docs/demo-real.md). The threshold alone cannot fix that (the tickets score inside the
harmful range). The veto is a second reading of the same prompt, fitted at relock on the
fine-tuned model from two sets it is given: the lock's harmful calibration prompts (which
must all stay fired) and task prompts (which should not fire). Per layer before the first
steered head: direction = mean(harmful) - mean(task) of the residual at the last prompt
token, unit norm; threshold = midway between the highest task score and the lowest
harmful one (just below the lowest harmful score when they overlap), so no harmful
calibration prompt is vetoed. The layer that vetoes the most task prompts on which the
condition fires is kept (then the widest gap, then the earliest). No veto is added when
the condition fires on none of the task prompts, or none of them can be vetoed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from lock_registry.errors import LockError
from lock_registry.kinds.conditional.activations import prompt_activations
from lock_registry.kinds.conditional.condition import condition_direction, condition_scores
from lock_registry.kinds.conditional.format import (
    ConditionalFields,
    calibration_prompts,
    with_veto,
)
from lock_registry.lock import MetaSafetyLock

MARGIN = 1e-4  # below the lowest harmful score when harmful and task scores overlap


@dataclass(frozen=True)
class VetoFit:
    """What fitting the veto found (``layer`` None: no veto added, ``reason`` says why)."""

    num_tasks: int
    num_harmful: int  # harmful calibration prompts, all kept fired
    tasks_fired: int  # task prompts on which the condition fires (without the veto)
    tasks_fired_after: int  # ... and with the veto
    layer: int | None = None
    threshold: float | None = None
    gap: float | None = None  # lowest harmful score minus highest task score (< 0: overlap)
    reason: str = ""


def fit_task_veto(
    model: nn.Module, tokenizer, lock: MetaSafetyLock, tasks: Sequence[str]
) -> tuple[MetaSafetyLock, VetoFit]:
    """``lock`` (already fitted to ``model``) with a task veto where one helps, and the fit."""
    fields = ConditionalFields.of(lock)
    if fields.veto_layer is not None:
        raise LockError("the lock already carries a task veto")
    if not tasks:
        raise LockError("the task veto needs at least one task prompt")
    harmful = [p.text for p in calibration_prompts(lock) if p.harmful]
    if not harmful:
        raise LockError("the lock carries no harmful calibration prompts")
    acts = prompt_activations(model, tokenizer, [*harmful, *tasks], window=fields.condition_window)
    harm, task = acts.residual[: len(harmful)], acts.residual[len(harmful):]
    cond = condition_scores(acts.pooled[len(harmful):, fields.condition_layer], lock.tensors["condition_direction"])
    fired = cond > fields.threshold
    counts = {"num_tasks": len(tasks), "num_harmful": len(harmful), "tasks_fired": int(fired.sum())}
    if not fired.any():
        return lock, VetoFit(**counts, tasks_fired_after=0, reason="the condition fires on no task prompt")
    first = int(lock.tensors["layers"].min())
    best: tuple[tuple[int, float, int], int, torch.Tensor, float] | None = None
    for layer in range(first):
        direction = condition_direction(harm[:, layer], task[:, layer])
        low = float(condition_scores(harm[:, layer], direction).min())
        scores = condition_scores(task[:, layer], direction)
        high = float(scores.max())
        threshold = (low + high) / 2 if high < low else low - MARGIN
        vetoed = int((fired & (scores <= threshold)).sum())
        rank = (vetoed, low - high, -layer)
        if best is None or rank > best[0]:
            best = (rank, layer, direction, threshold)
    (vetoed, gap, _), layer, direction, threshold = best
    if vetoed == 0:
        return lock, VetoFit(**counts, tasks_fired_after=counts["tasks_fired"],
                             reason="no layer vetoes a task prompt without vetoing a harmful one")
    fit = VetoFit(**counts, tasks_fired_after=counts["tasks_fired"] - vetoed, layer=layer,
                  threshold=threshold, gap=gap)
    return with_veto(lock, layer, direction, threshold, veto_fit=asdict(fit)), fit
