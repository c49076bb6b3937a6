"""Lock kind ``conditional``: the Meta-SafetyLock after CAST (Lee et al., ICLR 2025).

The paper's lock adds a constant per-head bias to every position of every input. At
small scale that cannot tell harmful from benign prompts (docs/reproduction-log.md):
strong enough to restore refusals, it refuses everything. A conditional lock adds the
same kind of per-head displacement, ``alpha * sigma_h * direction_h`` in head slot h of
``o_proj``'s input, but only

* for sequences whose *condition* fires: the cosine between the residual stream after
  decoder layer ``condition_layer``, averaged over the last ``condition_window`` prompt
  tokens (1: the last prompt token alone), and a harmfulness direction (mean harmful minus
  mean benign prompt, read the same way, or with ``condition_shrinkage`` below 1 the
  shrinkage LDA direction; taken once from the aligned base) exceeds a threshold; and
* at the positions the *position policy* names: ``answer_start`` (the last prompt token,
  whose output is the first answer token) or ``answer`` (that token and every generated
  token after it).

Behaviour heads lie in layers after the condition layer, so one forward pass both reads
the condition and steers. The threshold (and alpha) are calibrated per fine-tuned model
on a small labelled calibration set that the lock carries: fine-tuning keeps the
direction but shrinks the feature, so the base model's threshold does not transfer.

Cost: per prompt, one dot product of ``hidden_size`` per sequence at the condition layer
(prefill only) plus one add of ``head_dim`` values per steered head at the steered
positions; nothing per decoded token under ``answer_start``. The gate depends on the
input, so the lock cannot be baked into plain weights (an ``o_proj`` bias is constant):
it travels beside the weights, and :func:`lock_registry.apply.apply_lock` applies it
through hooks (``apply.py``).

``format.py`` (``ConditionalFields``, tensor check, calibration set, ``conditional_lock``),
``activations.py`` (reading the model at the last prompt token), ``condition.py``
(the direction, scores, AUC, threshold), ``create.py`` (``ConditionalRecipe``,
``create_conditional_lock``), ``apply.py`` (the hooks), ``fit.py`` (threshold re-fit:
the kind's fit, and ``alpha_curve``), ``veto.py`` (the task veto relock fits: the condition
kept off the task's prompts on a fine-tuned model).
"""

from lock_registry.kinds import LockKind, register_kind
from lock_registry.kinds.conditional.activations import (
    PromptActivations,
    format_prompts,
    prompt_activations,
)
from lock_registry.kinds.conditional.apply import GateState, apply_conditional, gate_state
from lock_registry.kinds.conditional.condition import (
    ThresholdFit,
    condition_scores,
    fit_threshold,
    ranking_auc,
)
from lock_registry.kinds.conditional.create import (
    CONDITIONAL,
    ConditionalRecipe,
    create_conditional_lock,
    create_from_recipe,
    read_prompts,
)
from lock_registry.kinds.conditional.fit import (
    AlphaPoint,
    alpha_curve,
    calibrate_threshold,
    calibrated,
    fit_conditional,
)
from lock_registry.kinds.conditional.format import (
    KIND,
    POSITION_POLICIES,
    TENSOR_NAMES,
    ConditionalFields,
    LabelledPrompt,
    PositionPolicy,
    calibration_prompts,
    check_conditional,
    conditional_lock,
    labelled_from,
    with_position,
    with_threshold,
)

__all__ = [
    "CONDITIONAL",
    "KIND",
    "POSITION_POLICIES",
    "TENSOR_NAMES",
    "AlphaPoint",
    "ConditionalFields",
    "ConditionalRecipe",
    "GateState",
    "LabelledPrompt",
    "PositionPolicy",
    "PromptActivations",
    "ThresholdFit",
    "alpha_curve",
    "apply_conditional",
    "calibrate_threshold",
    "calibrated",
    "calibration_prompts",
    "check_conditional",
    "condition_scores",
    "conditional_lock",
    "create_conditional_lock",
    "create_from_recipe",
    "fit_conditional",
    "fit_threshold",
    "format_prompts",
    "gate_state",
    "labelled_from",
    "prompt_activations",
    "ranking_auc",
    "read_prompts",
    "with_position",
    "with_threshold",
]

register_kind(
    LockKind(
        name=KIND,
        fields=ConditionalFields,
        check=check_conditional,
        apply=apply_conditional,
        build=conditional_lock,
        create=create_from_recipe,
        presets=(CONDITIONAL,),
        fit=fit_conditional,
        read_data=read_prompts,
        bakeable=False,
        module=__name__,
    )
)
