"""Apply a conditional lock with hooks (see the package's docstring for what it is).

``lock_registry.apply.apply_lock`` calls ``apply_conditional``, which registers three
kinds of hooks and touches no parameter, so ``handle.remove()`` leaves the model exactly
as it was:

* a forward pre-hook on the decoder stack finds, on a prefill (empty cache), the index
  of each row's last real token (the last prompt token) and keeps the attention mask;
* a forward hook on decoder layer ``condition_layer`` scores the residual averaged over
  each row's last ``condition_window`` real tokens (1: the last prompt token) against the
  condition direction and records which rows fire;
* where the lock carries a task veto (``veto.py``), a forward hook on decoder layer
  ``veto_layer`` scores the same token against the veto direction; a row at or below the
  veto threshold does not fire, whatever its condition;
* forward pre-hooks on the ``o_proj`` of each layer that holds a behaviour head add
  ``alpha * sigma_h * direction_h`` to the fired rows' head slots at the policy's
  positions (the last prompt token; under ``answer`` every decoded token as well).

The hooks define the last prompt token as the last real token of a prefill (the first
forward of a generation); teacher-forced scoring of whole conversations is not what
they steer.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn

from lock_registry.apply import Undo
from lock_registry.architectures import attention_output_projections, decoder_layers
from lock_registry.errors import LockShapeError
from lock_registry.kinds.conditional.condition import condition_scores, window_mean
from lock_registry.kinds.conditional.format import VETO_TENSOR, ConditionalFields
from lock_registry.lock import MetaSafetyLock


@dataclass
class GateState:
    """What the hooks share during one generation (read it with :func:`gate_state`)."""

    last: torch.Tensor | None = None  # [batch] index of the last prompt token (prefill)
    mask: torch.Tensor | None = None  # [batch, seq] the prefill's attention mask (None: all real)
    condition: torch.Tensor | None = None  # [batch] bool, set at the condition layer
    vetoed: torch.Tensor | None = None  # [batch] bool, set at the veto layer (a lock with a task veto)
    scores: torch.Tensor | None = None  # [batch] condition cosine of the last prefill
    prefill: bool = False

    @property
    def fired(self) -> torch.Tensor | None:
        """[batch] bool: the rows the lock steers (condition fired, not vetoed)."""
        if self.condition is None or self.vetoed is None:
            return self.condition
        return self.condition & ~self.vetoed.to(self.condition.device)


_STATES: weakref.WeakKeyDictionary[nn.Module, GateState] = weakref.WeakKeyDictionary()


def gate_state(model: nn.Module) -> GateState | None:
    """The condition of the last prefill under the conditional lock applied to ``model``."""
    return _STATES.get(model)


def _is_prefill(kwargs: dict) -> bool:
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    return cache is None or cache.get_seq_length() == 0


def _prefill_mask(kwargs: dict, args: tuple) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each row's last real token index, and the 2-d attention mask where there is one."""
    tokens = kwargs.get("input_ids", args[0] if args else None)
    if tokens is None:
        tokens = kwargs["inputs_embeds"]
    batch, length = tokens.shape[0], tokens.shape[1]
    mask = kwargs.get("attention_mask")
    if mask is None or mask.dim() != 2 or mask.shape[1] != length:
        return torch.full((batch,), length - 1, dtype=torch.long, device=tokens.device), None
    flipped = torch.flip(mask.long(), dims=[1])
    return length - 1 - torch.argmax(flipped, dim=1), mask


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


def apply_conditional(model: nn.Module, lock: MetaSafetyLock, alpha: float) -> list[Undo]:
    fields = ConditionalFields.of(lock)
    hidden = model.config.hidden_size
    if hidden != fields.hidden_size:
        raise LockShapeError(f"lock has hidden_size={fields.hidden_size}, the model has {hidden}")
    threshold, position, window = fields.threshold, fields.position, fields.condition_window
    layers = decoder_layers(model)
    projections = attention_output_projections(model)
    param = next(model.parameters())
    condition = lock.tensors["condition_direction"].to(param.device, torch.float32)
    veto = lock.tensors.get(VETO_TENSOR)
    veto = None if veto is None else veto.to(param.device, torch.float32)
    displacements = _displacements(lock, alpha, param)
    state = GateState()
    stack = getattr(model, "model", model)

    def on_stack(_module, args, kwargs):
        state.prefill = _is_prefill(kwargs)
        if state.prefill:
            state.last, state.mask = _prefill_mask(kwargs, args)
            state.condition = state.vetoed = None

    def last_token(output) -> torch.Tensor:
        hidden_states = output[0] if isinstance(output, tuple) else output
        rows = torch.arange(hidden_states.shape[0], device=hidden_states.device)
        return hidden_states[rows, state.last].float()

    def on_condition(_module, _args, output):
        if not state.prefill:
            return
        hidden_states = output[0] if isinstance(output, tuple) else output
        reading = window_mean(hidden_states, state.last, state.mask, window)
        state.scores = condition_scores(reading, condition).cpu()
        state.condition = (state.scores > threshold).to(reading.device)

    def on_veto(_module, _args, output):
        if state.prefill:
            last = last_token(output)
            state.vetoed = condition_scores(last, veto) <= fields.veto_threshold

    def steer(layer: int):
        def hook(_module, args):
            fired = state.fired
            if fired is None or not bool(fired.any()):
                return None
            x = args[0]
            gate = fired.to(x.dtype)[:, None] * displacements[layer]
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
        layers[fields.condition_layer].register_forward_hook(on_condition),
    ]
    if veto is not None:
        handles.append(layers[fields.veto_layer].register_forward_hook(on_veto))
    handles += [projections[i].register_forward_pre_hook(steer(i)) for i in displacements]
    _STATES[model] = state

    def undo() -> None:
        for handle in handles:
            handle.remove()
        _STATES.pop(model, None)

    return [undo]

