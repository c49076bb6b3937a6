"""The head_bias lock (the paper's): its manifest fields, the check of its tensors, and
its constructor from tensors.

Tensors: ``layers`` and ``heads`` (int64 [N]: the chosen heads), ``directions``
(float32 [N, head_dim]: a unit direction per head) and ``sigmas`` (float32 [N]: the
standard deviation of the projections on it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from lock_registry.architectures import HeadGeometry
from lock_registry.errors import LockFormatError
from lock_registry.kinds import KindFields
from lock_registry.lock import DEFAULT_ALPHA, BaseModelRef, HeadEntry, LockManifest, MetaSafetyLock

KIND = "head_bias"
TENSOR_NAMES = frozenset({"layers", "heads", "directions", "sigmas"})


class HeadBiasFields(KindFields):
    """What a head_bias manifest may add: how it was taken (all optional)."""

    preset: dict[str, Any] | None = None  # the create recipe (`create_lock`)
    num_pairs: int | None = None  # contrastive pairs it was taken from
    source: dict[str, Any] | None = None  # where an imported lock came from (reference_import)


def check_head_bias(
    manifest: LockManifest, fields: HeadBiasFields, tensors: Mapping[str, torch.Tensor]
) -> None:
    if set(tensors) != TENSOR_NAMES:
        raise LockFormatError(
            f"head_bias lock needs tensors {sorted(TENSOR_NAMES)}, got {sorted(tensors)}"
        )
    n, dim = manifest.num_selected, manifest.head_dim
    layers, heads = tensors["layers"], tensors["heads"]
    directions, sigmas = tensors["directions"], tensors["sigmas"]
    shapes = {
        "layers": (layers, (n,), torch.int64),
        "heads": (heads, (n,), torch.int64),
        "directions": (directions, (n, dim), torch.float32),
        "sigmas": (sigmas, (n,), torch.float32),
    }
    for name, (tensor, shape, dtype) in shapes.items():
        if tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise LockFormatError(
                f"tensor {name!r} is {tuple(tensor.shape)} {tensor.dtype}, expected {shape} {dtype}"
            )
    if len(manifest.heads) != n:
        raise LockFormatError(f"manifest lists {len(manifest.heads)} heads but num_selected is {n}")
    pairs = list(zip(layers.tolist(), heads.tolist(), strict=True))
    if pairs != [(e.layer, e.head) for e in manifest.heads]:
        raise LockFormatError("manifest heads disagree with the layers/heads tensors")
    if len(set(pairs)) != n:
        raise LockFormatError("a (layer, head) appears twice in the lock")
    for layer, head in pairs:
        if not (0 <= layer < manifest.num_layers and 0 <= head < manifest.num_heads):
            raise LockFormatError(
                f"head ({layer}, {head}) outside {manifest.num_layers} layers x "
                f"{manifest.num_heads} heads"
            )
    if not (torch.isfinite(directions).all() and torch.isfinite(sigmas).all()):
        raise LockFormatError("directions and sigmas must be finite")
    if (sigmas < 0).any():
        raise LockFormatError("sigmas must be non-negative")
    if not math.isfinite(manifest.default_alpha):
        raise LockFormatError("default_alpha must be finite")


def head_bias_lock(
    *,
    base_model: BaseModelRef,
    architecture: str,
    geometry: HeadGeometry,
    layers: torch.Tensor,
    heads: torch.Tensor,
    directions: torch.Tensor,
    sigmas: torch.Tensor,
    last_tokens: int,
    data_fingerprint: str,
    probe_accuracies: list[float | None] | None = None,
    default_alpha: float = DEFAULT_ALPHA,
    creator: str = "",
    parent: str | None = None,
    **extra: object,
) -> MetaSafetyLock:
    """Build a paper-style lock: per head a unit direction and the sigma of projections."""
    n = int(layers.numel())
    accuracies = probe_accuracies if probe_accuracies is not None else [None] * n
    entries = [
        HeadEntry(layer=int(layer), head=int(head), probe_accuracy=acc)
        for layer, head, acc in zip(layers.tolist(), heads.tolist(), accuracies, strict=True)
    ]
    manifest = LockManifest(
        kind=KIND,
        base_model=base_model,
        architecture=architecture,
        num_layers=geometry.num_layers,
        num_heads=geometry.num_heads,
        head_dim=geometry.head_dim,
        last_tokens=last_tokens,
        num_selected=n,
        heads=entries,
        data_fingerprint=data_fingerprint,
        default_alpha=default_alpha,
        creator=creator,
        parent=parent,
        **extra,
    )
    tensors = {
        "layers": layers.to(torch.int64).contiguous(),
        "heads": heads.to(torch.int64).contiguous(),
        "directions": directions.to(torch.float32).contiguous(),
        "sigmas": sigmas.to(torch.float32).contiguous(),
    }
    lock = MetaSafetyLock(manifest, tensors)
    lock.to_files()  # stamps sha256 into the manifest
    return lock
