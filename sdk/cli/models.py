"""`safetylock models list|download`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from sdk.cli._common import JsonOption, client, handle_errors, out, print_json
from sdk.cli.render import when

app = typer.Typer(help="Published fine-tuned models.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_(as_json: JsonOption = False) -> None:
    """Your published models."""
    models = list(client().models.list(limit=100))
    if as_json:
        print_json(models)
        return
    table = Table(Column("id", no_wrap=True), "base model", Column("job", no_wrap=True), "lock",
                  "created")
    for m in models:
        lock = f"v{m.lock.version} alpha {m.lock.alpha:g}" if m.lock and m.lock.alpha else "-"
        table.add_row(m.id, m.base_model or "-", m.job_id or "-", lock, when(m.created_at))
    out.print(table)


@app.command()
@handle_errors
def download(
    model_id: Annotated[str, typer.Argument(help="Model id (ft:...).")],
    dest: Annotated[Path, typer.Argument(help="Directory to write the model into.")],
) -> None:
    """Download a published model's files into DEST."""
    path = client().models.download(model_id, dest)
    out.print(f"downloaded {model_id} to {path}", highlight=False)
