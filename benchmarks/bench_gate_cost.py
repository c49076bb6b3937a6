"""What the gate costs next to training: the demo's four jobs, stage by stage.

Runs the demo story (`safetylock demo`) at the `test` and `toy` sizes (the demo world's
model; `demo`, SmolLM2, on request), each in a fresh
embedded service, and prints per job its training seconds (`train`), the gate's seconds
(`resolve_lock + relock + evaluate + gate`) and their ratio; the goal is a gate of at
most 10% of training. Each size's two jobs run one after the other in one service, as a
platform's jobs do (the second job of a base model finds its base evaluation stored).

    .venv/bin/python benchmarks/bench_gate_cost.py [--sizes test toy] [--out DIR]

The demo models are built once and cached (`$SAFETYLOCK_CACHE_DIR` or
~/.cache/safetylock). Timings depend on the machine and on what else runs on it. Under
the table, per job, the alphas relock generated answers for (in the order tried, with
the harmful rate judged) and, when its first-token screen ran, the alphas it screened
(first-token refusal rate on harmful prompts) and its shortlist. Measured figures, before
and after each change: docs/gate-cost.md.
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
    parser.add_argument("--sizes", nargs="+", default=["test", "toy"], choices=["test", "toy", "demo"])
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
        searches = _alpha_searches(out_root / size / "service" / "store")
        for job in summary["jobs"]:
            seconds = job["stage_seconds"]
            train = seconds.get("train", 0.0)
            gate = sum(seconds.get(stage, 0.0) for stage in GATE_STAGES)
            rows.append((size, job["name"], train, gate, seconds, job["decision"], job["alpha"],
                         searches.get(job["name"], "relock output not found")))
        print(f"size {size}: demo story {time.monotonic() - started:.1f} s")
    print(f"\n{'size':6} {'job':7} {'train s':>8} {'gate s':>8} {'gate/train':>10}  stages (s); decision")
    for size, name, train, gate, seconds, decision, alpha, _ in rows:
        ratio = f"{gate / train:.0%}" if train else "n/a"
        stages = ", ".join(f"{s} {seconds.get(s, 0.0):.2f}" for s in GATE_STAGES)
        print(f"{size:6} {name:7} {train:8.2f} {gate:8.2f} {ratio:>10}  {stages}; {decision}"
              + (f" at alpha {alpha:g}" if alpha is not None else ""))
    print()
    for size, name, *_, search in rows:
        print(f"{size:6} {name:7} {search}")
    print(f"\nload at the end {os.getloadavg()[0]:.2f}; outputs in {out_root}")


def _alpha_searches(store: Path) -> dict[str, str]:
    """Per job (by its suffix, the demo's job name): what relock measured, as one line."""
    found = {}
    for job_file in store.glob("jobs/*/*/job.json"):
        relock_file = job_file.parent / "stages" / "relock.json"
        if not relock_file.exists():
            continue
        relock = json.loads(relock_file.read_text())
        generated = ", ".join(f"{p['alpha']:g} ({_pct(p['harmful_rate'])} harmful)" for p in relock["curve"])
        line = f"generated: {generated}"
        screen = relock.get("screen")
        if screen and screen.get("unavailable"):
            line += f"; no screen: {screen['unavailable']}"
        elif screen:
            screened = ", ".join(f"{p['alpha']:g} ({_pct(p['first_token_refusal'])})" for p in screen["points"])
            shortlist = ", ".join(f"{a:g}" for a in screen["shortlist"]) or "none"
            line += (f"; screened by first token: {screened}; shortlist {shortlist}"
                     + ("; went on to the full search" if screen["full_search"] else ""))
        found[json.loads(job_file.read_text()).get("suffix")] = line
    return found


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


if __name__ == "__main__":
    main()
