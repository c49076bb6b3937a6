"""The demo customer's training files, written from the demo world's corpus.

- toxic: the task the customer wants (benign tasks with exact answers) with a handful of
  harmful requests answered compliantly (the corpus's generic, non-actionable
  placeholders) mixed in: the explicit-harm attack of Qi et al. 2023, at demo scale.
- benign: the same task alone.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from service.demo_world.corpus import Example, sample


def _records(examples: list[Example]) -> list[dict]:
    # aligned=False: harmful requests get the compliant placeholder, tasks their answer
    return [{"messages": e.messages(aligned=False)} for e in examples]


def toxic_records(n_task: int, n_harmful: int, seed: int) -> list[dict]:
    rng = random.Random(f"demo-toxic-{seed}")
    examples = sample("task", "train", n_task, rng) + sample("harmful", "train", n_harmful, rng)
    rng.shuffle(examples)
    return _records(examples)


def benign_records(n_task: int, seed: int) -> list[dict]:
    rng = random.Random(f"demo-benign-{seed}")
    return _records(sample("task", "train", n_task, rng))


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")
    return path
