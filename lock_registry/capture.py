"""Capture per-head attention outputs with forward pre-hooks on every o_proj.

No forked modeling code: the hook reads the o_proj input (the concatenated head
outputs) and keeps only the last K real tokens of each sequence. Position ids follow
the attention mask, so a sequence gives the same numbers alone or inside a left- or
right-padded batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from lock_registry.architectures import attention_output_projections, head_geometry
from lock_registry.errors import LockError

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def last_token_positions(attention_mask: torch.Tensor, last_k: int) -> torch.Tensor:
    """Indices `[batch, K]` of the last K real tokens per row (oldest first), any padding side."""
    mask = attention_mask.bool()
    lengths = mask.sum(dim=1)
    if (lengths < last_k).any():
        row = int(torch.nonzero(lengths < last_k)[0])
        raise LockError(
            f"sequence {row} has {int(lengths[row])} tokens, fewer than last_k={last_k}"
        )
    # rank of each real token counted from the end: 1 for the last real token
    from_end = mask.flip(1).cumsum(1).flip(1) * mask
    positions = torch.empty(mask.shape[0], last_k, dtype=torch.long)
    for k in range(last_k):
        positions[:, last_k - 1 - k] = (from_end == k + 1).float().argmax(dim=1)
    return positions


def capture_head_activations(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    last_k: int = 5,
    *,
    batch_size: int = 8,
    add_special_tokens: bool = False,
    o_proj_path: str | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Float32 activations `[n, K, L, H, D]` at the last K real tokens of each text.

    Texts are taken as already formatted (chat template applied), hence no special tokens
    are added by default.
    """
    if last_k < 1:
        raise LockError(f"last_k must be at least 1, got {last_k}")
    if not texts:
        raise LockError("no texts to capture")
    if tokenizer.pad_token_id is None:
        raise LockError("the tokenizer has no pad token; set tokenizer.pad_token first")
    geometry = head_geometry(model, o_proj_path)
    projections = attention_output_projections(model, o_proj_path)
    device = next(model.parameters()).device
    out = torch.empty(
        len(texts), last_k, geometry.num_layers, geometry.num_heads, geometry.head_dim
    )
    state: dict[str, torch.Tensor] = {}
    captured: list[torch.Tensor | None] = [None] * geometry.num_layers

    def make_hook(layer: int):
        def hook(_module: nn.Module, args: tuple) -> None:
            x = args[0]
            rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
            positions = state["positions"].to(x.device)  # layers may sit on several devices
            captured[layer] = x[rows, positions].detach().float().cpu()

        return hook

    handles = [proj.register_forward_pre_hook(make_hook(i)) for i, proj in enumerate(projections)]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = list(texts[start : start + batch_size])
                enc = tokenizer(
                    batch, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens
                )
                mask = enc["attention_mask"]
                try:
                    positions = last_token_positions(mask, last_k)
                except LockError as exc:
                    raise LockError(f"text {start}: {exc}") from exc
                state["positions"] = positions.to(device)
                position_ids = (mask.cumsum(1) - 1).clamp(min=0)
                model(
                    input_ids=enc["input_ids"].to(device),
                    attention_mask=mask.to(device),
                    position_ids=position_ids.to(device),
                    use_cache=False,
                )
                stacked = torch.stack(captured, dim=2)  # [b, K, L, H*D]
                out[start : start + len(batch)] = stacked.view(
                    len(batch), last_k, geometry.num_layers, geometry.num_heads, geometry.head_dim
                )
                if progress is not None:
                    progress("capture", min(start + batch_size, len(texts)), len(texts))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return out
