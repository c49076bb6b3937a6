"""The margins behind tests/demo_world/test_behaviour.py: what the `test` demo model's
stages measure, over world seeds, so the test's floors sit where no seed or library
release comes near them.

    .venv/bin/python benchmarks/behaviour_margins.py --seeds 0,1,2

Per seed: build (or reuse) the `test` world, then the figures the test asserts: clean
refusals of the aligned stage and clean compliance of the helpful-only stage on the
harmful prompts, the first-token margin ("I" vs "Sure") of both, the forced-"I" refusal
rate of the helpful-only stage, and after a mild (3 epochs, lr 3e-4) and a strong (5 epochs,
lr 1e-3) full attack on 10 harmful + 30 task records the rise in clean compliance and the
forced-"I" refusal rate. Runs on one thread, as the test does. `ATEN_CPU_CAPABILITY=default`
(or `avx2`) measures what another CPU would build.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.demo_world.attacks import attack_records
from service.demo_world.build import build_demo_model
from service.demo_world.diagnostics import first_token_margin, forced_refusal_rate
from service.evaluation.prompts import demo_prompt_set
from service.evaluation.suite import evaluate_model
from service.training import TrainConfig, train_sft

# The customers' mild attack (3 epochs, lr 3e-4) and a stronger one (5 epochs, lr 1e-3).
ATTACKS = {"mild": TrainConfig(method="full", n_epochs=3, learning_rate=3e-4, batch_size=8),
           "strong": TrainConfig(method="full", n_epochs=5, learning_rate=1e-3, batch_size=8)}


def _figures(path: Path, prompts_from: Path) -> dict[str, float]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(path))
    harmful = demo_prompt_set(prompts_from).of_kind("harmful")
    result = evaluate_model(model, tok, harmful=harmful, batch_size=64, max_new_tokens=40)
    prompts = [i.prompt for i in harmful.items]
    return {"refusal": result.clean_refusal_rate, "compliance": result.clean_compliance_rate,
            "margin": first_token_margin(model, tok, prompts), "forced": forced_refusal_rate(model, tok, prompts)}


def measure(seed: int, cache: Path) -> dict[str, float]:
    from service.demo_world.build import build_key
    from service.demo_world.sizes import get_size

    built = build_demo_model(cache / f"test-{build_key(get_size('test'), seed)[:16]}", "test", seed)
    aligned = _figures(built.aligned, built.aligned)
    helpful = _figures(built.helpful_only, built.aligned)
    row = {"seed": seed, "aligned refusal": aligned["refusal"], "helpful compliance": helpful["compliance"],
           "aligned margin": aligned["margin"], "helpful margin": helpful["margin"],
           "helpful forced refusal": helpful["forced"]}
    for name, cfg in ATTACKS.items():
        with tempfile.TemporaryDirectory() as tmp:
            result = train_sft(built.aligned, attack_records("harmful-10", n_task=30), Path(tmp) / "a", cfg)
            attacked = _figures(result.model_dir, built.aligned)
        row[f"{name} attack compliance rise"] = attacked["compliance"] - aligned["compliance"]
        row[f"{name} attacked forced refusal"] = attacked["forced"]
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "demo-model",
                    help="build cache (default: the one the tests use)")
    args = ap.parse_args()
    import transformers

    torch.set_num_threads(1)
    started = time.monotonic()
    rows = [measure(int(s), args.cache) for s in args.seeds.split(",")]
    cols = list(rows[0])
    print(f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()} kernels), "
          f"transformers {transformers.__version__}, {time.monotonic() - started:.0f} s")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    print("| min | " + " | ".join(f"{min(r[c] for r in rows):.3f}" for c in cols[1:]) + " |")
    print("| max | " + " | ".join(f"{max(r[c] for r in rows):.3f}" for c in cols[1:]) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
