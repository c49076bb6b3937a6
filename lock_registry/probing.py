"""Vectorised linear probes: one per (layer, head), all fitted at once in torch.

Samples are split by question (group), never by token: the K token positions and both
answers of a question land on the same side, so held-out accuracy is not inflated by
near-duplicate neighbours. Two probe fits are available:

- "ridge": regularised least squares on +-1 targets (a Fisher/LDA-type linear probe),
  closed form: one batched Gram matrix and one batched Cholesky solve.
- "logistic": L2 logistic regression (sklearn's objective with C=1) by batched Newton
  steps started from the ridge solution.

Heads are ranked by held-out accuracy, ties broken by held-out AUC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from lock_registry.errors import LockError

ProbeMethod = Literal["ridge", "logistic"]


@dataclass(frozen=True)
class ProbeScores:
    """Held-out scores of every head's probe, each `[num_layers, num_heads]`."""

    val_accuracy: torch.Tensor
    val_auc: torch.Tensor
    train_accuracy: torch.Tensor

    def ranking(self) -> list[tuple[int, int]]:
        """All (layer, head) pairs, best first: held-out accuracy, then held-out AUC."""
        num_heads = self.val_accuracy.shape[1]
        acc = self.val_accuracy.flatten().double()
        auc = self.val_auc.flatten().double()
        order = sorted(range(acc.numel()), key=lambda i: (-acc[i].item(), -auc[i].item(), i))
        return [(i // num_heads, i % num_heads) for i in order]

    def top(self, count: int) -> list[tuple[int, int]]:
        return self.ranking()[:count]


def split_by_group(groups: Sequence[int], val_fraction: float, seed: int) -> torch.Tensor:
    """Boolean mask of held-out samples: a random `val_fraction` of the groups, whole."""
    if not 0.0 < val_fraction < 1.0:
        raise LockError(f"val_fraction must be in (0, 1), got {val_fraction}")
    group_tensor = torch.as_tensor(groups)
    unique = torch.unique(group_tensor)
    if unique.numel() < 2:
        raise LockError("need at least two questions to hold some out")
    generator = torch.Generator().manual_seed(seed)
    shuffled = unique[torch.randperm(unique.numel(), generator=generator)]
    n_val = min(max(1, round(unique.numel() * val_fraction)), unique.numel() - 1)
    return torch.isin(group_tensor, shuffled[:n_val])


def _augment(x: torch.Tensor) -> torch.Tensor:
    """`[n, P, D]` -> `[P, n, D+1]` with a constant column for the intercept."""
    ones = torch.ones(x.shape[0], x.shape[1], 1, dtype=x.dtype)
    return torch.cat([x, ones], dim=2).transpose(0, 1).contiguous()


def _penalty(dim: int, l2: float) -> torch.Tensor:
    eye = torch.eye(dim + 1) * l2
    eye[dim, dim] = 0.0  # the intercept is not penalised
    return eye


def _solve(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Batched solve (LU: faster than batched Cholesky on CPU); least squares if singular."""
    solution, info = torch.linalg.solve_ex(matrix, rhs)
    if bool((info != 0).any()):
        return torch.linalg.lstsq(matrix, rhs).solution
    return solution


def fit_probes(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    method: ProbeMethod = "ridge",
    l2: float = 1.0,
    newton_steps: int = 8,
) -> torch.Tensor:
    """Weights `[P, D+1]` (last column the intercept) of P probes on `x [n, P, D]`, labels {0,1}."""
    xa = _augment(x.float())
    num_probes, _, width = xa.shape
    penalty = _penalty(width - 1, l2)
    gram = torch.baddbmm(penalty.expand(num_probes, -1, -1), xa.transpose(1, 2), xa)
    targets = (2.0 * y.float() - 1.0).view(1, -1, 1).expand(num_probes, -1, -1)
    weights = _solve(gram, xa.transpose(1, 2) @ targets)  # [P, D+1, 1]
    if method == "ridge":
        return weights.squeeze(2)
    if method != "logistic":
        raise LockError(f"unknown probe method {method!r} (ridge, logistic)")
    labels = y.float().view(1, -1, 1)
    for _ in range(newton_steps):
        prob = torch.sigmoid(xa @ weights)
        grad = xa.transpose(1, 2) @ (prob - labels) + penalty @ weights
        curvature = (prob * (1.0 - prob)).clamp_min(1e-6)
        hessian = torch.baddbmm(
            penalty.expand(num_probes, -1, -1), xa.transpose(1, 2), xa * curvature
        )
        step = _solve(hessian, grad)
        weights = weights - step
        if float(step.abs().max()) < 1e-6:
            break
    return weights.squeeze(2)


def probe_scores(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Decision values `[P, n]` of probes `weights [P, D+1]` on `x [n, P, D]`."""
    scores = torch.einsum("npd,pd->pn", x.float(), weights[:, :-1])
    return scores + weights[:, -1:]


def accuracy(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Accuracy `[P]` of thresholding decision values at 0."""
    return ((scores > 0) == y.bool().unsqueeze(0)).float().mean(dim=1)


def auc(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ROC AUC `[P]` of decision values `[P, n]` against labels {0,1} (Mann-Whitney, ties halved)."""
    positives = y.bool()
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return torch.full((scores.shape[0],), 0.5)
    values = scores.double().contiguous()
    ordered = values.sort(dim=1).values
    below = torch.searchsorted(ordered, values, side="left")
    upto = torch.searchsorted(ordered, values, side="right")
    ranks = (below + upto + 1).double() / 2  # 1-based ranks, ties share their average
    rank_sum = ranks[:, positives].sum(dim=1)
    return ((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).float()


def probe_heads(
    activations: torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    groups: Sequence[int] | torch.Tensor,
    *,
    val_fraction: float = 0.4,
    seed: int = 0,
    method: ProbeMethod = "ridge",
    l2: float = 1.0,
) -> ProbeScores:
    """Fit and score one probe per head on `activations [n, L, H, D]`, split by `groups`."""
    if activations.dim() != 4:
        raise LockError(f"activations must be [n, L, H, D], got {tuple(activations.shape)}")
    n, num_layers, num_heads, dim = activations.shape
    y = torch.as_tensor(labels).long()
    if y.shape != (n,) or torch.as_tensor(groups).shape != (n,):
        raise LockError(f"labels and groups need {n} entries, one per sample")
    if set(y.unique().tolist()) != {0, 1}:
        raise LockError("labels must contain both classes, 0 (unsafe) and 1 (safe)")
    held_out = split_by_group(groups, val_fraction, seed)
    x = activations.reshape(n, num_layers * num_heads, dim)
    x_train, y_train = x[~held_out], y[~held_out]
    x_val, y_val = x[held_out], y[held_out]
    if len(set(y_train.tolist())) < 2:
        raise LockError("the training split has a single class; use more questions")
    weights = fit_probes(x_train, y_train, method=method, l2=l2)
    val_scores = probe_scores(x_val, y_val, weights)
    shape = (num_layers, num_heads)
    return ProbeScores(
        val_accuracy=accuracy(val_scores, y_val).view(shape),
        val_auc=auc(val_scores, y_val).view(shape),
        train_accuracy=accuracy(probe_scores(x_train, y_train, weights), y_train).view(shape),
    )


def mass_mean_directions(
    activations: torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    heads: Sequence[tuple[int, int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit mass-mean shifts `[N, D]` (mean safe - mean unsafe) and sigmas `[N]` (std of projections)."""
    y = torch.as_tensor(labels).bool()
    directions, sigmas = [], []
    for layer, head in heads:
        values = activations[:, layer, head, :].double()
        shift = values[y].mean(dim=0) - values[~y].mean(dim=0)
        norm = shift.norm()
        if norm == 0:
            raise LockError(f"head ({layer}, {head}): safe and unsafe means coincide")
        direction = shift / norm
        directions.append(direction)
        sigmas.append((values @ direction).std(correction=0))
    return torch.stack(directions).float(), torch.stack(sigmas).float()
