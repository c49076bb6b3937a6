"""Loading what relock, evaluate and publish need: models, the locks, the evaluation prompt sets.

The registry's lock pinned for the job (`job_lock`: its sha256 must be the pinned one) is
what relock starts from; relock fits it to the job's fine-tuned model (`fit_to_model`: a
conditional lock's threshold is re-fitted, other kinds pass unchanged) and stores the
result under `jobs/.../relock/lock/` (`store_fitted_lock`); evaluate and publish apply that
stored lock (`fitted_lock`), verified against the sha256 of its manifest that relock
recorded and the sha256 of its tensors that the manifest holds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from service.pipeline.context import StageContext, StageFailure
from service.pipeline.resolve_lock import load_pinned_lock
from service.pipeline.train import TRAINED
from service.pipeline.validate import load_records
from service.state.records import AppliedLock, Figures, FittedLock, RelockOutput, ResolveLockOutput
from service.store_layout import file_key


def load_model(path: str | Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.eval()
    return model, tokenizer


def trained_model(sc: StageContext) -> tuple[Any, Any]:
    return load_model(sc.local_dir(TRAINED))


def base_model_path(sc: StageContext) -> str:
    return sc.settings.base_models[sc.job.model]


def job_lock(sc: StageContext) -> Any:
    """The registry's lock pinned for this job, verified (`resolve_lock.load_pinned_lock`)."""
    return load_pinned_lock(sc.ctx.registry, sc.require(ResolveLockOutput))


FITTED_LOCK = "relock/lock"  # under the job's key: the lock relock fitted to this job's model
Split = Literal["selection", "confirmation"]
SPLITS: tuple[Split, ...] = ("selection", "confirmation")


def lock_summary(lock: Any) -> AppliedLock:
    """What a stage records of the lock it applied: kind, tensors' sha256, condition threshold
    (None for kinds without one)."""
    threshold = lock.kind_fields.condition_threshold
    return AppliedLock(kind=lock.manifest.kind, sha256=lock.manifest.sha256, threshold=threshold)


def store_fitted_lock(sc: StageContext, lock: Any) -> FittedLock:
    """Save `lock` as a lock directory under the job's `relock/lock/` (tensors first, the
    manifest last); returns relock's record of it (the manifest's sha256 included)."""
    from lock_registry.lock import MANIFEST_FILE, TENSORS_FILE

    files = lock.to_files()
    prefix = sc.key(FITTED_LOCK)
    for name in (TENSORS_FILE, MANIFEST_FILE):
        sc.ctx.store.put_bytes(f"{prefix}/{name}", files[name])
    digest = hashlib.sha256(files[MANIFEST_FILE]).hexdigest()
    return FittedLock(key=FITTED_LOCK, **lock_summary(lock).model_dump(), manifest_sha256=digest)


def fitted_lock(sc: StageContext) -> Any:
    """The lock relock fitted and stored: LockIntegrityError if its manifest is not the one
    relock recorded or its tensors do not match the manifest's sha256."""
    from lock_registry.errors import LockIntegrityError
    from lock_registry.lock import MANIFEST_FILE, TENSORS_FILE, MetaSafetyLock

    record = sc.require(RelockOutput).lock
    prefix = sc.key(record.key)
    files = {
        name: sc.ctx.store.get_bytes(f"{prefix}/{name}") for name in (MANIFEST_FILE, TENSORS_FILE)
    }
    digest = hashlib.sha256(files[MANIFEST_FILE]).hexdigest()
    if digest != record.manifest_sha256:
        raise LockIntegrityError(
            f"{prefix}/{MANIFEST_FILE}: sha256 {digest} is not the {record.manifest_sha256} "
            "relock recorded; the fitted lock was altered"
        )
    return MetaSafetyLock.from_files(files, source=prefix)


def prompt_sets(sc: StageContext, part: Split) -> dict[str, Any]:
    """harmful / safe / tasks prompts of one half: relock chooses alpha on the `selection`
    half, evaluate (so the gate) measures on the held-out `confirmation` half, so an alpha
    that passed by luck on the prompts it was chosen on is not published.

    Each kind is split on its own: its prompts ordered by the sha256 of their text, every
    other one to each half (deterministic, balanced to one prompt). `eval_limit` caps each
    kind before the split.
    """
    from service.evaluation.prompts import demo_prompt_set, load_prompt_set

    source = sc.settings.eval_prompts
    prompts = load_prompt_set(source) if source else demo_prompt_set(base_model_path(sc))
    limit = sc.settings.eval_limit
    sets = {}
    for name, kind in (("harmful", "harmful"), ("safe", "safe"), ("tasks", "task")):
        items = prompts.of_kind(kind).items
        items = items[:limit] if limit else items
        if len(items) < 2:
            raise StageFailure("eval_prompts_too_few", f"The evaluation set has {len(items)} {kind} prompt(s); "
                               "the gate needs at least 2 (one to choose the lock strength, one to confirm it).")
        ordered = sorted(items, key=lambda item: hashlib.sha256(item.prompt.encode()).hexdigest())
        sets[name] = ordered[SPLITS.index(part)::2]
    return sets


def validation_records(sc: StageContext) -> list[dict] | None:
    job = sc.job
    if not job.validation_file:
        return None
    return load_records(sc.ctx.store.get_bytes(file_key(job.tenant, job.validation_file)))


def summarise(result: Any) -> Figures:
    """An EvalResult as the report's Eval object, plus the junk rate the gate checks."""
    return {**result.summary(), "junk_rate": result.junk_rate}
