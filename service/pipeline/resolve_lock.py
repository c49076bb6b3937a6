"""resolve_lock: the base model's lock from the registry (alias `production`, or a pinned version).

`find_lock` only reads the registry's JSON, so the API uses it to refuse a job whose
base has no lock before anything is queued.
"""

from __future__ import annotations

import logging
from typing import Any

from service.pipeline.context import StageContext, StageFailure
from service.state.records import ResolveLockOutput

log = logging.getLogger(__name__)
ALIAS = "production"


class LockNotFound(Exception):
    """No usable lock for the base model (none published, alias unset, version unknown)."""


def find_lock(registry: Any, base_model: str, version: int | None) -> dict[str, Any]:
    """{"base_model", "version", "sha256"} of the lock a job on `base_model` uses."""
    from lock_registry.registry_types import RegistryError

    try:
        entry = registry.resolve(f"{base_model}@v{version}" if version else f"{base_model}@{ALIAS}")
    except RegistryError as exc:
        log.info("no lock for %s (version %s): %s", base_model, version, exc)
        pinned = f"lock version {version}" if version else f"{ALIAS!r} lock"
        raise LockNotFound(f"Base model {base_model!r} has no {pinned} in the lock registry.") from exc
    return {"base_model": base_model, "version": entry.version, "sha256": entry.sha256}


def load_lock(registry: Any, base_model: str, version: int) -> Any:
    """The lock itself, its sha256 verified by the registry (a mismatch raises)."""
    return registry.load(f"{base_model}@v{version}")


def run(sc: StageContext) -> ResolveLockOutput:
    job = sc.job
    try:
        lock = ResolveLockOutput(**find_lock(sc.ctx.registry, job.model, job.lock_version))
    except LockNotFound as exc:
        raise StageFailure("lock_not_found", str(exc), "model") from exc

    def record(j) -> None:
        j.lock = {"base_model": lock.base_model, "version": lock.version}

    sc.ctx.records.update_job(job.id, record, only_if=("running",))
    sc.event(f"Using lock {lock.base_model} v{lock.version}.", once="lock", data=lock.model_dump())
    return lock
