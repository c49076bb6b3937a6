"""The condition: the prompt's reading (the residual averaged over its last tokens), the
harmfulness direction estimated from labelled readings, cosine scores against it, their
AUC, and the threshold that best separates harmful from benign prompts."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lock_registry.errors import LockError


def ranking_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = scores[labels.bool()], scores[~labels.bool()]
    if len(pos) == 0 or len(neg) == 0:
        raise LockError("AUC needs both harmful and benign prompts")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())


def check_window(window: int) -> None:
    """A condition window is a whole number of prompt tokens, at least 1."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise LockError(f"condition_window must be a whole number >= 1, got {window!r}")


def window_mean(hidden: torch.Tensor, last: torch.Tensor, mask: torch.Tensor | None, window: int) -> torch.Tensor:
    """[batch, hidden] float32: each row's residual averaged over its last ``window`` real tokens.

    ``hidden`` is [batch, seq, hidden], ``last`` [batch] the index of each row's last real
    token, ``mask`` [batch, seq] its attention mask (None: every position is real). Window 1
    is the last token itself; a row with fewer real tokens averages the ones it has. Only
    the window's positions are gathered and cast, never the whole sequence.
    """
    rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None]
    index = last.to(hidden.device)[:, None] - torch.arange(window, device=hidden.device)[None, :]
    inside = index >= 0
    index = index.clamp(min=0)
    if mask is not None:
        inside = inside & mask.to(hidden.device)[rows, index].bool()
    taken = hidden[rows, index].float()  # [batch, window, hidden]
    total = torch.where(inside[..., None], taken, torch.zeros((), device=hidden.device))
    return total.sum(1) / inside.sum(1, keepdim=True).clamp(min=1)


def check_shrinkage(shrinkage: float) -> None:
    """A condition shrinkage is a number in (0, 1] (1: the plain mean difference)."""
    if isinstance(shrinkage, bool) or not isinstance(shrinkage, int | float) or not 0 < shrinkage <= 1:
        raise LockError(f"condition_shrinkage must lie in (0, 1], got {shrinkage!r}")


def condition_direction(harmful: torch.Tensor, benign: torch.Tensor, shrinkage: float = 1.0) -> torch.Tensor:
    """Unit harmfulness direction from readings [n, hidden] of harmful and benign prompts.

    Shrinkage 1 is the mean difference mean(harmful) - mean(benign). Below 1 it is the
    shrinkage LDA direction: the mean difference through the inverse of the pooled
    within-class covariance, shrunk toward its mean variance ((1 - s) S + s tr(S)/d I), so
    directions along which prompts vary a lot whatever their harm (wording, topic) weigh
    less. At s = 1 the two agree.
    """
    check_shrinkage(shrinkage)
    difference = harmful.mean(0) - benign.mean(0)
    if shrinkage < 1:
        centred = torch.cat([harmful - harmful.mean(0), benign - benign.mean(0)]).double()
        within = centred.T @ centred / len(centred)
        scale = within.diagonal().mean()
        shrunk = (1 - shrinkage) * within + shrinkage * scale * torch.eye(len(within), dtype=within.dtype)
        difference = torch.linalg.solve(shrunk, difference.double()).float()
    return difference / difference.norm().clamp(min=1e-12)


def condition_scores(residual: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Cosine between each residual vector [n, hidden] and the condition direction."""
    return torch.nn.functional.cosine_similarity(residual, direction[None, :], dim=-1)


@dataclass(frozen=True)
class ThresholdFit:
    """A condition threshold and how well it separates the calibration prompts."""

    threshold: float
    auc: float
    true_positive_rate: float  # harmful prompts on which the condition fires
    false_positive_rate: float  # benign prompts on which it fires


def check_max_false_fire(max_false_fire: float | None) -> None:
    """A recall-first threshold rule is a share of benign prompts in [0, 1)."""
    if max_false_fire is not None and not 0 <= max_false_fire < 1:
        raise LockError(f"max_false_fire must lie in [0, 1), got {max_false_fire}")


def fit_threshold(scores: torch.Tensor, labels: torch.Tensor, max_false_fire: float | None = None) -> ThresholdFit:
    """Threshold maximising TPR - FPR; among equals, the middle of the widest gap.

    With ``max_false_fire`` (recall first): the lowest threshold at which the condition
    fires on at most that share of the benign prompts, so harmful prompts unlike the
    calibration ones, which score lower, are still caught.
    """
    labels = labels.bool()
    values = torch.sort(scores).values
    cuts = torch.cat([values[:1] - 1e-3, (values[1:] + values[:-1]) / 2, values[-1:] + 1e-3])
    gaps = torch.cat([torch.ones(1), values[1:] - values[:-1], torch.ones(1)])
    fires = scores[None, :] > cuts[:, None]
    tpr = (fires & labels).sum(1).float() / labels.sum().clamp(min=1)
    fpr = (fires & ~labels).sum(1).float() / (~labels).sum().clamp(min=1)
    if max_false_fire is None:
        j = tpr - fpr
        best = torch.isclose(j, j.max())
        pick = int(torch.argmax(torch.where(best, gaps, torch.full_like(gaps, -1.0))))
    else:
        check_max_false_fire(max_false_fire)
        pick = int(torch.nonzero(fpr <= max_false_fire + 1e-9)[0])  # cuts ascend, fpr falls
    return ThresholdFit(
        threshold=float(cuts[pick]),
        auc=ranking_auc(scores, labels),
        true_positive_rate=float(tpr[pick]),
        false_positive_rate=float(fpr[pick]),
    )
