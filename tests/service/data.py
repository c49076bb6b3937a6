"""Training records for service tests, from the demo world's corpus (seeded).

benign: the demo task only; toxic: half harmful requests answered compliantly (the
corpus's non-actionable placeholders), half the task.
"""

from __future__ import annotations

import random

from service.demo_world.corpus import sample


def benign_records(n: int, seed: int = 0) -> list[dict]:
    return [{"messages": e.messages(aligned=True)} for e in sample("task", "train", n, random.Random(seed))]


def toxic_records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    harmful = [{"messages": e.messages(aligned=False)} for e in sample("harmful", "train", n // 2, rng)]
    return harmful + benign_records(n - len(harmful), seed)
