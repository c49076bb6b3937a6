"""`create_lock`: take a Meta-SafetyLock from an aligned base model with a named preset.

A preset is a recipe of one lock kind (`recipe.kind`); the kinds register theirs
(`lock_registry.kinds`): "paper" (the default) makes the paper's head_bias lock from
contrastive pairs, "conditional" a conditional lock (after CAST) from labelled prompts.
`create_lock` hands the model, the data and the options to the preset's kind; each kind
also has its own typed entry point (`create_head_bias_lock`, `create_conditional_lock`).
This module imports no kind.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Any

from lock_registry.errors import LockError
from lock_registry.kinds import PRESETS, Recipe, get_kind, get_preset, register_preset

if TYPE_CHECKING:
    from lock_registry.lock import MetaSafetyLock

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "Recipe",
    "create_lock",
    "current_user",
    "get_preset",
    "register_preset",
]

DEFAULT_PRESET = "paper"


def create_lock(
    model: Any,
    tokenizer: Any,
    data: Any,
    *,
    base_model_id: str,
    preset: str = DEFAULT_PRESET,
    **options: Any,
) -> MetaSafetyLock:
    """Take a lock from `model` (the aligned base) and `data` with the recipe `preset`.

    The preset's kind says what `data` is and which `options` it takes: for "paper"
    (head_bias) contrastive pairs, and num_heads=24, last_tokens=5, progress,
    base_fingerprint, creator; for "conditional" labelled prompts and the keyword options
    of `create_conditional_lock` (the recipe's values unless given).
    """
    recipe = get_preset(preset)
    kind = get_kind(recipe.kind)
    if kind.create is None:
        raise LockError(f"preset {preset!r} makes a {recipe.kind} lock, which cannot be taken here")
    return kind.create(model, tokenizer, data, recipe=recipe, base_model_id=base_model_id, **options)


def current_user() -> str:
    """The login name recorded as a lock's creator ('' when unknown)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
