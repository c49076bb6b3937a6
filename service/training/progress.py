"""A TrainerCallback that reports progress after every step and polls a cancel predicate."""

from __future__ import annotations

import time
from collections.abc import Callable

from transformers import TrainerCallback

from service.training.config import TrainProgress


class ProgressCallback(TrainerCallback):
    """Sends (step, total, loss, eta) to ``on_progress`` per logged step; stops on ``should_cancel()``."""

    def __init__(
        self,
        on_progress: Callable[[TrainProgress], None] | None,
        should_cancel: Callable[[], bool] | None,
    ) -> None:
        self.on_progress = on_progress
        self.should_cancel = should_cancel
        self.cancelled = False
        self.losses: list[float] = []
        self._start = 0.0
        self._first_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.monotonic()
        self._first_step = state.global_step  # > 0 when resuming

    def on_log(self, args, state, control, logs=None, **kwargs):
        # train_sft logs every step, so this runs once per optimizer step.
        if not logs or "loss" not in logs:
            return control
        self.losses.append(float(logs["loss"]))
        if self.on_progress is not None:
            done = state.global_step - self._first_step
            rate = (time.monotonic() - self._start) / max(done, 1)
            self.on_progress(TrainProgress(
                step=state.global_step,
                total_steps=state.max_steps,
                loss=self.losses[-1],
                eta_seconds=rate * max(state.max_steps - state.global_step, 0),
                epoch=float(state.epoch or 0.0),
            ))
        # Checked here, after the step's report: the Trainer saves (when asked) and
        # stops right after on_log returns.
        if self.should_cancel is not None and self.should_cancel():
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"
        return control
