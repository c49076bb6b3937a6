"""`safetylock base-model import`: fetch and convert a real base model, print its folder.

A light module: the conversion (torch, transformers, gguf) is imported inside the command.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer


def default_cache() -> Path:
    return Path(os.environ.get("SAFETYLOCK_CACHE_DIR") or Path.home() / ".cache" / "safetylock") / "base-models"


def import_(
    model_id: Annotated[str, typer.Argument(help="A known id (smollm2-135m-instruct), or the id to give --gguf's model.")],
    gguf: Annotated[Path | None, typer.Option("--gguf", help="Convert this GGUF file instead of fetching a known one.")] = None,
    cache: Annotated[Path | None, typer.Option(
        "--cache", help="Where converted models live (default $SAFETYLOCK_CACHE_DIR/base-models or ~/.cache/safetylock/base-models).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Convert again even if the cache matches.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the import record as JSON.")] = False,
) -> None:
    """Convert a GGUF chat model once to a safetensors folder (cached by the file's sha256)
    and print the folder: name it as a base model (SAFETYLOCK_BASE_MODELS) or to `lock create`."""
    from service.base_models.fetch import FetchError
    from service.base_models.gguf_import import as_dict, import_gguf, import_known

    root = cache or default_cache()
    say = lambda msg: typer.echo(msg, err=True)
    try:
        if gguf is not None:
            imported = import_gguf(gguf, root / model_id, model_id, force=force, progress=say)
        else:
            imported = import_known(model_id, root, force=force, progress=say)
    except (ValueError, FileNotFoundError, FileExistsError, FetchError) as e:
        raise typer.BadParameter(str(e), param_hint="--gguf" if gguf else "MODEL_ID") from e
    if as_json:
        typer.echo(json.dumps(as_dict(imported)))
    else:
        say(f"{imported.id}: {imported.architecture}, {imported.parameters:,} parameters, "
            f"{'reused' if imported.reused else 'converted'} in {imported.seconds:.1f} s")
        typer.echo(str(imported.path))


def register(app: typer.Typer) -> None:
    """Add the `base-model` command group to the `safetylock` CLI."""
    group = typer.Typer(help="Real base models: fetch and convert once.", no_args_is_help=True)
    group.command("import")(import_)
    app.add_typer(group, name="base-model")
