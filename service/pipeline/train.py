"""train: TRL SFT on the customer's file (LoRA merged, or full); the model goes to the store.

Progress (step, loss, ETA) goes to the job and to the event log (one metrics event per
step, written once even if the stage reruns after a lost worker); `should_cancel` reads
the job's cancel flag and its tenant's suspension after every optimiser step. Every
`checkpoint_steps` steps the trainer's checkpoint is copied to `jobs/.../checkpoints/`
(the newest one only), and a train stage that runs again after a lost worker continues
from it. A worker shutting down also stops training after the current step: it saves and
copies a checkpoint of that step, then hands the job back (`HandedBack`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from service.pipeline import repair
from service.pipeline.context import StageContext
from service.pipeline.validate import load_records
from service.state.records import Progress, TrainOutput
from service.store_layout import file_key

TRAINED = "trained"
CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"


class CheckpointSync:
    """Copies each new local checkpoint to the store, keeping only the newest complete one.

    A stored checkpoint counts only once its `COMPLETE` marker is written (last), so a
    worker killed halfway through an upload leaves the previous checkpoint in force.
    """

    def __init__(self, sc: StageContext, local: Path) -> None:
        self.sc, self.local, self.synced = sc, local, 0

    def _stored(self) -> dict[int, bool]:
        """Stored checkpoint steps -> whether complete."""
        prefix = self.sc.key(CHECKPOINTS) + "/"
        steps: dict[int, bool] = {}
        for key in self.sc.ctx.store.list(prefix):
            name, _, rest = key[len(prefix):].partition("/")
            step = int(name.split("-")[-1])
            steps[step] = steps.get(step, False) or rest == COMPLETE
        return steps

    def __call__(self) -> None:
        found = sorted((int(p.name.split("-")[-1]), p) for p in self.local.glob("checkpoint-*")
                       if (p / "trainer_state.json").exists())
        if not found or found[-1][0] <= self.synced:
            return
        step, path = found[-1]
        store = self.sc.ctx.store
        store.upload_dir(path, self.sc.key(CHECKPOINTS, f"checkpoint-{step}"))
        store.put_bytes(self.sc.key(CHECKPOINTS, f"checkpoint-{step}", COMPLETE), b"")
        for old in self._stored():
            if old != step:
                store.delete_prefix(self.sc.key(CHECKPOINTS, f"checkpoint-{old}") + "/")
        self.synced = step
        self.sc.event(f"Checkpoint at step {step} saved.", once=f"checkpoint:{step}")

    def restore(self) -> Path | None:
        """The newest complete stored checkpoint, downloaded, or None when there is none."""
        complete = [step for step, done in self._stored().items() if done]
        if not complete:
            return None
        step = max(complete)
        target = self.local / f"checkpoint-{step}"
        shutil.rmtree(self.local, ignore_errors=True)
        self.sc.ctx.store.download_dir(self.sc.key(CHECKPOINTS, f"checkpoint-{step}"), target)
        (target / COMPLETE).unlink()
        self.synced = step
        return target


def micro_batch_size(operator_cap: int | None, batch_size: int) -> int | None:
    """The largest divisor of the job's batch size up to the operator's cap (None: no cap)."""
    if not operator_cap:
        return None
    return max(d for d in range(1, min(operator_cap, batch_size) + 1) if batch_size % d == 0)


def run(sc: StageContext) -> TrainOutput:
    from service.pipeline.workflow import Cancelled, HandedBack, refuse_suspended, tenant_suspended
    from service.training import TrainConfig, TrainingCancelled, TrainProgress, train_sft

    job = sc.job
    hp = job.hyperparameters
    config = TrainConfig(
        method=job.method, n_epochs=float(hp.n_epochs), max_steps=sc.settings.max_steps or -1,
        learning_rate=hp.learning_rate, batch_size=hp.batch_size, lora_rank=hp.lora_rank,
        lora_alpha=hp.lora_alpha, max_seq_length=hp.max_seq_length, seed=hp.seed,
        save_steps=sc.settings.checkpoint_steps,
        micro_batch_size=micro_batch_size(sc.settings.train_micro_batch_size, hp.batch_size),
    )
    train = load_records(sc.ctx.store.get_bytes(file_key(job.tenant, job.training_file)))
    added = 0
    if job.repair is not None:  # the fallback repair's attempt: the operator's safety data mixed in
        safety = repair.safety_records(sc.settings.base_models[job.model])
        train, added = repair.mixed_records(train, safety, job.repair.ratio, hp.seed)
        sc.event(f"Repair: {added} operator safety examples mixed into the customer's {len(train) - added}.",
                 once="repair:mix")
    valid = (load_records(sc.ctx.store.get_bytes(file_key(job.tenant, job.validation_file)))
             if job.validation_file else None)
    out_dir = sc.work_dir / TRAINED
    shutil.rmtree(out_dir, ignore_errors=True)  # a partial run of a lost worker
    sync = CheckpointSync(sc, out_dir / CHECKPOINTS)
    resume = sync.restore()
    if resume is not None:
        sc.event(f"Resuming training from the checkpoint at step {sync.synced}.", level="warn",
                 once=f"resume:{sync.synced}")

    def on_progress(p: TrainProgress) -> None:
        sc.progress(Progress(stage="train", step=p.step, total_steps=p.total_steps, loss=p.loss,
                             eta_seconds=round(p.eta_seconds, 1)), force=p.step == p.total_steps)
        sc.event(f"Step {p.step}/{p.total_steps}: training loss {p.loss:.4f}", type="metrics",
                 data={"step": p.step, "total_steps": p.total_steps, "train_loss": p.loss,
                       "eta_seconds": round(p.eta_seconds, 1)}, once=f"step:{p.step}")
        sync()  # the trainer saves after logging: this copies the previous step's checkpoint

    def should_stop() -> bool:
        return sc.ctx.stopping.is_set() or sc.cancel_requested() or tenant_suspended(sc)

    try:
        result = train_sft(sc.settings.base_models[job.model], train, out_dir, config,
                           eval_records=valid, on_progress=on_progress, should_cancel=should_stop,
                           resume_from=resume)
    except TrainingCancelled as exc:
        if sc.cancel_requested():
            raise Cancelled(f"training at step {exc.step}") from exc
        refuse_suspended(sc, f"during training at step {exc.step}")
        sync()  # the checkpoint the trainer saved when it stopped
        raise HandedBack(f"during training at step {exc.step}") from exc
    sc.ctx.store.delete_prefix(sc.key(TRAINED) + "/")
    sc.ctx.store.upload_dir(out_dir, sc.key(TRAINED))
    sc.ctx.store.delete_prefix(sc.key(CHECKPOINTS) + "/")
    (out_dir / ".complete").touch()
    return TrainOutput(steps=result.steps, train_loss=result.train_loss, validation_loss=result.eval_loss,
                       seconds=round(result.seconds, 3), method=result.method,
                       resumed_from_step=sync.synced if resume is not None else None, safety_examples=added)
