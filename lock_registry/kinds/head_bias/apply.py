"""Apply a head_bias lock: a constant bias on each touched layer's o_proj.

The displacement of head h is ``alpha * sigma_h * direction_h`` in its slot of the o_proj
input; per touched layer ``o_proj.weight @ displacement`` becomes the output bias (added
to an existing bias, created where there is none). Only the touched heads' weight columns
are read, so applying costs a few small matrix-vector products. The undo steps put back
the original bias objects, so removing the lock restores the model bit for bit.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import torch
from torch import nn

from lock_registry.apply import Undo
from lock_registry.architectures import attention_output_projections
from lock_registry.lock import MetaSafetyLock

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


def apply_head_bias(model: nn.Module, lock: MetaSafetyLock, alpha: float) -> list[Undo]:
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
