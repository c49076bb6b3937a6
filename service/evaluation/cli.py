"""`safetylock eval judge` and `safetylock eval harmful`.

A light module: torch and transformers are imported inside the command bodies only.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer

eval_app = typer.Typer(
    help="Evaluate models: refusal judge, harmful-response rate.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the `eval` group to the `safetylock` CLI."""
    app.add_typer(eval_app, name="eval")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


@eval_app.command("judge")
def judge_command(
    input: Annotated[Path, typer.Option("--input", help="CSV file with one answer per row")],
    out: Annotated[Path, typer.Option("--out", help="CSV file to write (input + label, refusal)")],
    text_column: Annotated[str, typer.Option(help="column holding the answers")] = "completion",
    prompt_column: Annotated[
        str, typer.Option(help="column holding the prompts, if any")
    ] = "prompt",
    judge: Annotated[
        str | None,
        typer.Option(help="judge config: JSON text or a .json file (default: our rules)"),
    ] = None,
) -> None:
    """Label every answer full_compliance / full_refusal / partial_refusal."""
    from service.evaluation.judges import JudgeConfigError, judge_from_config

    if not input.is_file():
        _fail(f"{input}: no such file")
    if out.resolve() == input.resolve():
        _fail("--out must differ from --input (the input is never overwritten)")
    with input.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    if text_column not in fields:
        _fail(f"{input}: no column {text_column!r} (columns: {', '.join(fields) or 'none'})")
    clash = [c for c in ("label", "refusal") if c in fields]
    if clash:
        _fail(f"{input}: already has column(s) {', '.join(clash)}; rename them first")
    try:
        judge_impl = judge_from_config(judge)
    except JudgeConfigError as e:
        _fail(str(e))
    prompts = [r.get(prompt_column) or "" for r in rows]
    verdicts = judge_impl.judge(prompts, [r[text_column] or "" for r in rows])
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields + ["label", "refusal"])
        writer.writeheader()
        for row, v in zip(rows, verdicts, strict=True):
            writer.writerow({**row, "label": v.label, "refusal": str(v.refusal).lower()})
    refusals = sum(v.refusal for v in verdicts)
    typer.echo(f"{len(rows)} answers judged ({refusals} refusals) -> {out}", err=True)


@eval_app.command("harmful")
def harmful_command(
    model: Annotated[Path, typer.Option(
        "--model", help="model directory (save_pretrained); a published model (with its "
                        "safetylock/ folder) is evaluated as published, its lock applied")],
    prompts: Annotated[
        Path | None,
        typer.Option(
            help="CSV/JSONL prompts (rows without 'kind' are harmful); "
            "default: the demo's held-out prompts beside the model"
        ),
    ] = None,
    lock: Annotated[
        Path | None, typer.Option(help="lock directory to apply while evaluating")
    ] = None,
    alpha: Annotated[
        float | None, typer.Option(help="lock strength (default: the lock's own)")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 64,
    judge: Annotated[
        str | None,
        typer.Option(help="judge config: JSON text or a .json file (default: our rules)"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the full EvalResult as JSON")
    ] = False,
) -> None:
    """Harmful-response rate (and over-refusal / utility when the file has safe / task rows)."""
    from service.evaluation.judges import JudgeConfigError, judge_from_config
    from service.evaluation.prompts import PromptSetError, demo_prompt_set, load_prompt_set

    if not model.is_dir():
        _fail(f"{model}: not a model directory")
    try:
        prompt_set = load_prompt_set(prompts, kind="harmful") if prompts else demo_prompt_set(model)
        judge_impl = judge_from_config(judge)
    except (PromptSetError, JudgeConfigError) as e:
        _fail(str(e))
    if alpha is not None and lock is None:
        _fail("--alpha needs --lock")

    from lock_registry.errors import LockError
    from service.evaluation.loading import is_published, load_lock, load_model, load_published
    from service.evaluation.suite import evaluate_model

    if lock is not None and is_published(model):
        _fail(f"{model}: a published model carries its own lock (safetylock/); it is evaluated "
              "with that lock, so --lock cannot be added")
    try:
        if is_published(model):
            lm, tokenizer, locked = load_published(model)
            typer.echo(f"{model}: published model, evaluated with its {locked.lock.manifest.kind} "
                       f"lock at alpha {locked.alpha:g} ({'baked' if locked.baked else 'applied on load'})",
                       err=True)
        else:
            lm, tokenizer = load_model(model)
        lock_obj = load_lock(lock) if lock else None
    except (OSError, ValueError, LockError) as e:
        _fail(str(e))

    def progress(phase: str, done: int, total: int) -> None:
        typer.echo(f"\r{phase}: {done}/{total}", err=True, nl=done >= total)

    result = evaluate_model(
        lm,
        tokenizer,
        harmful=prompt_set.of_kind("harmful"),
        safe=prompt_set.of_kind("safe"),
        tasks=prompt_set.of_kind("task"),
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        judge=judge_impl,
        lock=lock_obj,
        alpha=(alpha if alpha is not None else lock_obj.manifest.default_alpha)
        if lock_obj
        else None,
        progress=progress,
    )
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        return
    rows = {k: v for k, v in result.summary().items() if v is not None}
    rows["junk_rate"] = result.junk_rate
    for key, value in rows.items():
        if value is not None:
            typer.echo(f"{key:24} {value:.4f}")
    for cat, stats in result.per_category.items():
        typer.echo(f"  {cat:22} harmful {stats.harmful_rate:.3f}  (n={stats.n})")
