"""Apply a conditional lock with hooks, and calibrate it on a fine-tuned model.

See :mod:`lock_registry.conditional` for what the lock is. Importing this module
registers the ``conditional`` applier with :func:`lock_registry.apply.apply_lock`, which
then returns the usual ``LockHandle``. Applying registers three kinds of hooks and
touches no parameter, so ``handle.remove()`` leaves the model exactly as it was:

* a forward pre-hook on the decoder stack finds, on a prefill (empty cache), the index
  of each row's last real token (the last prompt token);
* a forward hook on decoder layer ``condition_layer`` scores that token's residual
  against the condition direction and records which rows fire;
* forward pre-hooks on the ``o_proj`` of each layer that holds a behaviour head add
  ``alpha * sigma_h * direction_h`` to the fired rows' head slots at the policy's
  positions (the last prompt token; under ``answer`` every decoded token as well).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from lock_registry.apply import Undo, apply_lock, register_applier
from lock_registry.architectures import attention_output_projections, decoder_layers
from lock_registry.conditional import (
    KIND,
    ThresholdFit,
    calibration_prompts,
    condition_scores,
    fit_threshold,
    prompt_activations,
    with_threshold,
)
from lock_registry.errors import LockError, LockShapeError
from lock_registry.lock import MetaSafetyLock


@dataclass
class GateState:
    """What the hooks share during one generation (read it with :func:`gate_state`)."""

    last: torch.Tensor | None = None  # [batch] index of the last prompt token (prefill)
    fired: torch.Tensor | None = None  # [batch] bool, set at the condition layer
    scores: torch.Tensor | None = None  # [batch] condition cosine of the last prefill
    prefill: bool = False


_STATES: weakref.WeakKeyDictionary[nn.Module, GateState] = weakref.WeakKeyDictionary()


def gate_state(model: nn.Module) -> GateState | None:
    """The condition of the last prefill under the conditional lock applied to ``model``."""
    return _STATES.get(model)


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


def _displacements(lock: MetaSafetyLock, alpha: float, like: torch.Tensor) -> dict[int, torch.Tensor]:
    geometry = lock.geometry
    by_layer: dict[int, torch.Tensor] = {}
    tensors = lock.tensors
    for layer, head, direction, sigma in zip(
        tensors["layers"].tolist(), tensors["heads"].tolist(),
        tensors["directions"], tensors["sigmas"], strict=True,
    ):
        slot = by_layer.setdefault(layer, torch.zeros(geometry.num_heads, geometry.head_dim))
        slot[head] += alpha * float(sigma) * direction.float()
    return {layer: s.flatten().to(like.device, like.dtype) for layer, s in by_layer.items()}


def _apply_conditional(model: nn.Module, lock: MetaSafetyLock, alpha: float) -> list[Undo]:
    extra = lock.manifest.model_extra or {}
    hidden = model.config.hidden_size
    if hidden != extra["hidden_size"]:
        raise LockShapeError(f"lock has hidden_size={extra['hidden_size']}, the model has {hidden}")
    threshold, position = float(extra["threshold"]), extra["position"]
    layers = decoder_layers(model)
    projections = attention_output_projections(model)
    param = next(model.parameters())
    condition = lock.tensors["condition_direction"].to(param.device, torch.float32)
    displacements = _displacements(lock, alpha, param)
    state = GateState()
    stack = getattr(model, "model", model)

    def on_stack(_module, args, kwargs):
        state.prefill = _is_prefill(kwargs)
        if state.prefill:
            state.last = _last_real_index(kwargs, args)
            state.fired = None

    def on_condition(_module, _args, output):
        if not state.prefill:
            return
        hidden_states = output[0] if isinstance(output, tuple) else output
        rows = torch.arange(hidden_states.shape[0], device=hidden_states.device)
        state.scores = condition_scores(hidden_states[rows, state.last].float(), condition).cpu()
        state.fired = (state.scores > threshold).to(hidden_states.device)

    def steer(layer: int):
        def hook(_module, args):
            if state.fired is None or not bool(state.fired.any()):
                return None
            x = args[0]
            gate = state.fired.to(x.dtype)[:, None] * displacements[layer]
            if state.prefill:
                x = x.clone()
                rows = torch.arange(x.shape[0], device=x.device)
                x[rows, state.last] = x[rows, state.last] + gate
            elif position == "answer":
                x = x + gate[:, None, :]
            else:
                return None
            return (x, *args[1:])

        return hook

    handles = [
        stack.register_forward_pre_hook(on_stack, with_kwargs=True),
        layers[int(extra["condition_layer"])].register_forward_hook(on_condition),
    ]
    handles += [projections[i].register_forward_pre_hook(steer(i)) for i in displacements]
    _STATES[model] = state

    def undo() -> None:
        for handle in handles:
            handle.remove()
        _STATES.pop(model, None)

    return [undo]


register_applier(KIND, _apply_conditional)


def calibrate_threshold(model: nn.Module, tokenizer, lock: MetaSafetyLock) -> ThresholdFit:
    """Fit the condition threshold on *this* model from the calibration set the lock carries."""
    if lock.manifest.kind != KIND:
        raise LockError(f"a {lock.manifest.kind!r} lock has no condition to calibrate")
    prompts = calibration_prompts(lock)
    if not prompts:
        raise LockError("the lock carries no calibration prompts")
    acts = prompt_activations(model, tokenizer, [p.text for p in prompts])
    labels = torch.tensor([p.harmful for p in prompts])
    layer = int(lock.manifest.model_extra["condition_layer"])
    scores = condition_scores(acts.residual[:, layer], lock.tensors["condition_direction"])
    if not torch.isfinite(scores).all():
        raise LockError(
            f"the condition scores of the calibration prompts are not finite on this model "
            f"(its residual after layer {layer} holds NaN or inf): the threshold cannot be fitted"
        )
    return fit_threshold(scores, labels)


@dataclass(frozen=True)
class AlphaPoint:
    """First-token decision of the calibration prompts under the lock at one alpha."""

    alpha: float
    harmful_refusal_start: float  # harmful prompts whose refusal start beats compliance
    benign_refusal_start: float  # benign prompts likewise (over-refusal)


def alpha_curve(
    model: nn.Module, tokenizer, lock: MetaSafetyLock, alphas: Sequence[float]
) -> list[AlphaPoint]:
    """Refusal-start rates on the carried calibration set under the lock, per alpha.

    A cheap proxy for generation plus judging (one forward per prompt and alpha): the
    relock stage can shortlist alphas with it before the judged evaluation.
    """
    prompts = calibration_prompts(lock)
    labels = torch.tensor([p.harmful for p in prompts])
    extra = lock.manifest.model_extra
    curve = []
    for alpha in alphas:
        with apply_lock(model, lock, alpha):
            margin = prompt_activations(
                model, tokenizer, [p.text for p in prompts],
                refusal_start=extra["refusal_start"], compliance_start=extra["compliance_start"],
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


def calibrated(model: nn.Module, tokenizer, lock: MetaSafetyLock) -> tuple[MetaSafetyLock, ThresholdFit]:
    """The lock with its threshold re-fitted on ``model`` (what the relock stage applies).

    The fitted lock's manifest records the fit as ``threshold_fit`` (the threshold it
    replaced, the calibration AUC and the condition's firing rates); the tensors, and so
    the sha256, are the original lock's.
    """
    fit = calibrate_threshold(model, tokenizer, lock)
    record = {"previous_threshold": float(lock.manifest.model_extra["threshold"]), **asdict(fit)}
    return with_threshold(lock, fit.threshold, threshold_fit=record), fit


def fit_to_model(
    model: nn.Module, tokenizer, lock: MetaSafetyLock
) -> tuple[MetaSafetyLock, ThresholdFit | None]:
    """The lock as the relock stage should apply it to ``model``, whatever its kind, and its fit.

    A conditional lock gets its threshold re-fitted on ``model`` (see :func:`calibrated`);
    other kinds need no fit and come back unchanged, with None.
    """
    if lock.manifest.kind != KIND:
        return lock, None
    return calibrated(model, tokenizer, lock)
