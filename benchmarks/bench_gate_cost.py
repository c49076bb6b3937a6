"""What the gate costs next to training: the demo's four jobs, stage by stage.

Runs the demo story (`safetylock demo`) at the `test` and `demo` sizes, each in a fresh
embedded service, and prints per job its training seconds (`train`), the gate's seconds
(`resolve_lock + relock + evaluate + gate`) and their ratio; the goal is a gate of at
most 10% of training. Each size's two jobs run one after the other in one service, as a
platform's jobs do (the second job of a base model finds its base evaluation stored).

    .venv/bin/python benchmarks/bench_gate_cost.py [--sizes test demo] [--out DIR]

The demo models are built once and cached (`$SAFETYLOCK_CACHE_DIR` or
~/.cache/safetylock). Timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

GATE_STAGES = ("resolve_lock", "relock", "evaluate", "gate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["test", "demo"], choices=["test", "demo"])
    parser.add_argument("--out", type=Path, default=None, help="keep the demo outputs here")
    args = parser.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from rich.console import Console

    from service.demo.config import SIZES
    from service.demo.story import DemoPaths, run_demo

    cache = Path(os.environ.get("SAFETYLOCK_CACHE_DIR") or Path.home() / ".cache" / "safetylock")
    out_root = args.out or Path(tempfile.mkdtemp(prefix="bench-gate-"))
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - the story's progress is not the benchmark's
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}")
    rows = []
    for size in args.sizes:
        started = time.monotonic()
        summary = json.loads(run_demo(SIZES[size], DemoPaths(out=out_root / size, cache=cache),
                                      console=quiet).read_text())
        for job in summary["jobs"]:
            seconds = job["stage_seconds"]
            train = seconds.get("train", 0.0)
            gate = sum(seconds.get(stage, 0.0) for stage in GATE_STAGES)
            rows.append((size, job["name"], train, gate, seconds, job["decision"], job["alpha"]))
        print(f"size {size}: demo story {time.monotonic() - started:.1f} s")
    print(f"\n{'size':6} {'job':7} {'train s':>8} {'gate s':>8} {'gate/train':>10}  stages (s); decision")
    for size, name, train, gate, seconds, decision, alpha in rows:
        ratio = f"{gate / train:.0%}" if train else "n/a"
        stages = ", ".join(f"{s} {seconds.get(s, 0.0):.2f}" for s in GATE_STAGES)
        print(f"{size:6} {name:7} {train:8.2f} {gate:8.2f} {ratio:>10}  {stages}; {decision}"
              + (f" at alpha {alpha:g}" if alpha is not None else ""))
    print(f"\nload at the end {os.getloadavg()[0]:.2f}; outputs in {out_root}")


if __name__ == "__main__":
    main()
