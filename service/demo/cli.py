"""`safetylock demo`: the whole story on a tiny model, in one process, no servers.

Light at import: the story and torch load when the command runs.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Annotated

import typer


def demo(
    size: Annotated[str, typer.Option(help="demo (a few minutes) or test (the short CI run).")]
    = "demo",
    out: Annotated[Path, typer.Option(help="Folder for the summary, HTML report and service data.")]
    = Path("demo-output"),
    cache: Annotated[Path | None, typer.Option(
        help="Where the demo model and lock are kept between runs "
             "(default $SAFETYLOCK_CACHE_DIR or ~/.cache/safetylock).")] = None,
    model_dir: Annotated[Path | None, typer.Option(
        help="Use this already-built demo model instead of building one.")] = None,
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
    from service.demo.config import SIZES
    from service.demo.story import DemoPaths, run_demo

    if size not in SIZES:
        raise typer.BadParameter(f"size must be one of {', '.join(SIZES)}", param_hint="--size")
    cache_dir = cache or Path(os.environ.get("SAFETYLOCK_CACHE_DIR")
                              or Path.home() / ".cache" / "safetylock")
    paths = DemoPaths(out=out.resolve(), cache=cache_dir.resolve())
    summary = run_demo(SIZES[size], paths, model_dir=model_dir)  # type: ignore[index]
    typer.echo(str(summary))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
