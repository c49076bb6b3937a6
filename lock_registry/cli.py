"""The operator's `safetylock lock ...` commands: create, show, import-reference.

Light at import time: torch and transformers are imported inside command bodies only.
Registry commands are added by `lock_registry.registry_cli.add_commands(lock_app)` when
that module is installed. Publishing hook: `--publish` on create/import-reference calls
the function given to `set_publisher` (the registry module registers it) with the saved
lock directory and the lock, and prints what it returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from lock_registry.lock import MetaSafetyLock

lock_app = typer.Typer(
    name="lock",
    help="Meta-SafetyLocks (operators): create, inspect and import locks.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

Publisher = Callable[[Path, "MetaSafetyLock"], str]
_publisher: Publisher | None = None


def set_publisher(publisher: Publisher | None) -> None:
    """Install the function `--publish` calls: `publisher(lock_dir, lock) -> message`."""
    global _publisher
    _publisher = publisher


def register(app: typer.Typer) -> None:
    """Entry point of the `safetylock.cli` group: adds `lock` to the root CLI."""
    app.add_typer(lock_app, name="lock")


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def _publish(out: Path, lock: MetaSafetyLock) -> None:
    if _publisher is None:
        raise _fail("--publish needs the lock registry (lock_registry.registry_cli) installed")
    console.print(_publisher(out, lock))


@lock_app.command("create")
def create(
    model: Annotated[str, typer.Option(help="aligned base model: local directory or hub id")],
    pairs: Annotated[
        Path,
        typer.Option(
            help="contrastive pairs JSON (refusal_pairs format); a conditional preset takes their "
            "questions as its harmful prompts"
        ),
    ],
    out: Annotated[Path, typer.Option(help="directory to write the lock into")],
    heads: Annotated[
        int | None,
        typer.Option(help="N: number of heads to keep [default: 24 for paper, 16 for conditional]"),
    ] = None,
    last_tokens: Annotated[
        int | None,
        typer.Option(help="K: token positions read per sequence (head_bias presets) [default: 5]"),
    ] = None,
    base_model_id: Annotated[str | None, typer.Option(help="id recorded in the manifest")] = None,
    preset: Annotated[
        str,
        typer.Option(
            help="lock recipe: paper (the paper's head_bias lock) or conditional (after CAST)"
        ),
    ] = "paper",
    benign: Annotated[
        Path | None,
        typer.Option(
            help="conditional: benign prompts JSON, a list of strings (the condition's negatives)"
        ),
    ] = None,
    condition_layer: Annotated[
        int | None,
        typer.Option(
            help="conditional: layer whose residual the condition reads [default: best held-out AUC]"
        ),
    ] = None,
    position: Annotated[
        str | None,
        typer.Option(
            help="conditional: steered positions, answer_start or answer [default: answer_start]"
        ),
    ] = None,
    calibration_size: Annotated[
        int | None,
        typer.Option(
            help="conditional: labelled prompts held out and carried in the lock, on which each "
            "job re-fits the threshold [default: 64]"
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="use only the first LIMIT pairs")] = None,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16")] = "float32",
    device: Annotated[str, typer.Option(help="torch device")] = "cpu",
    publish: Annotated[bool, typer.Option(help="publish to the lock registry")] = False,
) -> None:
    """Take a Meta-SafetyLock from an aligned base model."""
    from lock_registry.create import get_preset
    from lock_registry.errors import LockError

    conditional_options = {
        "--benign": benign, "--condition-layer": condition_layer, "--position": position,
        "--calibration-size": calibration_size,
    }  # fmt: skip
    try:
        recipe = get_preset(preset)
    except LockError as exc:
        raise _fail(str(exc)) from exc
    if recipe.kind == "head_bias":
        given = [name for name, value in conditional_options.items() if value is not None]
        if given:
            raise _fail(
                f"{', '.join(given)} only apply to a conditional preset; "
                f"preset {preset!r} makes a head_bias lock from --pairs alone"
            )
    else:
        if last_tokens is not None:
            raise _fail(
                f"--last-tokens only applies to a head_bias preset; preset {preset!r} "
                "reads the last prompt token"
            )
        if benign is None:
            raise _fail(
                f"preset {preset!r} makes a conditional lock, which needs benign prompts "
                "besides the harmful pairs: give --benign FILE (a JSON list of strings)"
            )
    try:
        if recipe.kind == "head_bias":
            lock = _create_head_bias(
                model, pairs, limit, dtype, device, base_model_id, preset, heads, last_tokens
            )
        else:
            overrides = {
                "num_heads": heads,
                "condition_layer": condition_layer,
                "position": position,
                "calibration_size": calibration_size,
            }
            lock = _create_conditional(
                model, pairs, benign, limit, dtype, device, base_model_id, recipe, overrides
            )
        lock.save(out)
    except LockError as exc:
        raise _fail(str(exc)) from exc
    manifest = lock.manifest
    console.print(
        f"{manifest.kind} lock with {manifest.num_selected} heads written to {out} "
        f"(sha256 {manifest.sha256[:16]}…)",
        soft_wrap=True,
    )
    if publish:
        _publish(out, lock)


def _load(model: str, dtype: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with console.status(f"loading {model}"):
        tokenizer = AutoTokenizer.from_pretrained(model)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        loaded = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype))
        loaded.to(device)
    return loaded, tokenizer


def _create_head_bias(
    model, pairs, limit, dtype, device, base_model_id, preset, heads, last_tokens
) -> MetaSafetyLock:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from lock_registry.create import create_lock
    from lock_registry.pairs import load_pairs

    pair_list = load_pairs(pairs, limit=limit)
    loaded, tokenizer = _load(model, dtype, device)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    sizes = {"num_heads": heads, "last_tokens": last_tokens}
    with Progress(*columns, console=console) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return create_lock(
            loaded,
            tokenizer,
            pair_list,
            base_model_id=base_model_id or model,
            preset=preset,
            progress=progress,
            **{k: v for k, v in sizes.items() if v is not None},
        )


def _create_conditional(
    model, pairs, benign, limit, dtype, device, base_model_id, recipe, overrides
) -> MetaSafetyLock:
    from dataclasses import replace

    from lock_registry.conditional import POSITION_POLICIES, create_conditional_lock, labelled_from
    from lock_registry.create import current_user
    from lock_registry.errors import LockError
    from lock_registry.fingerprint import model_fingerprint
    from lock_registry.pairs import load_pairs, load_prompt_list

    if overrides["position"] is not None and overrides["position"] not in POSITION_POLICIES:
        raise LockError(
            f"--position {overrides['position']!r} is not one of {', '.join(POSITION_POLICIES)}"
        )
    recipe = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    harmful = list(dict.fromkeys(p.question for p in load_pairs(pairs, limit=limit)))
    prompts = labelled_from(harmful, load_prompt_list(benign))
    loaded, tokenizer = _load(model, dtype, device)
    with console.status("taking the conditional lock") as status:
        fingerprint = model_fingerprint(loaded)
        return create_conditional_lock(
            loaded,
            tokenizer,
            prompts,
            base_model_id=base_model_id or model,
            base_fingerprint=fingerprint,
            creator=current_user(),
            progress=status.update,
            **recipe.options(),
        )


def kind_rows(manifest) -> dict[str, str]:
    """The manifest's kind-specific fields (what `register_kind` kinds add), one row each;
    per-head lists are left to the heads table (`per_head_columns`)."""
    per_head = per_head_columns(manifest)
    rows = {}
    for key, value in (manifest.model_extra or {}).items():
        if key in per_head:
            continue
        if isinstance(value, float):
            rows[key] = f"{value:.6g}"
        elif isinstance(value, dict | list):
            rows[key] = json.dumps(value, separators=(", ", ": "))
        else:
            rows[key] = str(value)
    return rows


def per_head_columns(manifest) -> dict[str, list]:
    """Extra manifest lists with one number per chosen head (e.g. a conditional lock's
    `head_effects`), keyed by field name."""
    return {
        key: value
        for key, value in (manifest.model_extra or {}).items()
        if isinstance(value, list)
        and len(value) == manifest.num_selected
        and all(isinstance(v, int | float) for v in value)
    }


def heads_table(manifest) -> Table:
    """The chosen heads with their probe accuracies (when known) and per-head fields."""
    columns = per_head_columns(manifest)
    accuracies = any(entry.probe_accuracy is not None for entry in manifest.heads)
    table = Table(
        "layer", "head", *(["probe accuracy"] if accuracies else []), *columns, title="chosen heads"
    )
    for i, entry in enumerate(manifest.heads):
        cells = [str(entry.layer), str(entry.head)]
        if accuracies:
            cells.append("-" if entry.probe_accuracy is None else f"{entry.probe_accuracy:.3f}")
        cells += [f"{values[i]:.4g}" for values in columns.values()]
        table.add_row(*cells)
    return table


@lock_app.command("show")
def show(
    directory: Annotated[Path, typer.Argument(help="lock directory")],
    as_json: Annotated[bool, typer.Option("--json", help="print the manifest as JSON")] = False,
) -> None:
    """Show a lock's manifest, its kind's fields and its chosen heads (verifies its sha256)."""
    from lock_registry.errors import LockError
    from lock_registry.lock import MetaSafetyLock

    try:
        lock = MetaSafetyLock.load(directory)
    except LockError as exc:
        raise _fail(str(exc)) from exc
    manifest = lock.manifest
    if as_json:
        typer.echo(json.dumps(manifest.model_dump(mode="json"), indent=2))
        return
    console.print(f"lock {directory} (sha256 verified)", soft_wrap=True)
    summary = Table(show_header=False)
    rows = {
        "kind": manifest.kind,
        "base model": f"{manifest.base_model.id} ({manifest.base_model.fingerprint[:16] or '?'})",
        "architecture": manifest.architecture,
        "geometry": f"{manifest.num_layers} layers x {manifest.num_heads} heads x {manifest.head_dim}",
        "K last tokens": str(manifest.last_tokens),
        "N heads": str(manifest.num_selected),
        "default alpha": str(manifest.default_alpha),
        "data": manifest.data_fingerprint[:16],
        "created": f"{manifest.created_at} by {manifest.creator or '?'}",
        "library": manifest.library_version,
        "parent": manifest.parent or "-",
        "sha256": manifest.sha256,
        **kind_rows(manifest),
    }
    for key, value in rows.items():
        summary.add_row(key, value)
    console.print(summary)
    console.print(heads_table(manifest))


@lock_app.command("import-reference")
def import_reference_cmd(
    file: Annotated[Path, typer.Argument(help="reference .safelock file (paper's release)")],
    base_model: Annotated[str, typer.Option(help="base model id, or its local directory")],
    out: Annotated[Path, typer.Option(help="directory to write the lock into")],
    num_layers: Annotated[int | None, typer.Option(help="if base model is not local")] = None,
    num_heads: Annotated[int | None, typer.Option(help="if base model is not local")] = None,
    architecture: Annotated[str, typer.Option(help="model_type if not local")] = "llama",
    publish: Annotated[bool, typer.Option(help="publish to the lock registry")] = False,
) -> None:
    """Import a paper `.safelock` through a restricted unpickler (never plain pickle)."""
    from lock_registry.errors import LockError
    from lock_registry.reference_import import import_reference

    base_dir = Path(base_model)
    fingerprint = ""
    try:
        if (base_dir / "config.json").is_file():
            from transformers import AutoConfig

            from lock_registry.fingerprint import model_fingerprint

            config = AutoConfig.from_pretrained(base_dir)
            num_layers, num_heads = config.num_hidden_layers, config.num_attention_heads
            architecture = config.model_type
            fingerprint = model_fingerprint(base_dir)
        elif num_layers is None or num_heads is None:
            raise _fail(
                f"{base_model} is not a local model directory: give --num-layers and --num-heads"
            )
        lock = import_reference(
            file,
            base_model_id=base_model,
            num_layers=num_layers,
            num_heads=num_heads,
            architecture=architecture,
            base_fingerprint=fingerprint,
        )
        lock.save(out)
    except LockError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"imported {lock.manifest.num_selected} heads from {file} into {out}")
    if publish:
        _publish(out, lock)


def _add_registry_commands() -> None:
    import importlib

    try:
        registry_cli = importlib.import_module("lock_registry.registry_cli")
    except ModuleNotFoundError:
        return  # the registry part (or its extra) is not installed
    registry_cli.add_commands(lock_app)


_add_registry_commands()
