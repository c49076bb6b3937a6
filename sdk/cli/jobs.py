"""`safetylock jobs create|list|show|cancel|wait|events|report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sdk.cli._common import JsonOption, client, err, handle_errors, out, print_json
from sdk.cli.render import events_table, job_table, jobs_table, report_view
from sdk.types.job import FineTuningJob

app = typer.Typer(help="Fine-tuning jobs.", no_args_is_help=True)
JobId = Annotated[str, typer.Argument(help="Job id (ftjob-...).")]


def _show(job: FineTuningJob, as_json: bool) -> None:
    print_json(job) if as_json else out.print(job_table(job))


@app.command()
@handle_errors
def create(
    model: Annotated[str, typer.Option(help="Base model id.")],
    training_file: Annotated[str, typer.Option(help="Uploaded file id (file-...).")],
    validation_file: Annotated[str | None, typer.Option(help="Held-out file id.")] = None,
    method: Annotated[str, typer.Option(help="lora or full.")] = "lora",
    n_epochs: Annotated[int | None, typer.Option("--epochs", help="Passes over the data.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples per step.")] = None,
    lora_rank: Annotated[int | None, typer.Option(help="LoRA rank.")] = None,
    lora_alpha: Annotated[float | None, typer.Option(help="LoRA scaling.")] = None,
    max_seq_length: Annotated[int | None, typer.Option(help="Tokens per example.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    suffix: Annotated[str | None, typer.Option(help="Added to the fine-tuned model's id.")] = None,
    lock_version: Annotated[int | None, typer.Option(
        help="Pin a lock version (default: the registry's production lock).")] = None,
    gate_policy: Annotated[list[str] | None, typer.Option(
        "--gate", help="Tighten a gate threshold, e.g. --gate max_harmful_rate=0.01 "
                       "(repeatable).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Start a fine-tuning job."""
    given: dict[str, Any] = {
        "n_epochs": n_epochs, "learning_rate": learning_rate, "batch_size": batch_size,
        "lora_rank": lora_rank, "lora_alpha": lora_alpha, "max_seq_length": max_seq_length,
        "seed": seed}
    hp = {k: v for k, v in given.items() if v is not None}
    policy = {}
    for item in gate_policy or []:
        name, sep, value = item.partition("=")
        try:
            policy[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise typer.BadParameter(f"{item!r} is not NAME=NUMBER", param_hint="--gate")
    c = client()
    job = c.jobs.create(model=model, training_file=training_file,
                        validation_file=validation_file, method=method,  # type: ignore[arg-type]
                        hyperparameters=hp or None, suffix=suffix,  # type: ignore[arg-type]
                        lock_version=lock_version, gate_policy=policy or None)
    if wait:
        job = c.jobs.wait(job.id)
    _show(job, as_json)
    if wait and job.status != "succeeded":
        raise typer.Exit(2)


@app.command("list")
@handle_errors
def list_(
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most jobs to show.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Your jobs, newest first."""
    jobs = []
    for job in client().jobs.list(status=status, limit=min(limit, 100)):  # type: ignore[arg-type]
        jobs.append(job)
        if len(jobs) >= limit:
            break
    print_json(jobs) if as_json else out.print(jobs_table(jobs))


@app.command()
@handle_errors
def show(job_id: JobId, as_json: JsonOption = False) -> None:
    """One job: status, stage, progress, error."""
    _show(client().jobs.retrieve(job_id), as_json)


@app.command()
@handle_errors
def cancel(job_id: JobId, as_json: JsonOption = False) -> None:
    """Ask a job to stop; a queued job stops at once."""
    _show(client().jobs.cancel(job_id), as_json)


@app.command()
@handle_errors
def wait(
    job_id: JobId,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
    poll_interval: Annotated[float, typer.Option(min=0, help="Seconds between polls.")] = 1.0,
    as_json: JsonOption = False,
) -> None:
    """Follow a job with a progress bar until it ends; exit 2 unless it succeeded."""
    job = client().jobs.wait(job_id, timeout=timeout, poll_interval=poll_interval)
    _show(job, as_json)
    if job.status != "succeeded":
        raise typer.Exit(2)


@app.command()
@handle_errors
def events(
    job_id: JobId,
    follow: Annotated[bool, typer.Option("--follow", "-f",
                                         help="Stream new events until the job ends.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The job's events, oldest first."""
    c = client()
    if follow:
        for e in c.jobs.stream_events(job_id):
            if as_json:
                typer.echo(e.model_dump_json())
            else:
                out.print(f"{e.level:<5} {e.message}", markup=False, highlight=False)
        return
    items = list(c.jobs.events(job_id, limit=100))
    print_json(items) if as_json else out.print(events_table(items))


@app.command()
@handle_errors
def report(
    job_id: JobId,
    as_json: JsonOption = False,
    html: Annotated[Path | None, typer.Option(
        help="Also write the report as an HTML page (plots and tables) to this file.")] = None,
) -> None:
    """The safety report: harmful rates before/after the lock, alpha, utility, decision."""
    c = client()
    r = c.jobs.report(job_id)
    print_json(r) if as_json else out.print(report_view(r))
    if html is not None:
        html.write_text(c.jobs.report_html(job_id), encoding="utf-8")
        err.print(f"HTML report: {html}", markup=False, highlight=False)
