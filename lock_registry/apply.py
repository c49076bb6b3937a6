"""Apply a lock to a model in place, and take it off again bit for bit.

For the `head_bias` kind the displacement of head h is `alpha * sigma_h * direction_h` in
its slot of the o_proj input; per touched layer `o_proj.weight @ displacement` becomes the
output bias (added to an existing bias, created where there is none). Only the touched
heads' weight columns are read, so applying costs a few small matrix-vector products.

This MUTATES the model: the returned `LockHandle` puts back the original bias objects
(`handle.remove()`, or leave the `with` block). Other kinds register their own applier.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Self

import torch
from torch import nn

from lock_registry.architectures import attention_output_projections, head_geometry
from lock_registry.errors import LockError, LockShapeError, LockStateError, UnlockNotAllowedError
from lock_registry.lock import MetaSafetyLock

Undo = Callable[[], None]
Applier = Callable[[nn.Module, MetaSafetyLock, float], list[Undo]]

_APPLIERS: dict[str, Applier] = {}
_ACTIVE: weakref.WeakKeyDictionary[nn.Module, LockHandle] = weakref.WeakKeyDictionary()


def register_applier(kind: str, applier: Applier) -> None:
    """`applier(model, lock, alpha)` changes the model and returns the undo steps, in order."""
    _APPLIERS[kind] = applier


class LockHandle:
    """A lock applied to a model; `remove()` restores every parameter exactly."""

    def __init__(self, model: nn.Module, lock: MetaSafetyLock, alpha: float, undo: list[Undo]):
        self._model = weakref.ref(model)  # the registry of active locks must not keep models alive
        self.lock = lock
        self.alpha = alpha
        self._undo = undo

    @property
    def model(self) -> nn.Module | None:
        return self._model()

    @property
    def active(self) -> bool:
        model = self.model
        return model is not None and _ACTIVE.get(model) is self

    def remove(self) -> None:
        """Take the lock off (a second call does nothing)."""
        if not self.active:
            return
        for step in reversed(self._undo):
            step()
        self._undo = []
        del _ACTIVE[self.model]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"LockHandle(kind={self.lock.manifest.kind!r}, alpha={self.alpha}, {state})"


def active_lock(model: nn.Module) -> LockHandle | None:
    """The handle of the lock currently applied to `model`, if any."""
    return _ACTIVE.get(model)


def check_fits(model: nn.Module, lock: MetaSafetyLock) -> None:
    """Refuse a lock whose geometry differs from the model's, naming the mismatch."""
    model_geo, lock_geo = head_geometry(model), lock.geometry
    for name in ("num_layers", "num_heads", "head_dim"):
        have, want = getattr(model_geo, name), getattr(lock_geo, name)
        if have != want:
            raise LockShapeError(
                f"lock for {lock.manifest.base_model.id!r} has {name}={want}, the model has {have}"
            )


def apply_lock(
    model: nn.Module,
    lock: MetaSafetyLock,
    alpha: float | None = None,
    *,
    allow_unlock: bool = False,
) -> LockHandle:
    """Lock `model` in place with strength `alpha` (default: the lock's default_alpha).

    A negative alpha removes safety (unlock) and is refused unless `allow_unlock=True`,
    an operator-only switch never exposed to customers.
    """
    alpha = lock.manifest.default_alpha if alpha is None else float(alpha)
    if not math.isfinite(alpha):
        raise LockError(f"alpha must be finite, got {alpha}")
    if alpha < 0 and not allow_unlock:
        raise UnlockNotAllowedError(
            f"alpha={alpha} would unlock the model; only operators may pass allow_unlock=True"
        )
    if model in _ACTIVE:
        raise LockStateError("a lock is already applied to this model; remove it first")
    applier = _APPLIERS.get(lock.manifest.kind)
    if applier is None:
        raise LockError(f"no applier for lock kind {lock.manifest.kind!r}")
    check_fits(model, lock)
    undo = applier(model, lock, alpha)
    handle = LockHandle(model, lock, alpha, undo)
    _ACTIVE[model] = handle
    return handle


# Below this many bytes of weight columns one thread is faster than handing out work.
_PARALLEL_MIN_BYTES = 8 << 20
_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="safetylock-apply")
    return _POOLS[workers]


@torch.no_grad()
def head_bias_deltas(
    projections: list[nn.Linear], lock: MetaSafetyLock, alpha: float
) -> dict[int, torch.Tensor]:
    """Per touched layer, `o_proj.weight @ displacement` in float32 (only touched columns read).

    The read is memory-bound and strided (each head's columns are short runs far apart),
    so on CPU with fp32 weights the rows are split between torch's threads: each thread
    reads its rows of every touched head (the same products; BLAS may round a row range
    differently, within float precision). Deterministic for a given thread count.
    """
    dim = lock.geometry.head_dim
    layers = lock.tensors["layers"].tolist()
    heads = lock.tensors["heads"].tolist()
    scaled = lock.tensors["directions"] * (alpha * lock.tensors["sigmas"]).unsqueeze(1)
    deltas = {layer: torch.zeros(projections[layer].weight.shape[0], dtype=torch.float32,
                                 device=projections[layer].weight.device) for layer in layers}
    work = [(projections[layer].weight.narrow(1, head * dim, dim), scaled[i], deltas[layer])
            for i, (layer, head) in enumerate(zip(layers, heads, strict=True))]
    workers = torch.get_num_threads()
    parallel = (workers > 1 and all(c.dtype == torch.float32 and c.device.type == "cpu" for c, _, _ in work)
                and sum(c.numel() * 4 for c, _, _ in work) >= _PARALLEL_MIN_BYTES)
    if not parallel:
        _accumulate(work, 0, None)
        return deltas
    rows = min(c.shape[0] for c, _, _ in work)
    bounds = [rows * k // workers for k in range(workers + 1)]
    chunks = [(lo, hi - lo) for lo, hi in pairwise(bounds)]
    chunks[-1] = (chunks[-1][0], None)  # the last chunk takes every remaining row
    list(_pool(workers).map(lambda chunk: _accumulate(work, *chunk), chunks))
    return deltas


@torch.no_grad()  # grad mode is per thread: the pool's threads need it too
def _accumulate(work: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                first_row: int, num_rows: int | None) -> None:
    """out[rows] += columns[rows] @ vector for each (columns, vector, out) of `work` (rows:
    from first_row, num_rows of them, or all the rest)."""
    for columns, vector, out in work:
        count = columns.shape[0] - first_row if num_rows is None else num_rows
        part = columns.narrow(0, first_row, count)
        if part.dtype != torch.float32:
            part = part.float()
        out.narrow(0, first_row, count).addmv_(part, vector.to(part.device))


def _apply_head_bias(model: nn.Module, lock: MetaSafetyLock, alpha: float) -> list[Undo]:
    projections = attention_output_projections(model)
    undo: list[Undo] = []
    with torch.no_grad():
        for layer, delta in head_bias_deltas(projections, lock, alpha).items():
            proj = projections[layer]
            original = proj.bias  # an nn.Parameter or None; never modified, only swapped
            total = delta if original is None else original.float() + delta
            proj.bias = nn.Parameter(total.to(proj.weight.dtype), requires_grad=False)
            undo.append(_restorer(proj, original))
    return undo


def _restorer(proj: nn.Linear, original: nn.Parameter | None) -> Undo:
    def restore() -> None:
        proj.bias = original

    return restore


register_applier("head_bias", _apply_head_bias)

# Appliers defined in their own modules register themselves on import.
import lock_registry.conditional_apply  # noqa: F401  (kind "conditional")
