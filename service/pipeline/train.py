"""train: TRL SFT on the customer's file (LoRA merged, or full); the model goes to the store.

Progress (step, loss, ETA) goes to the job and to the event log (one metrics event per
step, written once even if the stage reruns after a lost worker); `should_cancel` reads
the job's cancel flag after every optimiser step.
"""

from __future__ import annotations

import shutil

from service.pipeline.context import StageContext
from service.pipeline.validate import load_records
from service.state.records import Progress

TRAINED = "trained"


def run(sc: StageContext) -> dict:
    from service.pipeline.workflow import Cancelled
    from service.training import TrainConfig, TrainingCancelled, TrainProgress, train_sft

    job = sc.job
    hp = job.hyperparameters
    config = TrainConfig(
        method=job.method, n_epochs=float(hp.n_epochs), max_steps=sc.settings.max_steps or -1,
        learning_rate=hp.learning_rate, batch_size=hp.batch_size, lora_rank=hp.lora_rank,
        lora_alpha=hp.lora_alpha, max_seq_length=hp.max_seq_length, seed=hp.seed,
    )
    train = load_records(sc.ctx.store.get_bytes(f"files/{job.tenant}/{job.training_file}"))
    valid = (load_records(sc.ctx.store.get_bytes(f"files/{job.tenant}/{job.validation_file}"))
             if job.validation_file else None)

    def on_progress(p: TrainProgress) -> None:
        sc.progress(Progress(stage="train", step=p.step, total_steps=p.total_steps, loss=p.loss,
                             eta_seconds=round(p.eta_seconds, 1)), force=p.step == p.total_steps)
        sc.event(f"Step {p.step}/{p.total_steps}: training loss {p.loss:.4f}", type="metrics",
                 data={"step": p.step, "total_steps": p.total_steps, "train_loss": p.loss,
                       "eta_seconds": round(p.eta_seconds, 1)}, once=f"step:{p.step}")

    out_dir = sc.work_dir / TRAINED
    shutil.rmtree(out_dir, ignore_errors=True)  # a partial run of a lost worker
    try:
        result = train_sft(sc.settings.base_models[job.model], train, out_dir, config,
                           eval_records=valid, on_progress=on_progress, should_cancel=sc.cancel_requested)
    except TrainingCancelled as exc:
        raise Cancelled(f"training at step {exc.step}") from exc
    sc.ctx.store.delete_prefix(sc.key(TRAINED) + "/")
    sc.ctx.store.upload_dir(out_dir, sc.key(TRAINED))
    (out_dir / ".complete").touch()
    return {"steps": result.steps, "train_loss": result.train_loss, "validation_loss": result.eval_loss,
            "seconds": round(result.seconds, 3), "method": result.method}
