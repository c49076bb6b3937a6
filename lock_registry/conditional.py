"""Former home of the conditional lock kind, kept so that existing imports keep working.

The kind lives in `lock_registry/kinds/conditional/` (import it from
`lock_registry.kinds.conditional`); this module only re-exports it.
"""

from lock_registry.kinds.conditional import (
    KIND,
    POSITION_POLICIES,
    TENSOR_NAMES,
    ConditionalRecipe,
    LabelledPrompt,
    PositionPolicy,
    PromptActivations,
    ThresholdFit,
    calibration_prompts,
    condition_scores,
    create_conditional_lock,
    fit_threshold,
    format_prompts,
    labelled_from,
    prompt_activations,
    ranking_auc,
    with_threshold,
)

__all__ = [
    "KIND",
    "POSITION_POLICIES",
    "TENSOR_NAMES",
    "ConditionalRecipe",
    "LabelledPrompt",
    "PositionPolicy",
    "PromptActivations",
    "ThresholdFit",
    "calibration_prompts",
    "condition_scores",
    "create_conditional_lock",
    "fit_threshold",
    "format_prompts",
    "labelled_from",
    "prompt_activations",
    "ranking_auc",
    "with_threshold",
]
