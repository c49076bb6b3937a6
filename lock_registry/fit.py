"""`fit_to_model`: the lock as it should be applied to a fine-tuned model, whatever its kind.

A kind with a fit (`LockKind.fit`, e.g. the conditional kind re-fits its condition
threshold on the model from the calibration set it carries) returns the fitted lock and
a record of the fit; other kinds come back unchanged, with None. This module imports no
kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lock_registry.kinds import get_kind

if TYPE_CHECKING:
    from torch import nn

    from lock_registry.lock import MetaSafetyLock


def fit_to_model(model: nn.Module, tokenizer: Any, lock: MetaSafetyLock) -> tuple[MetaSafetyLock, Any]:
    """(the lock fitted to `model`, the fit's record), or (`lock`, None) for kinds that
    need no fit (what the relock stage calls before choosing alpha)."""
    fit = get_kind(lock.manifest.kind).fit
    if fit is None:
        return lock, None
    return fit(model, tokenizer, lock)
