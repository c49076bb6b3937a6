"""What a customer is told when a stage crashes. A lock error describes the model and the
lock, in words written for people; any other exception may carry internal endpoints,
paths or credentials, so the customer gets an incident id and the worker's log the rest."""

from __future__ import annotations

import uuid

from lock_registry.errors import LockError

PUBLIC_ERRORS: tuple[type[Exception], ...] = (LockError,)


def new_incident() -> str:
    return "inc-" + uuid.uuid4().hex[:12]


def public_reason(exc: Exception, incident: str) -> str:
    """`exc` as a customer may read it."""
    if isinstance(exc, PUBLIC_ERRORS):
        return f"{type(exc).__name__}: {exc}"
    return f"an internal error (incident {incident}; the operator's worker log has the details)"
