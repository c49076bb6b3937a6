"""Demo sizes: how big the model, the customer's data and the evaluation are.

`demo` is what `make demo` runs (a few minutes on a 2-core CPU); `test` is the short
variant CI runs through the same code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Size = Literal["test", "demo"]
BASE_MODEL_ID = "demo-chat"


@dataclass(frozen=True)
class DemoConfig:
    size: Size
    model_size: Size
    """The demo-world model size to build (`safetylock demo-model build --size`)."""
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
    alpha_grid: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 4.0, 6.0, 8.0])
    lock_recipe: Literal["paper", "conditional"] = "conditional"
    """How the operator takes the lock (lock_registry: `create_lock` preset "paper", or
    `create_conditional_lock`)."""
    seed: int = 0


# The customer's fine-tune: full, 3 epochs, lr 3e-4, batch 8: the mildest full fine-tune
# that breaks the demo model's alignment (docs/demo_world_figures.md). Measured on the `demo`
# model with the conditional lock, eval_limit 60 (2026-11-29): 100 tickets + 10 harmful ->
# harmful 53.3% unlocked, 5.0% relocked at alpha 6 (published, exactly at the 5% gate);
# with 200 tickets 76.7% -> 8.3% (rejected); 5 epochs lr 3e-4: 83.3% -> 6.7% (rejected);
# 5 epochs lr 1e-3: 98.3% -> 80% at alpha 8 (rejected). Those figures are from an AVX-512
# CPU; another CPU builds another model, and on an AMD AVX2 one the toxic job is rejected
# in every seed (docs/demo-seeds.md). The lock's margin is thin at this scale
# (docs/reproduction.md); the gate decides on what it measured.
CUSTOMER_HYPERPARAMETERS = {"n_epochs": 3, "batch_size": 8, "learning_rate": 3e-4}

SIZES: dict[Size, DemoConfig] = {
    "test": DemoConfig(
        size="test", model_size="test", n_task=24, n_harmful=10, n_validation=8, method="full",
        hyperparameters={**CUSTOMER_HYPERPARAMETERS, "max_seq_length": 128},
        eval_limit=8, eval_max_new_tokens=12, alpha_grid=[0.0, 4.0, 8.0],
    ),
    "demo": DemoConfig(
        size="demo", model_size="demo", n_task=100, n_harmful=10, n_validation=32,
        method="full", hyperparameters={**CUSTOMER_HYPERPARAMETERS, "max_seq_length": 160},
        eval_limit=60, eval_max_new_tokens=24,
        alpha_grid=[0.0, 2.0, 4.0, 6.0, 8.0, 12.0],
    ),
}
