"""The lock lookup of a job create (`find_lock`), remembered by each API process for a while.

Every create resolves its base model's lock (the `production` alias, or the version it
asks for) to pin it in the job; against the S3 registry that is about six requests, the
most of any create. A process answers the same question for the same registry from
memory for `SAFETYLOCK_LOCK_LOOKUP_SECONDS` (0: it always asks). Only locks found are
remembered, so a lock published after a refusal is used at once; a job created within
that time after the alias moved may pin the version before, a published one whose sha256
the worker checks like any other.
"""

from __future__ import annotations

import threading
import weakref
from time import monotonic
from typing import Any

from service.pipeline import resolve_lock
from service.pipeline.resolve_lock import LockNotFound
from service.state.records import PinnedLock

__all__ = ["LockNotFound", "find_lock"]

Found = dict[tuple[str, int | None], tuple[float, PinnedLock]]
"""(base model, version asked for) -> (expires at, on the monotonic clock; the lock found)."""
_found: weakref.WeakKeyDictionary[Any, Found] = weakref.WeakKeyDictionary()  # per registry object
_guard = threading.Lock()


def find_lock(registry: Any, base_model: str, version: int | None, *, ttl: float) -> PinnedLock:
    """`resolve_lock.find_lock`, answered from memory when this process found it in the same
    registry less than `ttl` seconds ago; LockNotFound as it raises it."""
    key = (base_model, version)
    if ttl > 0:
        with _guard:
            expires, found = _found.get(registry, {}).get(key, (0.0, None))
        if found is not None and monotonic() < expires:
            return found
    found = resolve_lock.find_lock(registry, base_model, version)
    if ttl > 0:
        with _guard:
            _found.setdefault(registry, {})[key] = (monotonic() + ttl, found)
    return found
