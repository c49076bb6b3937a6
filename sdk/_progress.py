"""The progress display of `jobs.wait`: stage, step, loss and ETA; silent off a terminal."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn

from sdk.types.job import FineTuningJob


class JobProgressBar:
    """A rich progress bar fed with successive snapshots of one job."""

    def __init__(self, job_id: str, *, enabled: bool = True, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self._job_id = job_id
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Self:
        if self.enabled:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.fields[job]}[/] {task.description:<12}"),
                BarColumn(),
                TextColumn("{task.fields[step]}"),
                TextColumn("{task.fields[loss]}"),
                TextColumn("{task.fields[eta]}"),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "starting", total=None, job=self._job_id, step="", loss="", eta="")
        return self

    def update(self, job: FineTuningJob) -> None:
        if self._progress is None or self._task is None:
            return
        p = job.progress
        stage = (p.stage if p and p.stage else None) or job.stage or job.status
        total = p.total_steps if p and p.total_steps else None
        step = p.step if p and p.step is not None else None
        if job.done:
            stage, total, step = job.status, total or 1, total or 1
        self._progress.update(
            self._task,
            description=stage,
            total=total,
            completed=step or 0,
            step=f"step {step}/{total}" if step is not None and total else "",
            loss=f"loss {p.loss:.4f}" if p and p.loss is not None else "",
            eta=f"ETA {_duration(p.eta_seconds)}" if p and p.eta_seconds is not None
            and not job.done else "",
        )

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}:{secs:02d}" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"
