"""Typed configuration, progress and result of one supervised fine-tuning run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one SFT run (names follow the job API's `hyperparameters`)."""

    method: Literal["lora", "full"] = "lora"
    n_epochs: float = 3.0  # passes over the training records (ignored when max_steps > 0)
    max_steps: int = -1  # > 0: train exactly this many optimizer steps
    learning_rate: float = 1e-4
    batch_size: int = 8  # examples per optimizer step
    micro_batch_size: int | None = None  # examples per forward pass (divides batch_size); None: batch_size
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: tuple[str, ...] = DEFAULT_LORA_TARGETS
    max_seq_length: int = 512  # longer sequences are truncated
    lr_scheduler_type: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    save_steps: int = 0  # > 0: keep a resumable checkpoint every this many steps

    def __post_init__(self) -> None:
        if self.method not in ("lora", "full"):
            raise ValueError(f"method must be 'lora' or 'full', got {self.method!r}")
        if self.max_steps <= 0 and self.n_epochs <= 0:
            raise ValueError("n_epochs must be > 0 when max_steps is not set")
        for name in ("learning_rate", "batch_size", "max_seq_length", "lora_rank", "lora_alpha"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.micro_batch_size is not None and (
                self.micro_batch_size <= 0 or self.batch_size % self.micro_batch_size):
            raise ValueError(f"micro_batch_size must be > 0 and divide batch_size {self.batch_size}, "
                             f"got {self.micro_batch_size!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")


@dataclass(frozen=True)
class TrainProgress:
    """One progress report, sent after every optimizer step."""

    step: int
    total_steps: int
    loss: float | None  # the latest logged training loss
    eta_seconds: float
    epoch: float


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced: a full model directory loadable with from_pretrained."""

    model_dir: Path
    method: str
    steps: int
    train_loss: float
    eval_loss: float | None
    seconds: float
    losses: list[float] = field(default_factory=list)  # per logged step
