"""Apply a lock to a model in place, and take it off again bit for bit.

What applying does is the lock's kind's (`lock_registry.kinds`, looked up by the
manifest's `kind`): its `apply(model, lock, alpha)` changes the model and returns the
undo steps. This MUTATES the model: the returned `LockHandle` runs the undo steps
(`handle.remove()`, or leave the `with` block), which restore every parameter exactly.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Self

from torch import nn

from lock_registry.architectures import head_geometry
from lock_registry.errors import LockError, LockShapeError, LockStateError, UnlockNotAllowedError
from lock_registry.kinds import get_kind
from lock_registry.lock import MetaSafetyLock

Undo = Callable[[], None]
# a kind's `apply(model, lock, alpha)`: changes the model, returns the undo steps in order
Applier = Callable[[nn.Module, MetaSafetyLock, float], list[Undo]]

_ACTIVE: weakref.WeakKeyDictionary[nn.Module, LockHandle] = weakref.WeakKeyDictionary()


class LockHandle:
    """A lock applied to a model; `remove()` restores every parameter exactly."""

    def __init__(self, model: nn.Module, lock: MetaSafetyLock, alpha: float, undo: list[Undo]):
        self._model = weakref.ref(model)  # the registry of active locks must not keep models alive
        self.lock = lock
        self.alpha = alpha
        self._undo = undo

    @property
    def model(self) -> nn.Module | None:
        return self._model()

    @property
    def active(self) -> bool:
        model = self.model
        return model is not None and _ACTIVE.get(model) is self

    def remove(self) -> None:
        """Take the lock off (a second call does nothing)."""
        if not self.active:
            return
        for step in reversed(self._undo):
            step()
        self._undo = []
        del _ACTIVE[self.model]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"LockHandle(kind={self.lock.manifest.kind!r}, alpha={self.alpha}, {state})"


def active_lock(model: nn.Module) -> LockHandle | None:
    """The handle of the lock currently applied to `model`, if any."""
    return _ACTIVE.get(model)


def check_fits(model: nn.Module, lock: MetaSafetyLock) -> None:
    """Refuse a lock whose geometry differs from the model's, naming the mismatch."""
    model_geo, lock_geo = head_geometry(model), lock.geometry
    for name in ("num_layers", "num_heads", "head_dim"):
        have, want = getattr(model_geo, name), getattr(lock_geo, name)
        if have != want:
            raise LockShapeError(
                f"lock for {lock.manifest.base_model.id!r} has {name}={want}, the model has {have}"
            )


def apply_lock(
    model: nn.Module,
    lock: MetaSafetyLock,
    alpha: float | None = None,
    *,
    allow_unlock: bool = False,
) -> LockHandle:
    """Lock `model` in place with strength `alpha` (default: the lock's default_alpha).

    A negative alpha removes safety (unlock) and is refused unless `allow_unlock=True`,
    an operator-only switch never exposed to customers.
    """
    alpha = lock.manifest.default_alpha if alpha is None else float(alpha)
    if not math.isfinite(alpha):
        raise LockError(f"alpha must be finite, got {alpha}")
    if alpha < 0 and not allow_unlock:
        raise UnlockNotAllowedError(
            f"alpha={alpha} would unlock the model; only operators may pass allow_unlock=True"
        )
    if model in _ACTIVE:
        raise LockStateError("a lock is already applied to this model; remove it first")
    kind = get_kind(lock.manifest.kind)
    check_fits(model, lock)
    undo = kind.apply(model, lock, alpha)
    handle = LockHandle(model, lock, alpha, undo)
    _ACTIVE[model] = handle
    return handle

