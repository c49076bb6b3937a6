"""`safetylock demo-model build`: build (or reuse) the staged demo model.

A light module: the build itself (torch, transformers) is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def build(
    out: Annotated[Path, typer.Option("--out", help="Directory for the build (stages inside).")],
    size: Annotated[str, typer.Option("--size", help="test (CI, seconds) or demo (minutes).")] = "test",
    seed: Annotated[int, typer.Option("--seed", help="Seed of corpus, tokenizer and weights.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if the cache matches.")] = False,
) -> None:
    """Build the tiny aligned chat model: helpful-only stage, then safety alignment."""
    from service.demo_world.build import build_demo_model
    from service.demo_world.sizes import SIZES

    if size not in SIZES:
        raise typer.BadParameter(f"choose one of {sorted(SIZES)}", param_hint="--size")
    try:
        model = build_demo_model(out, size, seed, force=force,
                                 progress=lambda msg: typer.echo(msg, err=True))
    except FileExistsError as e:
        raise typer.BadParameter(str(e), param_hint="--out") from e
    typer.echo(f"helpful_only: {model.helpful_only}")
    typer.echo(f"aligned: {model.aligned}")


def register(app: typer.Typer) -> None:
    """Add the `demo-model` command group to the `safetylock` CLI."""
    group = typer.Typer(help="The demo world's tiny aligned chat model.", no_args_is_help=True)
    group.command("build")(build)
    app.add_typer(group, name="demo-model")
