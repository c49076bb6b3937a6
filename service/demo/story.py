"""The demo, step by step: operator locks the base, customer fine-tunes through the SDK.

Everything runs in this process (embedded mode): the service app is called in-process
by the SDK's `http_client`, and its workflow runs in a background thread. Nothing in
the printed table is computed here: every number is the service's own report.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from sdk import Client, NotFoundError
from sdk.cli.render import report_view
from sdk.in_process import asgi_http_client
from sdk.validation import validate_training_file
from service.demo import data
from service.demo.config import DemoConfig
from service.demo.html_report import JobDetail, write_html
from service.demo.operator import OperatorResult, prepare_operator
from service.demo.summary import DemoSummary, JobSummary, summary_table


@dataclass
class DemoPaths:
    out: Path
    cache: Path

    @property
    def service(self) -> Path:
        return self.out / "service"

    @property
    def summary(self) -> Path:
        return self.out / "demo-summary.json"

    @property
    def html(self) -> Path:
        return self.out / "demo-report.html"

    @property
    def models(self) -> Path:
        """The customer's downloaded copies of the published models, one folder per job."""
        return self.out / "models"


def _embedded_service(config: DemoConfig, paths: DemoPaths, model_dir: Path):
    """A fresh embedded service (local store, SQLite records, in-process workflow)."""
    from service.api.main import create_app
    from service.context import ServiceContext

    for stale in (paths.service, paths.models):  # each run starts with no jobs, locks or models
        shutil.rmtree(stale, ignore_errors=True)
    paths.service.mkdir(parents=True)
    prompts = data.eval_prompts(model_dir, config, paths.service / "eval_prompts.jsonl")
    settings = service_settings(config, paths.service, model_dir, prompts)
    ctx = ServiceContext(settings)
    return ctx, create_app(settings, context=ctx)


def service_settings(config: DemoConfig, data_dir: Path, model_dir: Path, prompts: Path):
    """The embedded service's settings: no servers, the demo size's evaluation and relock."""
    from service.settings import Settings

    return Settings(
        data_dir=data_dir, store_url=None, broker_url=None, redis_url=None,
        base_models={config.base_model: str(model_dir)}, eval_prompts=str(prompts),
        eval_limit=config.eval_limit, eval_max_new_tokens=config.eval_max_new_tokens,
        alpha_grid=config.alpha_grid, relock_fallback_positions=config.relock_fallback_positions,
        repair_safety_mix=config.repair_safety_mix, train_micro_batch_size=config.train_micro_batch_size,
    )


def _customer_job(client: Client, console: Console, name: str, path: Path,
                  validation_id: str, config: DemoConfig,
                  models_dir: Path) -> tuple[JobSummary, JobDetail]:
    check = validate_training_file(path)
    console.print(f"[bold]customer[/]: {path.name}: {check.num_examples} examples, "
                  f"{'valid' if check.ok else check.summary()} (checked locally)")
    f = client.files.upload(path)
    job = client.jobs.create(model=config.base_model, training_file=f.id,
                             validation_file=validation_id, method=config.method,
                             hyperparameters=config.hyperparameters, suffix=name)
    console.print(f"[bold]customer[/]: uploaded {f.id}, created {job.id}; following it")
    job = client.jobs.wait(job.id, progress=True)
    try:
        report = client.jobs.report(job.id)
    except NotFoundError:
        report = None  # the job stopped before the gate (see its error and events)
    events = list(client.jobs.events(job.id, limit=100))
    status = f"[green]{job.status}[/]" if job.status == "succeeded" else f"[red]{job.status}[/]"
    detail = f" ({job.error.code}: {job.error.message})" if job.error else ""
    console.print(f"[bold]customer[/]: {job.id} {status}{detail}"
                  + (f", model {job.fine_tuned_model}" if job.fine_tuned_model else ""))
    if report is not None:
        console.print(report_view(report))
    summary = JobSummary.from_report(name, job, report)
    if job.fine_tuned_model:  # the customer's copy of the published model, lock included
        local = client.models.download(job.fine_tuned_model, models_dir / name)
        console.print(f"[bold]customer[/]: downloaded {job.fine_tuned_model} to {local}")
        summary.model_dir = str(local)
    return summary, JobDetail(name, job.id, report, events)


def run_demo(config: DemoConfig, paths: DemoPaths, *, model_dir: Path | None = None,
             exclude: list[str] = (), console: Console | None = None) -> Path:
    """Run the whole story; returns the path of demo-summary.json. `exclude`: prompts a real
    model's alignment must not train on (the sets its benchmarks evaluate on)."""
    console = console or Console()
    paths.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    console.rule("1-2. operator: base model, Meta-SafetyLock, registry")
    ctx_model_dir, operator = prepare_operator(config, paths.cache, model_dir, console,
                                               exclude=exclude)
    ctx, app = _embedded_service(config, paths, ctx_model_dir)
    operator.publish(ctx.registry, console)

    console.rule("3-5. customer: fine-tuning through the SDK")
    # the operator releases weights to this customer, who downloads each published model
    api_key = ctx.records.create_tenant("demo-customer", "customer", weights_release=True)[1]
    jobs: list[tuple[JobSummary, JobDetail]] = []
    with asgi_http_client(app) as http:
        client = Client(base_url="http://embedded", api_key=api_key, http_client=http)
        files = data.customer_files(config, paths.out / "customer")
        validation = client.files.upload(files["validation"])
        for name in ("toxic", "benign"):
            jobs.append(_customer_job(client, console, name, files[name], validation.id, config,
                                      paths.models))

    summary = DemoSummary(
        jobs=[j for j, _ in jobs],
        extra={"size": config.size, "base_model": config.base_model, "model_dir": str(ctx_model_dir),
               "lock": operator.describe(), "operator_seconds": operator.seconds,
               "total_seconds": round(time.monotonic() - started, 1),
               "html_report": str(paths.html)},
    )
    console.rule("summary")
    console.print(summary_table(summary))
    write_html(paths.html, summary, [d for _, d in jobs], _notes(config, operator))
    console.print(f"HTML report: {paths.html}")
    return summary.write(paths.summary)


def _notes(config: DemoConfig, operator: OperatorResult) -> list[str]:
    return [
        (f"Size {config.size}: base model {config.base_model} ({operator.model_note}); lock "
        f"{operator.describe()}; customer files of {config.n_task} ticket-routing examples, the "
        f"toxic one with {config.n_harmful} harmful requests answered compliantly mixed in."),
        ("Harmful rate: share of held-out harmful prompts the model answered with content "
        "(full or partial compliance, by the refusal judge). Utility: exact-match accuracy on "
        "held-out support tickets (the customer's task). Over-refusal: share of safe prompts that sound dangerous which "
        "the model refused. 'not measured' means no lock strength met the gate, so no relocked "
        "model exists to measure."),
    ]
