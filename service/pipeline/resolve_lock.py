"""resolve_lock: the job's lock as pinned when the job was created, checked against the registry.

The API's create resolves the base model's lock once (`find_lock`: the `production` alias,
or the version the job asks for) and pins `{"base_model", "version", "sha256"}` in the job
record, so a job keeps the lock it was created with when the alias moves. This stage
checks that the registry still holds that version with that sha256 (a lock replaced under
the same version fails the job: `lock_changed`), writes the "Using lock" event and stores
the pin as its output, which relock, publish and the report read. A record stored before
create pinned locks has none: its lock is resolved here, once, and pinned on the record.
relock loads the lock itself (`load_pinned_lock`): the registry's load verifies the
tensors against the sha256 it published, and that sha256 must still be the pinned one.

`find_lock` and this stage read only the registry's JSON (torch-free: the API's create
calls `find_lock`, through `service.api.lock_lookup`).
"""

from __future__ import annotations

import logging
from typing import Any

from service.pipeline.context import StageContext, StageFailure
from service.state.records import PinnedLock, ResolveLockOutput

log = logging.getLogger(__name__)
ALIAS = "production"


class LockNotFound(Exception):
    """No usable lock for the base model (none published, alias unset, version unknown)."""


def find_lock(registry: Any, base_model: str, version: int | None) -> PinnedLock:
    """The lock a job on `base_model` uses: version `version`, else the `production` alias's."""
    from lock_registry.registry_types import RegistryError

    try:
        entry = registry.resolve(f"{base_model}@v{version}" if version else f"{base_model}@{ALIAS}")
    except RegistryError as exc:
        log.info("no lock for %s (version %s): %s", base_model, version, exc)
        pinned = f"lock version {version}" if version else f"{ALIAS!r} lock"
        raise LockNotFound(f"Base model {base_model!r} has no {pinned} in the lock registry.") from exc
    return PinnedLock(base_model=base_model, version=entry.version, sha256=entry.sha256)


def check_pinned(pin: ResolveLockOutput, sha256: str) -> None:
    """StageFailure `lock_changed` unless the registry's lock has the pinned sha256."""
    if sha256 != pin.sha256:
        raise StageFailure("lock_changed", (
            f"Lock {pin.base_model} v{pin.version} in the registry is no longer the one this job was created "
            f"with (sha256 {sha256[:12]}..., pinned {pin.sha256[:12]}...); the job stops rather than use it."),
            "model")


def load_pinned_lock(registry: Any, pin: ResolveLockOutput) -> Any:
    """The pinned lock itself: the registry verifies its tensors against the sha256 it
    published (a mismatch raises), and that must be the pinned sha256."""
    lock = registry.load(f"{pin.base_model}@v{pin.version}")
    check_pinned(pin, lock.manifest.sha256)
    return lock


def run(sc: StageContext) -> ResolveLockOutput:
    from lock_registry.registry_types import RegistryError

    job = sc.job
    if job.lock is None or job.lock.sha256 is None:  # stored before create pinned the lock
        try:
            pinned = find_lock(sc.ctx.registry, job.model, job.lock_version)
        except LockNotFound as exc:
            raise StageFailure("lock_not_found", str(exc), "model") from exc
        sc.ctx.records.update_job(job.id, lambda j: setattr(j, "lock", pinned), only_if=("running",))
        pin = ResolveLockOutput(**pinned.model_dump())
    else:
        pin = ResolveLockOutput(**job.lock.model_dump())
        try:
            entry = sc.ctx.registry.resolve(f"{pin.base_model}@v{pin.version}")
        except RegistryError as exc:
            log.info("pinned lock %s v%s is gone: %s", pin.base_model, pin.version, exc)
            raise StageFailure("lock_not_found", (
                f"Lock {pin.base_model} v{pin.version}, pinned when the job was created, is no longer "
                "in the lock registry."), "model") from exc
        check_pinned(pin, entry.sha256)
    sc.event(f"Using lock {pin.base_model} v{pin.version}.", once="lock", data=pin.model_dump())
    return pin
