"""Save a locked model, so that loading it gives the locked model.

Families whose config has a switch that gives every attention projection a bias
(`BAKE_SWITCHES`: Llama and Gemma, `attention_bias`) are *baked*: the o_proj biases carry
the lock, the q/k/v biases the switch also creates are written as zeros, and plain
`AutoModelForCausalLM.from_pretrained(dir)` (or any server that reads the config) loads
the model already locked. Other families (Mistral, Qwen2, ...) have no such switch: their
weights are saved unchanged with the lock beside them, and `load_locked(dir)` applies it.
Only kinds that say they are `bakeable` (a constant o_proj bias: head_bias) are baked;
hook-based kinds (`conditional`) cannot be expressed by a constant bias, so they always
travel beside the weights and `load_locked` applies them.
Either way the lock and the alpha used are kept in `dir/safetylock/`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lock_registry.apply import LockHandle, active_lock, apply_lock
from lock_registry.architectures import decoder_layers, model_type
from lock_registry.errors import LockFormatError, LockStateError
from lock_registry.kinds import get_kind
from lock_registry.lock import MetaSafetyLock

LOCK_SUBDIR = "safetylock"
APPLIED_FILE = "applied.json"
# model_type -> config switch that adds a bias to q, k, v and o projections
BAKE_SWITCHES: dict[str, str] = {"llama": "attention_bias", "gemma": "attention_bias"}
_BIASED_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


def bakes(model: nn.Module, lock: MetaSafetyLock | None = None) -> bool:
    """Whether `save_locked` writes `lock` into this model's weights (its kind is
    `bakeable` and the family has a bias switch)."""
    kind_bakes = lock is None or get_kind(lock.manifest.kind).bakeable
    return kind_bakes and model_type(model) in BAKE_SWITCHES


@dataclass
class LockedModel:
    """What `load_locked` returns: the model, its lock, and the handle if applied on load."""

    model: nn.Module
    lock: MetaSafetyLock
    alpha: float
    baked: bool
    handle: LockHandle | None


def _zero_biases(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Add zero biases for every q/k/v/o projection that has none in `state`."""
    names = {id(module): name for name, module in model.named_modules()}
    for layer in decoder_layers(model):
        for proj_name in _BIASED_PROJECTIONS:
            proj = layer.self_attn.get_submodule(proj_name)
            key = f"{names[id(proj)]}.bias"
            if key not in state:
                state[key] = torch.zeros(proj.out_features, dtype=proj.weight.dtype)


def save_locked(
    model: nn.Module,
    tokenizer,
    lock: MetaSafetyLock,
    alpha: float | None,
    out_dir: str | Path,
    *,
    allow_unlock: bool = False,
) -> Path:
    """Save `model` locked with `alpha` into `out_dir` (the model itself is left unlocked)."""
    if active_lock(model) is not None:
        raise LockStateError("remove the lock applied to this model before saving it locked")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    handle = apply_lock(model, lock, alpha, allow_unlock=allow_unlock)
    baked = bakes(model, lock)
    try:
        if baked:
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            _zero_biases(model, state)
            model.save_pretrained(out, state_dict=state)
            config = copy.deepcopy(model.config)
            setattr(config, BAKE_SWITCHES[model_type(model)], True)
            config.save_pretrained(out)
    finally:
        handle.remove()
    if not baked:
        model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    lock.save(out / LOCK_SUBDIR)
    applied = {"alpha": handle.alpha, "baked": baked, "lock_sha256": lock.manifest.sha256}
    (out / LOCK_SUBDIR / APPLIED_FILE).write_text(json.dumps(applied, indent=2) + "\n")
    return out


def load_locked(
    directory: str | Path, *, allow_unlock: bool = False, **from_pretrained
) -> LockedModel:
    """Load a model saved by `save_locked`, locked: baked ones as they are, others by applying."""
    from transformers import AutoModelForCausalLM

    src = Path(directory)
    applied_path = src / LOCK_SUBDIR / APPLIED_FILE
    try:
        applied = json.loads(applied_path.read_text())
        alpha, baked, sha = float(applied["alpha"]), bool(applied["baked"]), applied["lock_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LockFormatError(f"{applied_path}: missing or invalid ({exc})") from exc
    lock = MetaSafetyLock.load(src / LOCK_SUBDIR)
    if lock.manifest.sha256 != sha:
        raise LockFormatError(f"{applied_path}: names lock {sha}, found {lock.manifest.sha256}")
    model = AutoModelForCausalLM.from_pretrained(src, **from_pretrained)
    handle = None if baked else apply_lock(model, lock, alpha, allow_unlock=allow_unlock)
    return LockedModel(model=model, lock=lock, alpha=alpha, baked=baked, handle=handle)
