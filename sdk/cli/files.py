"""`safetylock files upload|list|validate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from sdk.cli._common import JsonOption, client, err, handle_errors, out, print_json
from sdk.cli.render import when
from sdk.validation import validate_training_file

app = typer.Typer(help="Training files.", no_args_is_help=True)


@app.command()
@handle_errors
def upload(
    path: Annotated[Path, typer.Argument(help="JSONL chat file, one example per line.")],
    validate: Annotated[bool, typer.Option(help="Check the file locally first.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Upload a training file and print its id."""
    f = client().files.upload(path, validate=validate)
    if as_json:
        print_json(f)
    else:
        out.print(f"{f.id}  {f.filename}  {f.num_examples} examples, {f.bytes} bytes",
                  highlight=False)


@app.command("list")
@handle_errors
def list_(
    limit: Annotated[int, typer.Option(min=1, help="Most files to show.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Your uploaded files, newest first."""
    files = []
    for f in client().files.list(limit=min(limit, 100)):
        files.append(f)
        if len(files) >= limit:
            break
    if as_json:
        print_json(files)
        return
    table = Table(Column("id", no_wrap=True), "filename", "examples", "bytes", "created")
    for f in files:
        table.add_row(f.id, f.filename, str(f.num_examples), str(f.bytes), when(f.created_at))
    out.print(table)


@app.command()
@handle_errors
def validate(
    path: Annotated[Path, typer.Argument(help="JSONL chat file to check.")],
    as_json: JsonOption = False,
) -> None:
    """Check a training file locally, with the service's own rules; exit 1 if invalid."""
    report = validate_training_file(path)
    if as_json:
        print_json(report.to_dict())
    elif report.ok:
        out.print(f"[green]ok[/]: {report.num_examples} examples", highlight=False)
    else:
        for e in report.errors:
            err.print(str(e), highlight=False)
        if report.num_errors > len(report.errors):
            err.print(f"... {report.num_errors - len(report.errors)} more errors")
    if not report.ok:
        raise typer.Exit(1)
