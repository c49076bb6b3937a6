"""Where relock steers a conditional lock: its own position, then the operator's fallbacks.

A conditional lock steers its fired rows at the answer's first token (`answer_start`) or at
every answer token (`answer`). Which is better depends on the fine-tuned model: a model
whose fine-tune taught it to go on after a refused first token ("I'm glad you asked...")
needs every token steered, while steering every token of a model that refuses once its
first token is steered only costs quality. So relock searches the alpha grid at the
lock's own position first and, only if no alpha meets the gate there, at each position
of the operator's `relock_fallback_positions`, in order. The lock stored, evaluated on the
held-out half and published is the one at the position where the chosen alpha was
measured; every point of the curve records its position.
"""

from __future__ import annotations

from typing import Any

from service.settings import Settings

STEERED_KINDS = ("conditional",)  # kinds whose manifest names a steering position
WHERE = {"answer_start": "the answer's first token", "answer": "every answer token"}


def own(lock: Any) -> str | None:
    """The position `lock` steers at (None for a kind without one)."""
    if lock.manifest.kind not in STEERED_KINDS:
        return None
    return lock.kind_fields.position


def to_try(settings: Settings, lock: Any) -> list[str | None]:
    """The positions relock searches, in order: the lock's own, then the fallbacks."""
    first = own(lock)
    if first is None:
        return [None]
    return [first, *(p for p in dict.fromkeys(settings.relock_fallback_positions) if p != first)]


def at(lock: Any, position: str | None) -> Any:
    """`lock` steering at `position` (itself when it already does, or has no position)."""
    if position is None or own(lock) == position:
        return lock
    from lock_registry.kinds.conditional.format import with_position

    return with_position(lock, position)


def describe_fallback(previous: str, position: str) -> str:
    """The event line for moving the search to a fallback position."""
    return (f"No alpha of the grid met the gate steering {WHERE[previous]} ({previous}); searching it again "
            f"steering {WHERE[position]} ({position}), the operator's fallback position.")
