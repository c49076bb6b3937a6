"""Tiny real lock directories for registry tests (random tensors, no model needed)."""

from __future__ import annotations

from pathlib import Path

import torch

from lock_registry.architectures import HeadGeometry
from lock_registry.lock import BaseModelRef, MetaSafetyLock

BASE_ID = "acme/tiny-chat"
FINGERPRINT = "3f" * 32


def make_lock(base_id: str = BASE_ID, fingerprint: str = FINGERPRINT, seed: int = 0,
              parent: str | None = None) -> MetaSafetyLock:  # fmt: skip
    """A valid 3-head lock for a 4-layer, 4-head, head_dim 8 model."""
    gen = torch.Generator().manual_seed(seed)
    directions = torch.randn(3, 8, generator=gen)
    return MetaSafetyLock.head_bias(
        base_model=BaseModelRef(id=base_id, fingerprint=fingerprint),
        architecture="llama",
        geometry=HeadGeometry(4, 4, 8),
        layers=torch.tensor([1, 2, 3]),
        heads=torch.tensor([0, 3, 1]),
        directions=directions / directions.norm(dim=-1, keepdim=True),
        sigmas=torch.rand(3, generator=gen) + 0.5,
        last_tokens=5,
        data_fingerprint="d" * 64,
        probe_accuracies=[0.9, 0.8, 0.7],
        creator="tests",
        parent=parent,
    )


def make_lock_dir(path: Path, **kwargs) -> Path:
    """Save :func:`make_lock` into ``path`` and return it."""
    return make_lock(**kwargs).save(path)
