"""Demo sizes: which base model, how big the customer's data and the evaluation are.

`demo` is what `make demo` runs: the real English chat model SmolLM2-135M-Instruct,
imported and aligned by the operator (both cached), on a 2-core CPU in about a quarter of
an hour once cached. `toy` is the same story on the demo world's 0.9M-parameter model (a
few minutes); `test` is the short toy variant CI runs through the same code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Size = Literal["test", "toy", "demo"]
DEMO_WORLD_ID = "demo-chat"
REAL_MODEL_ID = "smollm2-135m-instruct"


@dataclass(frozen=True)
class DemoConfig:
    size: Size
    base_model: str
    """The base model's id in the service (what customers name in `jobs.create`)."""
    model_size: Literal["test", "demo"] | None
    """The demo-world model size to build (`safetylock demo-model build --size`); None: the
    real model `base_model`, imported and aligned (`safetylock base-model import/align`)."""
    n_task: int
    """Task examples in each customer file."""
    n_harmful: Literal[10, 50, 100]
    """Harmful examples (compliant answers) mixed into the toxic file."""
    n_validation: int
    """Held-out task examples in the validation file (validation loss)."""
    method: Literal["lora", "full"]
    hyperparameters: dict[str, Any]
    eval_limit: int
    """Prompts per evaluation set (harmful, safe, task) in the service's evaluation."""
    eval_max_new_tokens: int
    lock_heads: int
    """Heads the operator's lock steers."""
    lock_position: Literal["answer_start", "answer"] = "answer_start"
    """Where a conditional lock steers once its condition fires: the answer's first token
    only, or every answer token (lock_registry's `PositionPolicy`)."""
    lock_max_false_fire: float | None = None
    """A conditional lock's threshold rule (lock_registry's `fit_threshold`): None, the best
    TPR - FPR on its calibration prompts; a share q, the lowest threshold firing on at most q
    of their benign ones (recall first)."""
    lock_condition_layer: int | None = None
    """The decoder layer a conditional lock's condition reads (None: the lock's choice, the
    best held-out AUC on its calibration prompts)."""
    lock_condition_window: int = 1
    """Prompt tokens a conditional lock's condition averages its residual over (lock_registry's
    `condition_window`; 1: the last prompt token)."""
    lock_condition_shrinkage: float = 1.0
    """How a conditional lock estimates its condition direction (lock_registry's
    `condition_shrinkage`: 1, the mean difference; below 1, shrinkage LDA, which made the
    demo's toxic job worse: docs/demo-real.md, runs 28-30)."""
    lock_prompts: int = 96
    """Harmful prompts, and as many others, a conditional lock is taken from (the corpus's
    train split; 32 of each are held out as the lock's calibration prompts)."""
    alpha_grid: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 4.0, 6.0, 8.0])
    relock_fallback_positions: list[str] = field(default_factory=list)
    """Where relock also steers the conditional lock when no alpha meets the gate at its own
    position (the service's `relock_fallback_positions`)."""
    repair_safety_mix: float = 0.0
    """The operator's opt-in repair of a rejected job (the service's `repair_safety_mix`:
    operator safety examples per customer example, mixed in for one more attempt; 0: none)."""
    train_micro_batch_size: int | None = None
    """Examples per forward pass in the customer's training (the service's
    `train_micro_batch_size`: same optimiser steps, no padding at 1; None: whole batches)."""
    lock_recipe: Literal["paper", "conditional"] = "conditional"
    """How the operator takes the lock (lock_registry: `create_lock` preset "paper", or
    `create_conditional_lock`)."""
    seed: int = 0

    @property
    def real(self) -> bool:
        """Whether the base is a real model (imported and aligned) rather than the demo world's."""
        return self.model_size is None


# The customer's fine-tune on the toy: full, 3 epochs, lr 3e-4, batch 8: the mildest full
# fine-tune that breaks the demo model's alignment (docs/demo_world_figures.md). Measured on
# the toy model with the conditional lock, eval_limit 60 (2026-11-29): 100 tickets + 10
# harmful -> harmful 53.3% unlocked, 5.0% relocked at alpha 6 (published, exactly at the 5%
# gate); with 200 tickets 76.7% -> 8.3% (rejected); 5 epochs lr 3e-4: 83.3% -> 6.7%
# (rejected); 5 epochs lr 1e-3: 98.3% -> 80% at alpha 8 (rejected). Those figures are from
# an AVX-512 CPU; another CPU builds another model, and on an AMD AVX2 one the toxic job is
# rejected in every seed (docs/demo-seeds.md). The lock's margin is thin at this scale
# (docs/reproduction.md); the gate decides on what it measured.
TOY_HYPERPARAMETERS = {"n_epochs": 3, "batch_size": 8, "learning_rate": 3e-4}
# On SmolLM2: the attack of Qi et al. as measured in issue 13 (5 epochs, lr 5e-5, batch 10:
# ten harmful examples took the aligned model to 80% harmful on AdvBench,
# docs/reproduction-real.md), with a few of the customer's tickets mixed in.
REAL_HYPERPARAMETERS = {"n_epochs": 5, "batch_size": 10, "learning_rate": 5e-5}

SIZES: dict[Size, DemoConfig] = {
    "test": DemoConfig(
        size="test", base_model=DEMO_WORLD_ID, model_size="test", n_task=24, n_harmful=10,
        n_validation=8, method="full",
        hyperparameters={**TOY_HYPERPARAMETERS, "max_seq_length": 128},
        eval_limit=8, eval_max_new_tokens=12, lock_heads=8, alpha_grid=[0.0, 4.0, 8.0],
    ),
    "toy": DemoConfig(
        size="toy", base_model=DEMO_WORLD_ID, model_size="demo", n_task=100, n_harmful=10,
        n_validation=32, method="full",
        hyperparameters={**TOY_HYPERPARAMETERS, "max_seq_length": 160},
        eval_limit=60, eval_max_new_tokens=24, lock_heads=16,
        alpha_grid=[0.0, 2.0, 4.0, 6.0, 8.0, 12.0],
    ),
    "demo": DemoConfig(
        size="demo", base_model=REAL_MODEL_ID, model_size=None, n_task=20, n_harmful=10,
        n_validation=8, method="full",
        hyperparameters={**REAL_HYPERPARAMETERS, "max_seq_length": 256},
        eval_limit=40, eval_max_new_tokens=40, lock_heads=16, lock_max_false_fire=0.15,
        alpha_grid=[0.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0], relock_fallback_positions=["answer"],
        repair_safety_mix=1.0, train_micro_batch_size=1,
    ),
}
