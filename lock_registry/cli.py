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
    pairs: Annotated[Path, typer.Option(help="contrastive pairs JSON (refusal_pairs format)")],
    out: Annotated[Path, typer.Option(help="directory to write the lock into")],
    heads: Annotated[int, typer.Option(help="N: number of heads to keep")] = 24,
    last_tokens: Annotated[int, typer.Option(help="K: token positions read per sequence")] = 5,
    base_model_id: Annotated[str | None, typer.Option(help="id recorded in the manifest")] = None,
    preset: Annotated[str, typer.Option(help="lock recipe")] = "paper",
    limit: Annotated[int | None, typer.Option(help="use only the first LIMIT pairs")] = None,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16")] = "float32",
    device: Annotated[str, typer.Option(help="torch device")] = "cpu",
    publish: Annotated[bool, typer.Option(help="publish to the lock registry")] = False,
) -> None:
    """Take a Meta-SafetyLock from an aligned base model."""
    import torch
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lock_registry.create import create_lock
    from lock_registry.errors import LockError
    from lock_registry.pairs import load_pairs

    try:
        pair_list = load_pairs(pairs, limit=limit)
        with console.status(f"loading {model}"):
            tokenizer = AutoTokenizer.from_pretrained(model)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            loaded = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype))
            loaded.to(device)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            lock = create_lock(
                loaded,
                tokenizer,
                pair_list,
                base_model_id=base_model_id or model,
                num_heads=heads,
                last_tokens=last_tokens,
                preset=preset,
                progress=progress,
            )
        lock.save(out)
    except LockError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"lock with {heads} heads written to {out} (sha256 {lock.manifest.sha256[:16]}…)")
    if publish:
        _publish(out, lock)


@lock_app.command("show")
def show(
    directory: Annotated[Path, typer.Argument(help="lock directory")],
    as_json: Annotated[bool, typer.Option("--json", help="print the manifest as JSON")] = False,
) -> None:
    """Show a lock's manifest and chosen heads (verifies its sha256)."""
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
    }
    for key, value in rows.items():
        summary.add_row(key, value)
    console.print(summary)
    heads = Table("layer", "head", "probe accuracy", title="chosen heads")
    for entry in manifest.heads:
        acc = "-" if entry.probe_accuracy is None else f"{entry.probe_accuracy:.3f}"
        heads.add_row(str(entry.layer), str(entry.head), acc)
    console.print(heads)


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
