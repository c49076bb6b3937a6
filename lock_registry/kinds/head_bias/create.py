"""Take a head_bias lock from an aligned base model and contrastive pairs.

Pipeline: chat-format each pair into a safe and an unsafe conversation -> capture the
per-head o_proj inputs at the last K tokens -> one probe per head, split by question ->
keep the top N heads by held-out accuracy -> per head a unit mass-mean direction and the
sigma of projections. A `LockRecipe` holds everything but the model, data, N and K; the
preset "paper" (the paper's) is the default of `lock_registry.create.create_lock`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from lock_registry.architectures import head_geometry, model_type
from lock_registry.capture import Progress, capture_head_activations
from lock_registry.create import current_user
from lock_registry.errors import LockError
from lock_registry.fingerprint import model_fingerprint
from lock_registry.kinds.head_bias.format import KIND, head_bias_lock
from lock_registry.lock import DEFAULT_ALPHA, BaseModelRef, MetaSafetyLock
from lock_registry.pairs import ContrastivePair, format_pairs, pairs_fingerprint
from lock_registry.probing import ProbeMethod, mass_mean_directions, probe_heads


@dataclass(frozen=True)
class LockRecipe:
    """How a head_bias lock is taken (everything but the model, data, N and K)."""

    name: str
    kind: ClassVar[str] = KIND
    probe: ProbeMethod = "ridge"  # vectorised probe fit (see probing.py)
    val_fraction: float = 0.4  # share of questions held out to score probes
    seed: int = 0  # question split
    system_prompt: str | None = None  # prepended to every conversation if set
    default_alpha: float = DEFAULT_ALPHA  # strength stamped into the manifest
    batch_size: int = 8  # sequences per forward pass during capture


PAPER = LockRecipe(name="paper")


def create_head_bias_lock(
    model: nn.Module,
    tokenizer,
    pairs: Sequence[ContrastivePair],
    *,
    base_model_id: str,
    recipe: LockRecipe = PAPER,
    num_heads: int = 24,
    last_tokens: int = 5,
    progress: Progress | None = None,
    base_fingerprint: str | None = None,
    creator: str | None = None,
) -> MetaSafetyLock:
    """Build a head_bias lock from `model` (the aligned base) and contrastive `pairs`."""
    geometry = head_geometry(model)
    total_heads = geometry.num_layers * geometry.num_heads
    if not 1 <= num_heads <= total_heads:
        raise LockError(f"num_heads must be in 1..{total_heads} for this model, got {num_heads}")
    if len(pairs) < 2:
        raise LockError(f"need at least 2 contrastive pairs, got {len(pairs)}")
    texts, labels, groups = format_pairs(tokenizer, pairs, recipe.system_prompt)
    acts = capture_head_activations(
        model, tokenizer, texts, last_tokens, batch_size=recipe.batch_size, progress=progress
    )
    # every token position is one sample; its label and question are its sequence's
    n, k = acts.shape[:2]
    samples = acts.reshape(n * k, *acts.shape[2:])
    sample_labels = torch.tensor(labels).repeat_interleave(k)
    sample_groups = torch.tensor(groups).repeat_interleave(k)
    if progress is not None:
        progress("probe", 0, 1)
    scores = probe_heads(
        samples,
        sample_labels,
        sample_groups,
        val_fraction=recipe.val_fraction,
        seed=recipe.seed,
        method=recipe.probe,
    )
    chosen = sorted(scores.top(num_heads))
    directions, sigmas = mass_mean_directions(samples, sample_labels, chosen)
    if progress is not None:
        progress("probe", 1, 1)
    if base_fingerprint is None:
        if progress is not None:
            progress("fingerprint", 0, 1)  # hashes every weight: tens of seconds at 8B
        base_fingerprint = model_fingerprint(model)
        if progress is not None:
            progress("fingerprint", 1, 1)
    return head_bias_lock(
        base_model=BaseModelRef(id=base_model_id, fingerprint=base_fingerprint),
        architecture=model_type(model),
        geometry=geometry,
        layers=torch.tensor([layer for layer, _ in chosen]),
        heads=torch.tensor([head for _, head in chosen]),
        directions=directions,
        sigmas=sigmas,
        last_tokens=last_tokens,
        data_fingerprint=pairs_fingerprint(pairs),
        probe_accuracies=[float(scores.val_accuracy[layer, head]) for layer, head in chosen],
        default_alpha=recipe.default_alpha,
        creator=creator if creator is not None else current_user(),
        preset=asdict(recipe),
        num_pairs=len(pairs),
    )


def read_pairs(pairs: Path, benign: Path | None, limit: int | None) -> list:
    """`lock create`'s data for this kind: the contrastive pairs file (no benign prompts)."""
    from lock_registry.pairs import load_pairs

    if benign is not None:
        raise LockError("a head_bias lock is taken from --pairs alone; --benign does not apply")
    return load_pairs(pairs, limit=limit)
