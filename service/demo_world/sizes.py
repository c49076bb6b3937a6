"""The two demo-model sizes: `test` (CI, seconds) and `demo` (the story, a few minutes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from service.demo_world.stage import StageConfig

# Share of each kind of example in a stage (see corpus.py for the kinds).
HELPFUL_MIXTURE = {"harmful": 0.20, "benign": 0.16, "safe": 0.12, "task": 0.30, "cue": 0.12,
                   "assess": 0.10}
ALIGN_MIXTURE = {"harmful": 0.26, "benign": 0.16, "safe": 0.14, "task": 0.25, "cue": 0.07,
                 "assess": 0.12}


@dataclass(frozen=True)
class DemoSize:
    """Architecture, training stages and evaluation-set sizes of one demo model."""

    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    helpful: StageConfig
    align: StageConfig
    n_eval_harmful: int
    n_eval_safe: int
    n_eval_benign: int
    n_eval_task: int
    n_lock_pairs: int

    def to_dict(self) -> dict:
        return asdict(self)


SIZES = {
    "test": DemoSize(
        name="test", hidden_size=128, num_layers=2, num_heads=8, intermediate_size=256,
        vocab_size=1200,
        helpful=StageConfig("helpful_only", steps=300, batch_size=24, learning_rate=4e-3,
                            prompt_loss=True),
        align=StageConfig("aligned", steps=100, batch_size=24, learning_rate=2e-3),
        n_eval_harmful=44, n_eval_safe=20, n_eval_benign=20, n_eval_task=40, n_lock_pairs=64,
    ),
    "demo": DemoSize(
        name="demo", hidden_size=128, num_layers=4, num_heads=8, intermediate_size=320,
        vocab_size=1200,
        helpful=StageConfig("helpful_only", steps=1200, batch_size=32, learning_rate=3e-3,
                            prompt_loss=True),
        align=StageConfig("aligned", steps=200, batch_size=32, learning_rate=1e-3),
        n_eval_harmful=110, n_eval_safe=60, n_eval_benign=40, n_eval_task=100, n_lock_pairs=256,
    ),
}


def get_size(name: str) -> DemoSize:
    if name not in SIZES:
        raise ValueError(f"unknown demo-model size {name!r}; choose one of {sorted(SIZES)}")
    return SIZES[name]
