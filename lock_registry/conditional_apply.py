"""Former home of the conditional kind's hooks and threshold fit, kept so that existing
imports keep working.

The hooks live in `lock_registry/kinds/conditional/apply.py`, the fit in `.../fit.py`
(import them from `lock_registry.kinds.conditional`); `fit_to_model`, for every kind,
in `lock_registry.fit`. This module only re-exports them.
"""

from lock_registry.fit import fit_to_model
from lock_registry.kinds.conditional import (
    AlphaPoint,
    GateState,
    alpha_curve,
    calibrate_threshold,
    calibrated,
    gate_state,
)

__all__ = [
    "AlphaPoint",
    "GateState",
    "alpha_curve",
    "calibrate_threshold",
    "calibrated",
    "fit_to_model",
    "gate_state",
]
