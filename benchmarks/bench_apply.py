"""Benchmark: apply time of a 24-head lock at Llama-3-8B shapes (target: median <= 5 ms on CPU).

Builds only what applying touches: 32 layers of `self_attn.o_proj` (4096 x 4096, random
fp32 weights, no bias) under a Llama config, and a random 24-head lock (or the heads of a
reference `.safelock` with --reference). Times `apply_lock` (the lock's own path: only the
touched heads' weight columns are read) and, for comparison, the full `W @ displacement`
per touched layer, and the floor: a plain read of the same columns. Run:
`.venv/bin/python benchmarks/bench_apply.py`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn
from transformers import LlamaConfig

from lock_registry.apply import apply_lock
from lock_registry.architectures import HeadGeometry
from lock_registry.lock import BaseModelRef, MetaSafetyLock
from lock_registry.reference_import import import_reference


class Attention(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.o_proj = nn.Linear(hidden, hidden, bias=False)


class Layer(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.self_attn = Attention(hidden)


class Body(nn.Module):
    def __init__(self, layers: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Layer(hidden) for _ in range(layers))


class OProjSkeleton(nn.Module):
    """The o_proj weights of a Llama-3-8B, laid out as in transformers (model.layers.i.self_attn)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.model = Body(config.num_hidden_layers, config.hidden_size)
        with torch.no_grad():
            for layer in self.model.layers:
                layer.self_attn.o_proj.weight.normal_(0.0, 0.02)


def random_lock(geometry: HeadGeometry, num_heads: int, seed: int) -> MetaSafetyLock:
    generator = torch.Generator().manual_seed(seed)
    flat = torch.randperm(geometry.num_layers * geometry.num_heads, generator=generator)[:num_heads]
    flat = flat.sort().values
    directions = torch.randn(num_heads, geometry.head_dim, generator=generator)
    return MetaSafetyLock.head_bias(
        base_model=BaseModelRef(id="synthetic-llama-3-8b", fingerprint=""),
        architecture="llama",
        geometry=geometry,
        layers=flat // geometry.num_heads,
        heads=flat % geometry.num_heads,
        directions=directions / directions.norm(dim=1, keepdim=True),
        sigmas=torch.rand(num_heads, generator=generator),
        last_tokens=5,
        data_fingerprint="synthetic",
    )


def full_matvec_ms(model: OProjSkeleton, lock: MetaSafetyLock, alpha: float) -> float:
    """The naive way: full `W @ displacement` for each touched layer."""
    geo = lock.geometry
    layers = sorted(set(lock.tensors["layers"].tolist()))
    displacement = torch.zeros(geo.num_layers, geo.width)
    for i, (layer, head) in enumerate(lock.head_list):
        d = alpha * lock.tensors["sigmas"][i] * lock.tensors["directions"][i]
        displacement[layer, head * geo.head_dim : (head + 1) * geo.head_dim] = d
    start = time.perf_counter()
    with torch.no_grad():
        for layer in layers:
            torch.mv(model.model.layers[layer].self_attn.o_proj.weight, displacement[layer])
    return (time.perf_counter() - start) * 1000


def read_floor_ms(model: OProjSkeleton, lock: MetaSafetyLock) -> float:
    """A plain read of the same bytes (every touched head's columns summed, rows split
    between torch's threads as apply does): what memory allows for this access pattern."""
    from concurrent.futures import ThreadPoolExecutor

    dim, workers = lock.geometry.head_dim, torch.get_num_threads()
    columns = [model.model.layers[layer].self_attn.o_proj.weight.narrow(1, head * dim, dim)
               for layer, head in lock.head_list]
    rows = columns[0].shape[0]

    def read(k: int) -> float:
        lo, hi = rows * k // workers, rows * (k + 1) // workers
        with torch.no_grad():
            return sum(float(c[lo:hi].sum()) for c in columns)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(read, range(workers)))
        times = []
        for _ in range(20):
            start = time.perf_counter()
            list(pool.map(read, range(workers)))
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--heads", type=int, default=24)
    parser.add_argument("--alpha", type=float, default=6.0)
    parser.add_argument("--reference", help="use the heads of this reference .safelock")
    args = parser.parse_args()

    config = LlamaConfig(
        hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, head_dim=128
    )
    geometry = HeadGeometry(32, 32, 128)
    print(f"building 32 x o_proj 4096x4096 fp32 ({32 * 4096 * 4096 * 4 / 2**30:.1f} GiB) ...")
    model = OProjSkeleton(config)
    if args.reference:
        lock = import_reference(
            args.reference, base_model_id="reference", num_layers=32, num_heads=32
        )
    else:
        lock = random_lock(geometry, args.heads, seed=0)
    touched = len(set(lock.tensors["layers"].tolist()))

    cold_start = time.perf_counter()
    apply_lock(model, lock, args.alpha).remove()
    cold = (time.perf_counter() - cold_start) * 1000
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        handle = apply_lock(model, lock, args.alpha)
        times.append((time.perf_counter() - start) * 1000)
        handle.remove()
    naive = statistics.median(full_matvec_ms(model, lock, args.alpha) for _ in range(5))
    floor = read_floor_ms(model, lock)
    times.sort()
    read_mb = lock.manifest.num_selected * 4096 * geometry.head_dim * 4 / 1e6
    print(
        f"lock: {lock.manifest.num_selected} heads in {touched} layers; torch threads "
        f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"apply_lock  median {statistics.median(times):.2f} ms  p10 {times[len(times) // 10]:.2f}"
        f"  p90 {times[9 * len(times) // 10]:.2f}  min {times[0]:.2f}  first call {cold:.2f} ms"
        f"  ({args.repeats} repeats)"
    )
    print(
        f"weights read: {read_mb:.0f} MB of strided columns -> "
        f"{read_mb / statistics.median(times):.1f} GB/s effective"
    )
    print(f"floor: a plain read of the same columns ({torch.get_num_threads()} threads): median {floor:.2f} ms "
          f"({read_mb / floor:.1f} GB/s); apply is {statistics.median(times) / floor:.2f}x the floor")
    print(f"naive full W @ d per touched layer: median {naive:.2f} ms")
    verdict = "meets" if statistics.median(times) <= 5.0 else "MISSES"
    print(f"target <= 5 ms median: {verdict}")


if __name__ == "__main__":
    main()
