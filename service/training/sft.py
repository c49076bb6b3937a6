"""`train_sft`: fine-tune a causal LM on chat records with TRL's SFTTrainer.

Records are chat-format dicts ``{"messages": [{"role", "content"}, ...]}``; each becomes
a conversational prompt/completion pair (the last assistant message is the completion),
so the loss covers the answer only. LoRA adapters are merged into the weights before
saving, so ``model_dir`` always holds a plain model that loads with ``from_pretrained``.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from service.training.config import TrainConfig, TrainProgress, TrainResult
from service.training.progress import ProgressCallback

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")
CHECKPOINTS = "checkpoints"


class TrainingCancelled(RuntimeError):
    """Raised when ``should_cancel`` returned True; no model was written to ``out_dir``."""

    def __init__(self, step: int) -> None:
        super().__init__(f"training cancelled at step {step}")
        self.step = step


def records_to_prompt_completion(records: Sequence[dict[str, Any]]) -> list[dict[str, list]]:
    """Chat records -> TRL conversational prompt/completion rows; bad records raise ValueError."""
    rows = []
    for i, record in enumerate(records):
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or len(messages) < 2:
            raise ValueError(f"record {i}: needs 'messages', a list of at least two messages")
        for j, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                raise ValueError(f"record {i} message {j}: role must be one of {ROLES}")
            if not isinstance(m.get("content"), str):
                raise ValueError(f"record {i} message {j}: content must be a string")  # noqa: TRY004
        if messages[-1]["role"] != "assistant":
            raise ValueError(f"record {i}: the last message must be the assistant's answer")
        clean = [{"role": m["role"], "content": m["content"]} for m in messages]
        rows.append({"prompt": clean[:-1], "completion": clean[-1:]})
    return rows


def _latest_checkpoint(path: Path) -> Path:
    """A checkpoint directory itself, or the newest ``checkpoint-N`` inside ``path``."""
    if (path / "trainer_state.json").exists():
        return path
    found = sorted(path.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    if not found:
        raise FileNotFoundError(f"no checkpoint to resume from in {path}")
    return found[-1]


def training_precision() -> str:
    """"bf16" (autocast) on a CUDA GPU that supports it, else "fp32". TRL's SFTConfig turns
    bf16 autocast on by default, also on a CPU: there, without native bf16 (AVX2), every
    matmul falls back to a slow reference kernel (one SmolLM2-135M step: 100 s against 10 s
    in fp32, measured 2026-12-06) and the result depends on the CPU's instruction set."""
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def train_sft(
    base_model: str | Path,
    train_records: Sequence[dict[str, Any]],
    out_dir: Path,
    config: TrainConfig,
    *,
    eval_records: Sequence[dict[str, Any]] | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    resume_from: Path | None = None,
) -> TrainResult:
    """Fine-tune ``base_model`` (hub id or directory) and save the result to ``out_dir``.

    ``on_progress`` gets a TrainProgress after every optimizer step; ``should_cancel`` is
    polled after every step (cooperative cancel: raises TrainingCancelled, after saving a
    checkpoint when ``config.save_steps`` > 0). ``resume_from`` is a checkpoint directory
    (or a ``checkpoints`` folder of an earlier run of the same job) to continue from.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    if not train_records:
        raise ValueError("train_records is empty")
    train_rows = records_to_prompt_completion(train_records)
    eval_rows = records_to_prompt_completion(eval_records) if eval_records else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()

    set_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.float32)

    peft_config = None
    if config.method == "lora":
        from peft import LoraConfig

        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        targets = [t for t in config.lora_target_modules if t in present]
        if not targets:
            raise ValueError(f"none of the LoRA target modules {config.lora_target_modules} "
                             f"exist in {base_model}")
        peft_config = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=targets,
            task_type="CAUSAL_LM",
        )

    ckpt_dir = out_dir / CHECKPOINTS
    # Micro-batches accumulate to the same optimizer steps (transformers normalises the loss
    # by the step's token count); on a CPU, one example per pass spends nothing on padding.
    micro = config.micro_batch_size or config.batch_size
    args = SFTConfig(
        output_dir=str(ckpt_dir),
        num_train_epochs=config.n_epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=config.batch_size // micro,
        per_device_eval_batch_size=config.batch_size,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio in transformers 5
        weight_decay=config.weight_decay,
        max_length=config.max_seq_length,
        completion_only_loss=True,
        gradient_checkpointing=False,
        bf16=training_precision() == "bf16",
        use_cpu=not torch.cuda.is_available(),
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=1,
        save_strategy="steps" if config.save_steps > 0 else "no",
        save_steps=config.save_steps if config.save_steps > 0 else 500,
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    callback = ProgressCallback(on_progress, should_cancel)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes to on_progress, not stdout
    resume = str(_latest_checkpoint(Path(resume_from))) if resume_from else None
    output = trainer.train(resume_from_checkpoint=resume)
    if callback.cancelled:
        raise TrainingCancelled(trainer.state.global_step)

    eval_loss = None
    if eval_rows:
        eval_loss = float(trainer.evaluate()["eval_loss"])

    trained = trainer.model
    if config.method == "lora":
        trained = trained.merge_and_unload()
    trained.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return TrainResult(
        model_dir=out_dir,
        method=config.method,
        steps=trainer.state.global_step,
        train_loss=float(output.training_loss),
        eval_loss=eval_loss,
        seconds=time.monotonic() - start,
        losses=callback.losses,
    )
