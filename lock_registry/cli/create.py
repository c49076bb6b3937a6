"""`safetylock lock create` (take a lock from an aligned base model) and
`safetylock lock import-reference` (a paper `.safelock` file).

`--publish` publishes the saved lock to the default store (`$SAFETYLOCK_STORE_URL`, else
`$SAFETYLOCK_DATA_DIR/store`) through `registry.publish_saved`. torch and transformers
load inside command bodies only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .app import console, fail

if TYPE_CHECKING:
    from lock_registry.lock import MetaSafetyLock


def _publish(out: Path, lock: MetaSafetyLock) -> None:
    from .registry import publish_saved

    console.print(publish_saved(out, lock))


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
    condition_window: Annotated[
        int | None,
        typer.Option(
            help="conditional: the condition reads the residual averaged over the prompt's last "
            "this many tokens [default: 1, the last token]"
        ),
    ] = None,
    condition_shrinkage: Annotated[
        float | None,
        typer.Option(
            help="conditional: in (0, 1]; below 1 the condition direction is the shrinkage LDA "
            "one (the mean difference through the shrunk within-class covariance) "
            "[default: 1, the mean difference]"
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
    max_false_fire: Annotated[
        float | None,
        typer.Option(
            help="conditional: the threshold is the lowest firing on at most this share of the "
            "benign calibration prompts (recall first) [default: best TPR - FPR]"
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
        "--benign": benign, "--condition-layer": condition_layer,
        "--condition-window": condition_window, "--condition-shrinkage": condition_shrinkage,
        "--position": position,
        "--calibration-size": calibration_size, "--max-false-fire": max_false_fire,
    }  # fmt: skip
    try:
        recipe = get_preset(preset)
    except LockError as exc:
        raise fail(str(exc)) from exc
    if recipe.kind == "head_bias":
        given = [name for name, value in conditional_options.items() if value is not None]
        if given:
            raise fail(
                f"{', '.join(given)} only apply to a conditional preset; "
                f"preset {preset!r} makes a head_bias lock from --pairs alone"
            )
    elif recipe.kind != "conditional":  # a kind registered elsewhere: its own data, --heads at most
        options = {**conditional_options, "--last-tokens": last_tokens}
        given = [name for name, value in options.items() if value is not None and name != "--benign"]
        if given:
            raise fail(f"{', '.join(given)} do not apply to preset {preset!r} (a {recipe.kind} lock)")
    else:
        if last_tokens is not None:
            raise fail(
                f"--last-tokens only applies to a head_bias preset; preset {preset!r} "
                "reads the last prompt token"
            )
        if benign is None:
            raise fail(
                f"preset {preset!r} makes a conditional lock, which needs benign prompts "
                "besides the harmful pairs: give --benign FILE (a JSON list of strings)"
            )
    try:
        if recipe.kind == "head_bias":
            lock = _create_head_bias(
                model, pairs, limit, dtype, device, base_model_id, preset, heads, last_tokens
            )
        elif recipe.kind != "conditional":
            lock = _create_other(
                model, pairs, benign, limit, dtype, device, base_model_id, preset, heads
            )
        else:
            overrides = {
                "num_heads": heads,
                "condition_layer": condition_layer,
                "condition_window": condition_window,
                "condition_shrinkage": condition_shrinkage,
                "position": position,
                "calibration_size": calibration_size,
                "max_false_fire": max_false_fire,
            }
            lock = _create_conditional(
                model, pairs, benign, limit, dtype, device, base_model_id, recipe, overrides
            )
        lock.save(out)
    except LockError as exc:
        raise fail(str(exc)) from exc
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
    from lock_registry.kinds import get_kind

    pair_list = get_kind("head_bias").read_data(pairs, None, limit)
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

    from lock_registry.create import create_lock, current_user
    from lock_registry.fingerprint import model_fingerprint
    from lock_registry.kinds import get_kind

    # the recipe checks the overrides (an unknown --position) before the model is loaded
    recipe = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    prompts = get_kind(recipe.kind).read_data(pairs, benign, limit)
    loaded, tokenizer = _load(model, dtype, device)
    with console.status("taking the conditional lock") as status:
        return create_lock(
            loaded,
            tokenizer,
            prompts,
            base_model_id=base_model_id or model,
            preset=recipe.name,
            base_fingerprint=model_fingerprint(loaded),
            creator=current_user(),
            progress=status.update,
            **recipe.options(),
        )


def _create_other(
    model, pairs, benign, limit, dtype, device, base_model_id, preset, heads
) -> MetaSafetyLock:
    """A lock of a kind registered outside lock_registry: its `read_data` reads the files."""
    from lock_registry.create import create_lock, get_preset
    from lock_registry.errors import LockError
    from lock_registry.kinds import get_kind

    kind = get_kind(get_preset(preset).kind)
    if kind.read_data is None:
        raise LockError(f"preset {preset!r} makes a {kind.name} lock, which declares no read_data: "
                        "take it from Python with lock_registry.create.create_lock")
    data = kind.read_data(pairs, benign, limit)
    loaded, tokenizer = _load(model, dtype, device)
    with console.status(f"taking the {kind.name} lock"):
        return create_lock(loaded, tokenizer, data, base_model_id=base_model_id or model, preset=preset,
                           **({"num_heads": heads} if heads is not None else {}))


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
            raise fail(
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
        raise fail(str(exc)) from exc
    console.print(f"imported {lock.manifest.num_selected} heads from {file} into {out}")
    if publish:
        _publish(out, lock)
