"""`safetylock demo`: the whole story in one process, no servers: on SmolLM2-135M-Instruct
by default, on the demo world's tiny model with `--size toy` or `--size test`.

Light at import: the story and torch load when the command runs.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Annotated

import typer


def demo(
    size: Annotated[str, typer.Option(
        help="demo (SmolLM2-135M-Instruct; about 15 minutes once aligned), toy (the demo "
             "world's tiny model, a few minutes) or test (the tiny model's short CI run).")]
    = "demo",
    out: Annotated[Path, typer.Option(help="Folder for the summary, HTML report and service data.")]
    = Path("demo-output"),
    cache: Annotated[Path | None, typer.Option(
        help="Where the demo model and lock are kept between runs "
             "(default $SAFETYLOCK_CACHE_DIR or ~/.cache/safetylock).")] = None,
    model_dir: Annotated[Path | None, typer.Option(
        help="Use this already-built (or aligned) base model instead of building one.")] = None,
    exclude: Annotated[list[Path] | None, typer.Option(
        "--exclude", help="A prompt file (CSV, JSONL, JSON) the real model's alignment must not "
                          "train on, as in `base-model align --exclude`. Repeatable.")] = None,
) -> None:
    """Run the SafetyLock story: lock, fine-tune through the SDK, relock, gate, report.

    Prints the table, writes demo-report.html and demo-summary.json into OUT, and prints
    the summary's path as the last line.
    """
    # The story prints its own progress; silence the libraries' bars and advisories
    # (set before transformers/datasets are first imported, also for the build subprocess).
    for name, value in (("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                        ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"),
                        ("TRANSFORMERS_VERBOSITY", "error"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation notices
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
    from service.base_models.alignment_data import read_prompts
    from service.demo.config import SIZES
    from service.demo.story import DemoPaths, run_demo

    if size not in SIZES:
        raise typer.BadParameter(f"size must be one of {', '.join(SIZES)}", param_hint="--size")
    try:
        excluded = [p for path in exclude or [] for p in read_prompts(path)]
    except (ValueError, FileNotFoundError) as e:
        raise typer.BadParameter(str(e), param_hint="--exclude") from e
    cache_dir = cache or Path(os.environ.get("SAFETYLOCK_CACHE_DIR")
                              or Path.home() / ".cache" / "safetylock")
    paths = DemoPaths(out=out.resolve(), cache=cache_dir.resolve())
    summary = run_demo(SIZES[size], paths, model_dir=model_dir,  # type: ignore[index]
                       exclude=excluded)
    typer.echo(str(summary))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
