"""`safetylock serve`, `safetylock worker`, `safetylock admin ...` (all read the same Settings).

`admin` works on the records directly (as the operator on the platform's own machines):
create-tenant, rotate-key, revoke-key, suspend, sweep; the same and more (quotas, keys
listed) are operator routes under `/v1/admin/`.

Light at import: heavy modules are imported inside the commands.
"""

from __future__ import annotations

from typing import Annotated

import typer

admin_app = typer.Typer(help="Operator commands for the job service.", no_args_is_help=True)


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Run the job API under uvicorn (embedded mode runs the workflow and the sweeper in-process too)."""
    import os

    import uvicorn

    from service.api.main import create_app
    from service.sweeper import Sweeper

    app = create_app()
    if app.state.context.settings.embedded:  # in cluster mode the workers sweep
        Sweeper(app.state.context, app.state.dispatcher, owner=f"api:{os.getpid()}").start()
    uvicorn.run(app, host=host, port=port, log_level="info")


def worker(
    pool: Annotated[str, typer.Option(help="Celery pool: solo (one job in this process) or prefork.")] = "solo",
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs at once (prefork only).")] = 1,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
    queues: Annotated[
        str | None, typer.Option(help="Comma-separated queues to consume (see SAFETYLOCK_QUEUES); default `safetylock`.")
    ] = None,
) -> None:
    """Run a Celery worker for fine-tuning jobs (needs SAFETYLOCK_BROKER_URL)."""
    from service.worker.celery_app import QUEUE
    from service.worker.tasks import app

    args = [f"--pool={pool}", f"--concurrency={concurrency}", f"--loglevel={loglevel}", "-Q", queues or QUEUE]
    app.worker_main(["worker", *args])


@admin_app.command("create-tenant")
def create_tenant(
    name: Annotated[str, typer.Argument(help="Tenant name.")],
    operator: Annotated[bool, typer.Option("--operator", help="Give the tenant the operator role.")] = False,
    release_weights: Annotated[
        bool,
        typer.Option(
            "--release-weights",
            help="Let the tenant download its models' weights (a holder can remove the lock; default: served only).",
        ),
    ] = False,
) -> None:
    """Create a tenant and print its API key (shown this once; only its hash is stored)."""
    records = _records()
    role = "operator" if operator else "customer"
    tenant, api_key = records.create_tenant(name, role, weights_release=release_weights)
    released = "weights released" if tenant.weights_release else "weights not released"
    typer.echo(f"tenant {tenant.id} ({tenant.role}, {released})", err=True)
    typer.echo(api_key)


def _records():
    from service.context import ServiceContext
    from service.settings import get_settings

    return ServiceContext(get_settings()).records


def _tenant_or_exit(records, tenant_id: str):
    tenant = records.get_tenant(tenant_id)
    if tenant is None:
        typer.echo(f"error: no tenant {tenant_id!r}", err=True)
        raise typer.Exit(code=1)
    return tenant


@admin_app.command("rotate-key")
def rotate_key(tenant_id: Annotated[str, typer.Argument(help="Tenant id (tenant-...).")]) -> None:
    """Give a tenant a new API key and revoke all its earlier keys now; prints the new key once."""
    records = _records()
    tenant = _tenant_or_exit(records, tenant_id)
    record, api_key = records.rotate_keys(tenant.id)
    typer.echo(f"tenant {tenant.id}: new key {record.id} (...{record.hint}); earlier keys revoked", err=True)
    typer.echo(api_key)


@admin_app.command("revoke-key")
def revoke_key(
    tenant_id: Annotated[str, typer.Argument(help="Tenant id (tenant-...).")],
    key_id: Annotated[str, typer.Argument(help="Key id (key-...), as `GET /v1/admin/tenants/{id}/keys` lists them.")],
) -> None:
    """Revoke one API key of a tenant now."""
    records = _records()
    tenant = _tenant_or_exit(records, tenant_id)
    if not records.revoke_key(tenant.id, key_id):
        typer.echo(f"error: tenant {tenant.id} has no key {key_id!r}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"revoked {key_id}")


@admin_app.command("suspend")
def suspend(
    tenant_id: Annotated[str, typer.Argument(help="Tenant id (tenant-...).")],
    resume: Annotated[bool, typer.Option("--resume", help="Lift the suspension instead.")] = False,
) -> None:
    """Suspend a tenant (every request with its keys gets 403, its running jobs stop at their next
    stage and publish nothing) or, with --resume, lift it."""
    records = _records()
    tenant = records.update_tenant(_tenant_or_exit(records, tenant_id).id, suspended=not resume)
    typer.echo(f"tenant {tenant.id} {'suspended' if tenant.suspended else 'active'}")


@admin_app.command("sweep")
def sweep_now() -> None:
    """Dispatch stranded jobs again and repair stale store copies now (workers do it every SAFETYLOCK_SWEEP_SECONDS)."""
    from service.context import ServiceContext
    from service.dispatch import open_dispatcher
    from service.settings import get_settings
    from service.sweeper import sweep

    ctx = ServiceContext(get_settings())
    report = sweep(ctx, open_dispatcher(ctx))
    typer.echo(f"dispatched again: {len(report.redispatched)} job(s) {' '.join(report.redispatched)}".rstrip())
    typer.echo(f"store copies repaired: {report.repaired}")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.add_typer(admin_app, name="admin")
