"""Benchmark: vectorised probing vs the reference's per-head sklearn loop, side by side.

Synthetic activations with Llama-3-8B shape: 100 questions x 2 answers x 5 tokens = 1,000
samples, 32 layers x 32 heads x 128 dims. Every head has anisotropic noise and a per-question
offset; about one head in ten carries a class signal of graded strength along a random
direction. Both sides use the same question split (40% held out) and the same ranking rule
(held-out accuracy, ties by held-out AUC); only the probe fit differs:

- reference: one `sklearn.linear_model.LogisticRegression(random_state=42, max_iter=1000)`
  per head in a Python loop (as the paper's code);
- ours: `lock_registry.probing.probe_heads` (all heads at once in torch), "ridge" (the
  default) and "logistic" (batched Newton).

Targets: >= 20x faster, and >= 20 of the same top 24 heads.
Run: `.venv/bin/python benchmarks/bench_probing.py` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from lock_registry.probing import ProbeScores, auc, probe_heads, split_by_group


def synthetic(questions: int, tokens: int, layers: int, heads: int, dim: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    n = questions * 2 * tokens
    groups = torch.arange(questions).repeat_interleave(2 * tokens)
    labels = torch.tensor(([1] * tokens + [0] * tokens) * questions)
    scales = torch.exp(torch.empty(layers, heads, dim).uniform_(-1.2, 1.2, generator=g))
    x = torch.randn(n, layers, heads, dim, generator=g) * scales
    x += 0.5 * torch.randn(questions, layers, heads, dim, generator=g).repeat_interleave(
        2 * tokens, 0
    )
    strength = torch.zeros(layers * heads)
    signal = torch.randperm(layers * heads, generator=g)[: layers * heads // 10]
    strength[signal] = torch.linspace(0.2, 2.0, len(signal))
    direction = torch.nn.functional.normalize(torch.randn(layers, heads, dim, generator=g), dim=-1)
    shift = strength.view(layers, heads, 1) * direction * scales
    x += (labels.float() - 0.5).view(n, 1, 1, 1) * shift
    return x, labels, groups


def sklearn_loop(x: torch.Tensor, y: torch.Tensor, held_out: torch.Tensor) -> ProbeScores:
    """The reference's way: one LogisticRegression per head in a Python loop."""
    _, layers, heads, _ = x.shape
    x_train, x_val = x[~held_out].numpy(), x[held_out].numpy()
    y_train, y_val = y[~held_out].numpy(), y[held_out].numpy()
    val_scores = np.empty((layers * heads, len(y_val)), dtype=np.float64)
    train_acc = np.empty(layers * heads)
    for layer in range(layers):
        for head in range(heads):
            clf = LogisticRegression(random_state=42, max_iter=1000)
            clf.fit(x_train[:, layer, head], y_train)
            val_scores[layer * heads + head] = clf.decision_function(x_val[:, layer, head])
            train_acc[layer * heads + head] = clf.score(x_train[:, layer, head], y_train)
    scores = torch.from_numpy(val_scores)
    y_val_t = torch.from_numpy(y_val)
    val_acc = ((scores > 0) == y_val_t.bool()).float().mean(dim=1)
    return ProbeScores(
        val_accuracy=val_acc.view(layers, heads),
        val_auc=auc(scores, y_val_t).view(layers, heads),
        train_accuracy=torch.from_numpy(train_acc).view(layers, heads),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--top", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x, y, groups = synthetic(args.questions, 5, args.layers, args.heads, args.dim, args.seed)
    print(
        f"activations {tuple(x.shape)} ({x.numel() * 4 / 2**20:.0f} MiB); torch threads "
        f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}"
    )
    held_out = split_by_group(groups, 0.4, seed=0)

    results = {}
    for method in ("ridge", "logistic"):
        start = time.perf_counter()
        scores = probe_heads(x, y, groups, val_fraction=0.4, seed=0, method=method)
        results[method] = (time.perf_counter() - start, scores)
    start = time.perf_counter()
    reference = sklearn_loop(x, y, held_out)
    ref_seconds = time.perf_counter() - start

    ref_top = set(reference.top(args.top))
    print(f"sklearn per-head loop      {ref_seconds:8.2f} s")
    for method, (seconds, scores) in results.items():
        same = len(ref_top & set(scores.top(args.top)))
        speedup = ref_seconds / seconds
        ok = "meets" if speedup >= 20 and same >= 20 else "MISSES"
        print(
            f"vectorised {method:<9}       {seconds:8.2f} s  speed-up {speedup:6.1f}x  "
            f"same top-{args.top}: {same}/{args.top}  -> {ok} (>= 20x, >= 20/24)"
        )
    ref_acc = reference.val_accuracy.flatten()
    for method, (_, scores) in results.items():
        corr = torch.corrcoef(torch.stack([ref_acc, scores.val_accuracy.flatten()]))[0, 1]
        print(f"held-out accuracy correlation with sklearn ({method}): {corr:.3f}")


if __name__ == "__main__":
    main()
