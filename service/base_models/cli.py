"""`safetylock base-model import` (fetch and convert a real base model) and `base-model
align` (the operator's safety fine-tuning of it); each prints the model's folder.

A light module: torch, transformers, gguf and trl are imported inside the commands.
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


def align(
    model_id: Annotated[str, typer.Argument(
        help="A known id (imported first if needed), or the id to give --from's model.")],
    from_dir: Annotated[Path | None, typer.Option(
        "--from", help="Align this model folder instead of an imported known model.")] = None,
    cache: Annotated[Path | None, typer.Option(
        "--cache", help="Where aligned models live (default: the import cache; with --from, "
                        "the folder's parent).")] = None,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    corpus_seed: Annotated[int, typer.Option(help="Seed of the prompts drawn from our corpus.")] = 0,
    n_harmful: Annotated[int, typer.Option(min=1, help="Harmful requests (answered with our refusals).")] = 200,
    n_benign: Annotated[int, typer.Option(min=0, help="Benign requests (answered with the model's own answers).")] = 120,
    n_safe: Annotated[int, typer.Option(min=0, help="Safe-but-scary requests (own answers).")] = 100,
    questions: Annotated[bool, typer.Option(
        "--questions/--no-questions", help="Add our plain questions (harmful, safe-but-scary, everyday).")] = True,
    epochs: Annotated[float, typer.Option(min=0.0, help="Passes over the data.")] = 2.0,
    learning_rate: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (linear decay).")] = 5e-5,
    batch_size: Annotated[int, typer.Option(min=1, help="Training batch size.")] = 8,
    exclude: Annotated[list[Path] | None, typer.Option(
        "--exclude", help="A prompt file (CSV, JSONL, JSON) the model will be evaluated on: "
                          "neither its prompts nor near duplicates are trained on. Repeatable.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Generate and train again even if cached.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the alignment record as JSON.")] = False,
) -> None:
    """Safety-align a helpful-only base model once (full SFT on our corpus: our refusals for
    harmful requests, its own answers for the rest), cached by content hash; print the folder."""
    from service.base_models.align import AlignRecipe, align_model
    from service.base_models.alignment_data import read_prompts
    from service.base_models.fetch import FetchError
    from service.base_models.gguf_import import import_known

    say = lambda msg: typer.echo(msg, err=True)
    try:
        recipe = AlignRecipe(corpus_seed=corpus_seed, n_harmful=n_harmful, n_benign=n_benign,
                             n_safe=n_safe, questions=questions, n_epochs=epochs, learning_rate=learning_rate,
                             batch_size=batch_size, seed=seed)
        excluded = [p for path in exclude or [] for p in read_prompts(path)]
        if from_dir is not None:
            root = cache or from_dir.resolve().parent
            source = from_dir
        else:
            root = cache or default_cache()
            source = import_known(model_id, root, progress=say).path
        aligned = align_model(source, root, model_id, recipe, exclude=excluded, force=force, progress=say)
    except (ValueError, FileNotFoundError, FetchError) as e:
        raise typer.BadParameter(str(e), param_hint="--from" if from_dir else "MODEL_ID") from e
    if as_json:
        typer.echo(json.dumps(aligned.record))
    else:
        say(f"{aligned.id}: key {aligned.key[:16]}, {'reused' if aligned.reused else 'aligned'} "
            f"in {aligned.seconds:.1f} s")
        typer.echo(str(aligned.path))


def register(app: typer.Typer) -> None:
    """Add the `base-model` command group to the `safetylock` CLI."""
    group = typer.Typer(help="Real base models: fetch and convert once, align once.", no_args_is_help=True)
    group.command("import")(import_)
    group.command("align")(align)
    app.add_typer(group, name="base-model")
