"""Task exact match and validation loss on chat records."""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Sequence

import torch

_STRIP = string.punctuation + string.whitespace + "\u201c\u201d\u2018\u2019"


def normalise_answer(text: str) -> str:
    """Case, outer punctuation/quotes and runs of whitespace do not matter for exact match."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", " ", text).strip(_STRIP)


def exact_match(response: str, answer: str) -> bool:
    """True when the answer, normalised, equals the reference, normalised."""
    return normalise_answer(response) == normalise_answer(answer)


def _check_record(i: int, record: dict) -> list[dict]:
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or len(messages) < 2:
        raise ValueError(f"validation record {i}: needs 'messages' with at least two turns")
    if not isinstance(messages[-1], dict) or messages[-1].get("role") != "assistant":
        raise ValueError(f"validation record {i}: the last message must be the assistant's")
    return messages


def _encode_record(tokenizer, messages: list[dict], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of the whole chat and labels scoring only the final assistant answer."""
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"][:max_length]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    shared = 0  # tokens of the rendered prompt that the full chat starts with
    while shared < min(len(prompt_ids), len(full_ids)) and prompt_ids[shared] == full_ids[shared]:
        shared += 1
    labels = [-100] * shared + full_ids[shared:]
    return full_ids, labels


@torch.inference_mode()
def validation_loss(
    model,
    tokenizer,
    records: Sequence[dict],
    *,
    batch_size: int = 16,
    max_length: int = 1024,
) -> float:
    """Mean token cross-entropy of the final assistant answers of chat records.

    Each record is ``{"messages": [...]}`` as in a training file; the answer is scored
    given everything before it (rendered with the tokenizer's chat template).
    """
    if not records:
        raise ValueError("no validation records")
    encoded = [
        _encode_record(tokenizer, _check_record(i, r), max_length) for i, r in enumerate(records)
    ]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start : start + batch_size]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (x, y) in enumerate(batch):
                ids[row, : len(x)] = torch.tensor(x)
                labels[row, : len(y)] = torch.tensor(y)
                mask[row, : len(x)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
            shift_labels = labels[:, 1:].reshape(-1).to(device)
            loss = torch.nn.functional.cross_entropy(
                shift_logits, shift_labels, ignore_index=-100, reduction="sum"
            )
            total += float(loss)
            count += int((shift_labels != -100).sum())
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("the validation records have no answer tokens to score")
    loss = total / count
    if not math.isfinite(loss):
        raise ValueError(f"validation loss is not finite ({loss})")
    return loss
