"""Supervised fine-tuning on TRL's SFTTrainer (LoRA merged afterwards, or full)."""

from service.training.config import TrainConfig, TrainProgress, TrainResult
from service.training.sft import (
    TrainingCancelled,
    records_to_prompt_completion,
    train_sft,
    training_precision,
)

__all__ = [
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "TrainingCancelled",
    "records_to_prompt_completion",
    "train_sft",
    "training_precision",
]
