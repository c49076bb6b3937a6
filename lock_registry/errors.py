"""Errors raised by the lock core: one root, one subclass per kind of refusal."""

from __future__ import annotations


class LockError(Exception):
    """Root of every error the lock core raises on purpose."""


class LockFormatError(LockError):
    """A lock directory, manifest or tensor file is missing, malformed or of an unknown kind."""


class LockIntegrityError(LockError):
    """The tensors file does not match the sha256 recorded in the manifest."""


class LockShapeError(LockError):
    """The lock's geometry (layers, heads, head_dim) does not fit the model."""


class UnsupportedArchitectureError(LockError):
    """The model's attention output projections cannot be found."""


class UnlockNotAllowedError(LockError):
    """A negative alpha (unlock) was asked for without the operator-only flag."""


class LockStateError(LockError):
    """The model is not in the state the operation needs (e.g. a lock is already applied)."""


class UnsafePickleError(LockError):
    """A reference `.safelock` pickle asked for something outside the admitted numpy types."""
