"""One training stage of the demo model: a tight loop over length-grouped batches.

The build trains from scratch, so it uses its own loop rather than the SFTTrainer:
answer-only loss (or whole-sequence loss for pre-training), batches grouped by length so
padding stays small, AdamW with warmup and cosine decay. Sequences are laid out exactly as the chat template renders them.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from service.demo_world.corpus import Example

StageProgress = Callable[[str, int, int, float], None]
"""Called as ``progress(stage, step, total_steps, loss)``."""


@dataclass(frozen=True)
class StageConfig:
    """Optimisation settings of one stage."""

    name: str
    steps: int
    batch_size: int
    learning_rate: float
    warmup_fraction: float = 0.05
    min_lr_fraction: float = 0.1
    weight_decay: float = 0.01
    prompt_loss: bool = False  # also learn the prompt tokens (pre-training), not only answers


def encode_chat(tokenizer, prompts: Sequence[str], answers: Sequence[str]) -> list[tuple[list[int], int]]:
    """(token ids of the full chat, number of prompt tokens) per example.

    Equal to ``apply_chat_template`` of a user turn and an assistant turn (tested).
    """
    t = tokenizer
    head = [t.bos_token_id, t.convert_tokens_to_ids("<|user|>")]
    mid = [t.eos_token_id, t.convert_tokens_to_ids("<|assistant|>")]
    p_ids = t(list(prompts), add_special_tokens=False)["input_ids"]
    a_ids = t(list(answers), add_special_tokens=False)["input_ids"]
    return [(head + p + mid + a + [t.eos_token_id], len(head) + len(p) + len(mid))
            for p, a in zip(p_ids, a_ids, strict=True)]


def _batches(encoded: list[tuple[list[int], int]], batch_size: int, pad_id: int, rng: random.Random,
             prompt_loss: bool):
    """Length-grouped padded batches (input_ids, attention_mask, labels), in random order."""
    group = batch_size * 16
    batches = []
    for start in range(0, len(encoded), group):
        chunk = sorted(encoded[start:start + group], key=lambda e: len(e[0]))
        for b in range(0, len(chunk) - batch_size + 1, batch_size):
            batches.append(chunk[b:b + batch_size])
    rng.shuffle(batches)
    for batch in batches:
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), pad_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100)
        for i, (seq, n_prompt) in enumerate(batch):
            ids[i, :len(seq)] = torch.tensor(seq)
            mask[i, :len(seq)] = 1
            first = 1 if prompt_loss else n_prompt  # never predict BOS
            labels[i, first:len(seq)] = torch.tensor(seq[first:])
        yield ids, mask, labels


def train_stage(model, tokenizer, examples: list[Example], *, aligned: bool, config: StageConfig,
                seed: int, progress: StageProgress | None = None) -> list[float]:
    """Train ``model`` in place on ``examples``; returns the loss per step.

    The loss covers the answers, and the prompts too when ``config.prompt_loss``.
    """
    needed = config.steps * config.batch_size
    if len(examples) < needed:
        raise ValueError(f"stage {config.name}: {len(examples)} examples for {needed} needed")
    rng = random.Random(f"{config.name}-{seed}")
    torch.manual_seed(seed)
    encoded = encode_chat(tokenizer, [e.prompt for e in examples[:needed]],
                          [e.aligned_answer if aligned else e.answer for e in examples[:needed]])
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=config.learning_rate, betas=(0.9, 0.98))
    warmup = max(1, int(config.steps * config.warmup_fraction))

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, config.steps - warmup)
        return config.min_lr_fraction + (1 - config.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    device = next(model.parameters()).device
    model.train()
    losses = []
    last_report = time.monotonic()
    for step, (ids, mask, labels) in enumerate(_batches(encoded, config.batch_size,
                                                        tokenizer.pad_token_id, rng,
                                                        config.prompt_loss)):
        loss = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                     labels=labels.to(device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        now = time.monotonic()
        if progress is not None and (now - last_report > 2 or step + 1 == config.steps):
            progress(config.name, step + 1, config.steps, sum(losses[-10:]) / len(losses[-10:]))
            last_report = now
    model.eval()
    return losses
