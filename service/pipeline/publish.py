"""publish: the relocked model under `models/{tenant}/{model_id}/`, manifest last.

The lock is the one relock fitted to this model and stored (`fitted_lock`, verified), so
`safetylock/manifest.json` carries, e.g., a conditional lock's re-fitted threshold.
The weights are baked with the lock where the family and lock kind allow it (`save_locked`;
otherwise, e.g. a hook-based conditional lock, the weights load unlocked with plain
transformers and `lock_registry.bake.load_locked` applies the lock: the manifest's
`lock.baked` says which). The lock and its alpha are kept in `safetylock/` either way, the
report lies beside them, and `manifest.json` (every file's sha256) is written only when all
else is in place: a model without a manifest was never published. The model id derives from the
job id, so a publish repeated after a lost worker rewrites the same model, never a second.
"""

from __future__ import annotations

import shutil
import time

from service.hashing import sha256_file
from service.pipeline.context import FinalResult, StageContext
from service.pipeline.loading import fitted_lock, trained_model
from service.pipeline.report import build_report
from service.state.records import ModelRecord, RelockOutput, ResolveLockOutput
from service.store_layout import dumps, model_key

MANIFEST = "manifest.json"


def unpublish(sc: StageContext) -> None:
    """Remove whatever a failed publish left under models/ (it never had a manifest)."""
    sc.ctx.store.delete_prefix(model_key(sc.job.tenant, model_id_for(sc.job.id)) + "/")


def model_id_for(job_id: str) -> str:
    return "model-" + job_id.split("-", 1)[1]


def run(sc: StageContext) -> FinalResult:
    from lock_registry.bake import bakes, save_locked

    started = time.monotonic()
    job = sc.job
    alpha = sc.require(RelockOutput).alpha
    lock_info = sc.require(ResolveLockOutput)
    model_id = model_id_for(job.id)
    out = sc.work_dir / "publish"
    shutil.rmtree(out, ignore_errors=True)
    model, tokenizer = trained_model(sc)
    lock = fitted_lock(sc)
    baked = bakes(model, lock)
    save_locked(model, tokenizer, lock, alpha, out)  # weights, tokenizer, safetylock/ (lock + alpha)
    report = build_report(sc, "published", [])
    report["stage_seconds"]["publish"] = round(time.monotonic() - started, 3)
    (out / "report.json").write_bytes(dumps(report))
    prefix = model_key(job.tenant, model_id)
    sc.ctx.store.delete_prefix(prefix + "/")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    for rel in files:
        sc.ctx.store.upload_file(out / rel, f"{prefix}/{rel}")
    manifest = {
        "id": model_id, "job_id": job.id, "tenant": job.tenant, "base_model": job.model,
        "lock": {"base_model": lock_info.base_model, "version": lock_info.version, "alpha": alpha,
                 "baked": baked, "kind": lock.manifest.kind,
                 "threshold": lock.kind_fields.condition_threshold},
        "files": {rel: sha256_file(out / rel) for rel in files},
    }
    sc.confirm_lease()  # a worker that lost the job publishes nothing
    sc.ctx.store.put_bytes(f"{prefix}/{MANIFEST}", dumps(manifest))  # last: the model is now published
    sc.ctx.store.put_bytes(sc.key("report.json"), dumps(report))
    sc.ctx.records.add_model(ModelRecord(
        id=model_id, tenant=job.tenant, base_model=job.model, job_id=job.id,
        lock=manifest["lock"], files=[*files, MANIFEST],
    ))
    sc.event(f"Published model {model_id} (alpha {alpha:g}).", once="published")
    return FinalResult(status="succeeded", model_id=model_id)
