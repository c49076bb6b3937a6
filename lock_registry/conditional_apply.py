"""Apply a conditional lock with hooks, and calibrate it on a fine-tuned model.

See :mod:`lock_registry.conditional` for what the lock is. Applying registers three
kinds of hooks; ``handle.remove()`` takes them all away, and since no parameter is
touched the model is then exactly what it was.

* a forward pre-hook on the decoder stack finds, on a prefill (empty cache), the index
  of each row's last real token (the last prompt token);
* a forward hook on decoder layer ``condition_layer`` scores that token's residual
  against the condition direction and records which rows fire;
* forward pre-hooks on the ``o_proj`` of each layer that holds a behaviour head add
  ``alpha * sigma_h * direction_h`` to the fired rows' head slots at the policy's
  positions (the last prompt token; under ``answer`` every decoded token as well).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import torch
from torch import nn

from lock_registry.architectures import attention_output_projections, decoder_layers
from lock_registry.conditional import (
    ConditionalLock,
    ThresholdFit,
    _geometry,
    condition_scores,
    fit_threshold,
    prompt_activations,
)
from lock_registry.errors import LockError, LockShapeError, UnlockNotAllowedError


@dataclass
class _GateState:
    """What the hooks share during one generation."""

    last: torch.Tensor | None = None  # [batch] index of the last prompt token (prefill)
    fired: torch.Tensor | None = None  # [batch] bool, set at the condition layer
    scores: torch.Tensor | None = None  # [batch] condition cosine of the last prefill
    prefill: bool = False


class ConditionalLockHandle:
    """Hooks of an applied conditional lock; ``remove()`` (or leaving ``with``) undoes it.

    The model is mutated in place while the hooks are registered. ``last_scores`` and
    ``last_fired`` report the condition of the most recent prefill.
    """

    def __init__(self, handles: list, state: _GateState, alpha: float, threshold: float):
        self._handles = handles
        self._state = state
        self.alpha = alpha
        self.threshold = threshold

    @property
    def last_scores(self) -> torch.Tensor | None:
        return None if self._state.scores is None else self._state.scores.clone()

    @property
    def last_fired(self) -> torch.Tensor | None:
        return None if self._state.fired is None else self._state.fired.clone()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.remove()


def check_fits(model: nn.Module, lock: ConditionalLock) -> None:
    """Refuse a lock whose geometry does not match the model, naming the mismatch."""
    num_layers, num_heads, head_dim, hidden = _geometry(model)
    m = lock.manifest
    for name, got, want in (
        ("num_layers", num_layers, m.num_layers),
        ("num_heads", num_heads, m.num_heads),
        ("head_dim", head_dim, m.head_dim),
        ("hidden_size", hidden, m.hidden_size),
    ):
        if got != want:
            raise LockShapeError(f"lock has {name}={want} but the model has {got}")


def _is_prefill(kwargs: dict) -> bool:
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    return cache is None or cache.get_seq_length() == 0


def _last_real_index(kwargs: dict, args: tuple) -> torch.Tensor:
    tokens = kwargs.get("input_ids", args[0] if args else None)
    if tokens is None:
        tokens = kwargs["inputs_embeds"]
    batch, length = tokens.shape[0], tokens.shape[1]
    mask = kwargs.get("attention_mask")
    if mask is None or mask.dim() != 2 or mask.shape[1] != length:
        return torch.full((batch,), length - 1, dtype=torch.long, device=tokens.device)
    flipped = torch.flip(mask.long(), dims=[1])
    return length - 1 - torch.argmax(flipped, dim=1)


def apply_conditional_lock(
    model: nn.Module,
    lock: ConditionalLock,
    alpha: float,
    *,
    threshold: float | None = None,
    allow_unlock: bool = False,
) -> ConditionalLockHandle:
    """Hook ``lock`` into ``model`` at strength ``alpha`` (mutates the model until removed).

    ``threshold`` overrides the manifest's (base-model) threshold; pass the one
    :func:`calibrate_threshold` fitted on this model. Negative alpha is operator-only.
    """
    if alpha < 0 and not allow_unlock:
        raise UnlockNotAllowedError("negative alpha unlocks; it needs allow_unlock=True")
    check_fits(model, lock)
    m = lock.manifest
    threshold = m.threshold if threshold is None else float(threshold)
    layers = decoder_layers(model)
    projections = attention_output_projections(model)
    param = next(model.parameters())
    state = _GateState()
    condition = lock.condition_direction.to(param.device, torch.float32)
    stack = getattr(model, "model", model)

    def on_stack(_module, args, kwargs):
        state.prefill = _is_prefill(kwargs)
        if state.prefill:
            state.last = _last_real_index(kwargs, args)
            state.fired = None

    def on_condition(_module, _args, output):
        if not state.prefill:
            return
        hidden = output[0] if isinstance(output, tuple) else output
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        at_last = hidden[rows, state.last].float()
        state.scores = condition_scores(at_last, condition).cpu()
        state.fired = (state.scores > threshold).to(hidden.device)

    by_layer: dict[int, torch.Tensor] = {}
    for (layer, head), direction, sigma in zip(
        lock.head_index.tolist(), lock.directions, lock.sigmas, strict=True
    ):
        slot = by_layer.setdefault(layer, torch.zeros(m.num_heads, m.head_dim))
        slot[head] += alpha * float(sigma) * direction.float()
    displacements = {
        layer: slot.flatten().to(param.device, param.dtype) for layer, slot in by_layer.items()
    }

    def steer(layer: int):
        def hook(_module, args):
            if state.fired is None or not bool(state.fired.any()):
                return None
            x = args[0]
            gate = state.fired.to(x.dtype)[:, None] * displacements[layer]
            x = x.clone()
            if state.prefill:
                rows = torch.arange(x.shape[0], device=x.device)
                x[rows, state.last] = x[rows, state.last] + gate
            elif m.position == "answer":
                x = x + gate[:, None, :]
            else:
                return None
            return (x,) + tuple(args[1:])

        return hook

    handles = [
        stack.register_forward_pre_hook(on_stack, with_kwargs=True),
        layers[m.condition_layer].register_forward_hook(on_condition),
    ]
    handles += [
        projections[layer].register_forward_pre_hook(steer(layer)) for layer in displacements
    ]
    return ConditionalLockHandle(handles, state, alpha, threshold)


def calibrate_threshold(model: nn.Module, tokenizer, lock: ConditionalLock) -> ThresholdFit:
    """Fit the condition threshold on *this* model from the calibration set the lock carries."""
    if not lock.calibration:
        raise LockError("the lock carries no calibration prompts")
    check_fits(model, lock)
    acts = prompt_activations(model, tokenizer, [p.text for p in lock.calibration])
    labels = torch.tensor([p.harmful for p in lock.calibration])
    scores = condition_scores(acts.residual[:, lock.manifest.condition_layer], lock.condition_direction)
    return fit_threshold(scores, labels)


@dataclass(frozen=True)
class AlphaPoint:
    """First-token decision of the calibration prompts under the lock at one alpha."""

    alpha: float
    harmful_refusal_start: float  # harmful prompts whose refusal start beats compliance
    benign_refusal_start: float  # benign prompts likewise (over-refusal)


def alpha_curve(
    model: nn.Module,
    tokenizer,
    lock: ConditionalLock,
    alphas: Sequence[float],
    *,
    threshold: float,
) -> list[AlphaPoint]:
    """Refusal-start rates on the calibration set under the lock, per alpha.

    A cheap proxy for generation plus judging (one forward per prompt and alpha): the
    relock stage uses it to shortlist alphas before the judged evaluation.
    """
    labels = torch.tensor([p.harmful for p in lock.calibration])
    texts = [p.text for p in lock.calibration]
    curve = []
    for alpha in alphas:
        with apply_conditional_lock(model, lock, alpha, threshold=threshold):
            margin = prompt_activations(
                model, tokenizer, texts,
                refusal_start=lock.manifest.refusal_start,
                compliance_start=lock.manifest.compliance_start,
            ).margin
        refuses = margin > 0
        curve.append(
            AlphaPoint(
                alpha=float(alpha),
                harmful_refusal_start=float(refuses[labels].float().mean()),
                benign_refusal_start=float(refuses[~labels].float().mean()),
            )
        )
    return curve
