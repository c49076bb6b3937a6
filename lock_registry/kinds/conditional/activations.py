"""Reading a model at the last prompt token: residuals after each decoder layer (also
averaged over the last few prompt tokens, the condition's reading), every head's o_proj
input, and the refusal-vs-compliance first-token margin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lock_registry.architectures import attention_output_projections, decoder_layers, head_geometry
from lock_registry.errors import LockError
from lock_registry.kinds.conditional.condition import check_window, window_mean


def _geometry(model: nn.Module) -> tuple[int, int, int, int]:
    """(num_layers, num_heads, head_dim, hidden_size) of ``model``."""
    geometry = head_geometry(model)
    return geometry.num_layers, geometry.num_heads, geometry.head_dim, model.config.hidden_size


def format_prompts(tokenizer, prompts: Sequence[str],
                   systems: Sequence[str | None] | None = None) -> list[str]:
    """Render user prompts with the chat template, ending at the assistant's turn; each
    under its system prompt where ``systems`` gives one (None: the template's default)."""
    if not getattr(tokenizer, "chat_template", None):
        raise LockError("the tokenizer has no chat template")
    systems = [None] * len(prompts) if systems is None else list(systems)
    if len(systems) != len(prompts):
        raise LockError(f"{len(systems)} system prompts for {len(prompts)} prompts")
    return [
        tokenizer.apply_chat_template(
            ([{"role": "system", "content": s}] if s else []) + [{"role": "user", "content": p}],
            tokenize=False, add_generation_prompt=True,
        )
        for p, s in zip(prompts, systems, strict=True)
    ]


def _encode(tokenizer, texts: Sequence[str], device: torch.device) -> dict[str, torch.Tensor]:
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # the last prompt token sits at index -1 in every row
    try:
        enc = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    return {k: v.to(device) for k, v in enc.items()}


def _first_token_id(tokenizer, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise LockError(f"{text!r} encodes to no token")
    return int(ids[0])


@dataclass
class PromptActivations:
    """At the last prompt token: residual after each layer and every head's output; the
    residual also averaged over the last ``window`` prompt tokens."""

    residual: torch.Tensor  # [n, num_layers, hidden]
    pooled: torch.Tensor  # [n, num_layers, hidden]: the mean over the last `window` tokens
    heads: torch.Tensor  # [n, num_layers, num_heads, head_dim]
    margin: torch.Tensor  # [n] logit(refusal start) - logit(compliance start)


@torch.no_grad()
def prompt_activations(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    *,
    refusal_start: str = "I",
    compliance_start: str = "Sure",
    batch_size: int = 32,
    systems: Sequence[str | None] | None = None,
    window: int = 1,
) -> PromptActivations:
    """Read residuals and head outputs at the last prompt token, and the residuals averaged
    over the last ``window`` prompt tokens, in batches (each prompt under its system prompt
    where ``systems`` gives one)."""
    check_window(window)
    num_layers, num_heads, head_dim, _ = _geometry(model)
    device = next(model.parameters()).device
    layers = decoder_layers(model)
    projections = attention_output_projections(model)
    refuse_id = _first_token_id(tokenizer, refusal_start)
    comply_id = _first_token_id(tokenizer, compliance_start)
    store: dict[str, list[torch.Tensor]] = {}
    batch: dict[str, torch.Tensor] = {}

    def head_hook(index: int):
        def hook(_module, args):
            store.setdefault(f"h{index}", []).append(args[0][:, -1].float().cpu())

        return hook

    def residual_hook(index: int):
        def hook(_module, _args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            store.setdefault(f"r{index}", []).append(hidden[:, -1].float().cpu())
            last = torch.full((hidden.shape[0],), hidden.shape[1] - 1)  # left padding
            pooled = window_mean(hidden, last, batch["mask"], window)
            store.setdefault(f"p{index}", []).append(pooled.cpu())

        return hook

    handles = []
    for i, (layer, proj) in enumerate(zip(layers, projections, strict=True)):
        handles.append(proj.register_forward_pre_hook(head_hook(i)))
        handles.append(layer.register_forward_hook(residual_hook(i)))
    margins = []
    try:
        texts = format_prompts(tokenizer, prompts, systems)
        for start in range(0, len(texts), batch_size):
            enc = _encode(tokenizer, texts[start : start + batch_size], device)
            batch["mask"] = enc["attention_mask"]
            logits = model(**enc, use_cache=False).logits[:, -1].float().cpu()
            margins.append(logits[:, refuse_id] - logits[:, comply_id])
    finally:
        for handle in handles:
            handle.remove()
    n = len(prompts)
    heads = torch.stack([torch.cat(store[f"h{i}"]) for i in range(num_layers)], dim=1)
    residual, pooled = (
        torch.stack([torch.cat(store[f"{key}{i}"]) for i in range(num_layers)], dim=1) for key in "rp"
    )
    return PromptActivations(
        residual=residual,
        pooled=pooled,
        heads=heads.reshape(n, num_layers, num_heads, head_dim),
        margin=torch.cat(margins),
    )

