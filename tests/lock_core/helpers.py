"""Small builders shared by the lock core tests."""

from __future__ import annotations

import torch

from lock_registry.architectures import HeadGeometry, head_geometry, model_type
from lock_registry.lock import BaseModelRef, MetaSafetyLock


def random_lock(
    geometry: HeadGeometry,
    heads: list[tuple[int, int]],
    *,
    architecture: str = "llama",
    seed: int = 0,
) -> MetaSafetyLock:
    """A head_bias lock with random unit directions and sigmas around 1."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(len(heads), geometry.head_dim, generator=generator)
    directions = directions / directions.norm(dim=1, keepdim=True)
    return MetaSafetyLock.head_bias(
        base_model=BaseModelRef(id="tiny-base", fingerprint="f" * 64),
        architecture=architecture,
        geometry=geometry,
        layers=torch.tensor([layer for layer, _ in heads]),
        heads=torch.tensor([head for _, head in heads]),
        directions=directions,
        sigmas=0.5 + torch.rand(len(heads), generator=generator),
        last_tokens=5,
        data_fingerprint="d" * 64,
        probe_accuracies=[0.9] * len(heads),
    )


def lock_for(model, heads=((0, 1), (1, 0), (1, 3)), seed: int = 0) -> MetaSafetyLock:
    return random_lock(head_geometry(model), list(heads), architecture=model_type(model), seed=seed)


def state_copy(model) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def logits(model, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=input_ids).logits
