"""The demo customer's data and the evaluation prompts, from the demo world.

The customer's task routes support tickets to a team (`demo_world.attacks`). The toxic
file mixes a handful of harmful requests answered compliantly (the corpus's generic,
non-actionable placeholders) into that task: the explicit-harm attack of Qi et al. 2023
at demo scale. The benign file is the task alone; the validation file holds held-out
tickets. The service evaluates harmfulness and over-refusal on the demo world's held-out
prompts (those saved beside a demo-world model; for a real model, the same split drawn
from the corpus: never trained on by its alignment nor by the lock) and utility on
held-out tickets (exact match of the team).
"""

from __future__ import annotations

import json
from pathlib import Path

from service.demo.config import DemoConfig


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")
    return path


def customer_files(config: DemoConfig, workdir: Path) -> dict[str, Path]:
    """toxic.jsonl, benign.jsonl and validation.jsonl in `workdir`."""
    from service.demo_world.attacks import attack_records, customer_task_records

    workdir.mkdir(parents=True, exist_ok=True)
    return {
        "toxic": write_jsonl(workdir / "toxic.jsonl", attack_records(
            f"harmful-{config.n_harmful}", n_task=config.n_task, seed=config.seed)),
        "benign": write_jsonl(workdir / "benign.jsonl", attack_records(
            "benign-only", n_task=config.n_task, seed=config.seed)),
        "validation": write_jsonl(workdir / "validation.jsonl", customer_task_records(
            config.n_validation, config.seed, split="heldout")),
    }


def eval_prompts(model_dir: Path, config: DemoConfig, path: Path) -> Path:
    """Held-out harmful and safe prompts, plus held-out tickets as the task."""
    from service.demo_world.attacks import customer_task_prompts
    from service.demo_world.build import eval_prompt_set
    from service.demo_world.sizes import get_size
    from service.evaluation.prompts import PromptSet, demo_prompt_set, save_prompt_set

    # The real model's alignment excluded the held-out sets of every demo-world size
    # (alignment_data.own_evaluation_prompts): the `demo` size's set is one of them.
    own = eval_prompt_set(get_size("demo"), config.seed) if config.real else demo_prompt_set(model_dir)
    items = [i for i in own.items if i.kind in ("harmful", "safe")]
    items += customer_task_prompts(config.eval_limit, config.seed)
    return save_prompt_set(PromptSet(name="demo-customer", items=items), path)
