"""Lock kind ``head_bias`` (the paper's Meta-SafetyLock): per chosen head a unit direction
and a sigma; applied as a constant o_proj bias, so it can be baked into the weights.

``format.py`` (manifest fields, tensor check, ``head_bias_lock``), ``create.py``
(``LockRecipe``, ``create_head_bias_lock``: probes on contrastive pairs), ``apply.py``
(the bias). It needs no fit to a fine-tuned model.
"""

from lock_registry.kinds import LockKind, register_kind
from lock_registry.kinds.head_bias.apply import apply_head_bias, head_bias_deltas
from lock_registry.kinds.head_bias.create import (
    PAPER,
    LockRecipe,
    create_head_bias_lock,
    read_pairs,
)
from lock_registry.kinds.head_bias.format import (
    KIND,
    TENSOR_NAMES,
    HeadBiasFields,
    check_head_bias,
    head_bias_lock,
)

__all__ = [
    "KIND",
    "PAPER",
    "TENSOR_NAMES",
    "HeadBiasFields",
    "LockRecipe",
    "apply_head_bias",
    "check_head_bias",
    "create_head_bias_lock",
    "head_bias_deltas",
    "head_bias_lock",
    "read_pairs",
]

register_kind(
    LockKind(
        name=KIND,
        fields=HeadBiasFields,
        check=check_head_bias,
        apply=apply_head_bias,
        build=head_bias_lock,
        create=create_head_bias_lock,
        read_data=read_pairs,
        presets=(PAPER,),
        bakeable=True,
        module=__name__,
    )
)
