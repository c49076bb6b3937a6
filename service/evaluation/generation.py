"""Batched greedy generation for any Hugging Face causal LM with a chat template.

Prompts are rendered with the tokenizer's chat template (generation prompt added),
sorted by length so that batches need little padding, left-padded, and decoded
greedily with the KV cache; answers come back in the caller's order. Pad and EOS
ids are passed explicitly, so a tokenizer without a pad token works (EOS pads).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each batch."""


@dataclass(frozen=True)
class GenerationConfig:
    """How to generate: greedy, batched."""

    batch_size: int = 32
    """Prompts per forward batch."""
    max_new_tokens: int = 64
    """Upper bound on answer length in tokens."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def render_chat_prompt(tokenizer, prompt: str, system: str | None = None) -> str:
    """The chat-template text of one user turn, ready for the assistant's answer."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the tokenizer has no chat template; generation needs one")
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def special_token_ids(tokenizer, model=None) -> tuple[int, list[int]]:
    """(pad id, eos ids) for generation: pad falls back to EOS, EOS to the model's config."""
    eos = tokenizer.eos_token_id
    if eos is None and model is not None:
        eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        raise ValueError("neither the tokenizer nor the model names an EOS token")
    eos_ids = list(eos) if isinstance(eos, (list, tuple)) else [int(eos)]
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = eos_ids[0]
    return int(pad), eos_ids


def _encode(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    # The chat template writes BOS itself where the model wants one.
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def _left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        if s:
            ids[row, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[row, width - len(s) :] = 1
    return ids, mask


def _strip_after_eos(tokens: list[int], eos_ids: list[int]) -> list[int]:
    for i, t in enumerate(tokens):
        if t in eos_ids:
            return tokens[:i]
    return tokens


@torch.inference_mode()
def generate_token_ids(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    config: GenerationConfig = GenerationConfig(),
    progress: Progress | None = None,
) -> list[list[int]]:
    """Greedy continuations (token ids, EOS and after removed) of already-rendered texts."""
    if not texts:
        return []
    pad_id, eos_ids = special_token_ids(tokenizer, model)
    encoded = _encode(tokenizer, texts)
    for i, ids in enumerate(encoded):
        if not ids:
            raise ValueError(f"prompt {i} renders to no tokens")
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]), reverse=True)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[list[int] | None] = [None] * len(encoded)
    try:
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            ids, mask = _left_pad([encoded[i] for i in batch], pad_id)
            generated = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                do_sample=False,
                max_new_tokens=config.max_new_tokens,
                pad_token_id=pad_id,
                eos_token_id=eos_ids,
                use_cache=True,
                temperature=None,
                top_p=None,
                top_k=None,
            )
            new = generated[:, ids.shape[1] :].tolist()
            for i, tokens in zip(batch, new, strict=True):
                out[i] = _strip_after_eos(tokens, eos_ids)
            if progress is not None:
                progress(min(start + len(batch), len(order)), len(order))
    finally:
        model.train(was_training)
    return [o if o is not None else [] for o in out]


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    systems: Sequence[str | None] | None = None,
    config: GenerationConfig = GenerationConfig(),
    progress: Progress | None = None,
) -> list[str]:
    """Greedy chat answers to user prompts, in order (batched, left-padded, KV cache)."""
    if systems is not None and len(systems) != len(prompts):
        raise ValueError(f"{len(systems)} system prompts for {len(prompts)} prompts")
    systems = systems if systems is not None else [None] * len(prompts)
    texts = [render_chat_prompt(tokenizer, p, s) for p, s in zip(prompts, systems, strict=True)]
    token_ids = generate_token_ids(model, tokenizer, texts, config=config, progress=progress)
    return [tokenizer.decode(t, skip_special_tokens=True).strip() for t in token_ids]
