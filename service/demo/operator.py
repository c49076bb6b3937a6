"""The operator's side of the demo: the aligned base model (the demo world's, or a real one
imported and aligned), its Meta-SafetyLock, and publishing that lock to the registry under
the `production` alias."""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from service.demo.config import DemoConfig

PAIRS = 48


@dataclass
class OperatorResult:
    base_model: str
    lock_dir: Path
    lock_kind: str
    lock_heads: int
    model_note: str
    seconds: dict[str, float] = field(default_factory=dict)
    published: dict[str, Any] = field(default_factory=dict)

    def publish(self, registry: Any, console: Console) -> None:
        """Publish the lock as the next version of the base and point `production` at it."""
        t0 = time.monotonic()
        info = registry.publish(self.lock_dir, base_model=self.base_model, actor="demo-operator")
        registry.promote(info.ref, "production", actor="demo-operator")
        self.seconds["publish_lock"] = round(time.monotonic() - t0, 3)
        self.published = {"version": info.version, "sha256": info.sha256}
        console.print(f"[bold]operator[/]: published {info.ref} (sha256 {info.sha256[:12]}…) "
                      "and promoted it to [bold]production[/]")

    def describe(self) -> str:
        version = f" v{self.published['version']}" if self.published else ""
        return f"{self.lock_kind}{version}, {self.lock_heads} heads"


class _BuildProgress:
    """Turns the builder's "stage: step i/N loss x" messages into a progress bar on a
    terminal (or a line per quarter elsewhere); other messages are printed as they come."""

    STEP = re.compile(r"^(?P<stage>\S+): step (?P<step>\d+)/(?P<total>\d+) loss (?P<loss>\S+)$")

    def __init__(self, console: Console):
        self.console = console
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, message: str) -> None:
        m = self.STEP.match(message)
        if m is None:
            self.console.print(f"  {message}", highlight=False)
            return
        stage, step, total = m["stage"], int(m["step"]), int(m["total"])
        if not self.console.is_terminal:
            if step == total or step % max(1, total // 4) == 0:
                self.console.print(f"  {message}", highlight=False)
            return
        if self.progress is None:
            self.progress = Progress(TextColumn("  {task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                                     TimeRemainingColumn(), console=self.console)
            self.progress.start()
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total, loss="")
        self.progress.update(self.tasks[stage], completed=step, loss=m["loss"])

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def build_model(config: DemoConfig, cache: Path, console: Console) -> Path:
    """Build the staged demo model (reused when its content hash matches); returns the
    aligned stage, the base that customers fine-tune."""
    from service.demo_world.build import build_demo_model

    out = cache / f"demo-model-{config.model_size}"
    console.print(f"[bold]operator[/]: demo model ({config.model_size}) in {out} "
                  "(built once, then reused)")
    progress = _BuildProgress(console)
    try:
        built = build_demo_model(out, config.model_size, config.seed, progress=progress)
    finally:
        progress.close()
    return built.aligned


def align_real_model(config: DemoConfig, cache: Path, exclude: list[str],
                     console: Console) -> tuple[Path, str]:
    """Import the real model and give it the operator's safety alignment (both cached by
    content hash, as `safetylock base-model import/align` do); returns the aligned folder
    and a note naming the alignment's key."""
    from service.base_models.align import AlignRecipe, align_model
    from service.base_models.gguf_import import import_known

    root = cache / "base-models"
    say = lambda message: console.print(f"  {message}", highlight=False)
    console.print(f"[bold]operator[/]: {config.base_model} in {root} (imported and aligned "
                  "once, then reused; the first alignment takes about half an hour on 2 cores)")
    helpful = import_known(config.base_model, root, progress=say)
    aligned = align_model(helpful.path, root, config.base_model, AlignRecipe(), exclude=exclude,
                          progress=say)
    console.print(f"[bold]operator[/]: aligned model {aligned.path} "
                  f"({'reused' if aligned.reused else 'aligned'} in {aligned.seconds:.1f} s)")
    return aligned.path, f"{config.base_model}, aligned by the operator (key {aligned.key[:16]})"


def _paper_lock(model_dir: Path, model, tokenizer, config: DemoConfig, rng: random.Random):
    """The paper's recipe: per-head probes on contrastive pairs (a harmful request, its
    refusal, its compliant placeholder), mass-mean directions, an o_proj bias. The pairs
    are the ones the demo world saved beside the model, else drawn from its corpus."""
    from lock_registry.create import create_lock
    from lock_registry.pairs import ContrastivePair, load_pairs
    from service.demo_world.corpus import sample, unique

    if (model_dir / "lock_pairs.json").is_file():
        pairs = load_pairs(model_dir / "lock_pairs.json")
    else:
        examples = unique(sample("harmful", "train", PAIRS * 3, rng))[:PAIRS]
        pairs = [ContrastivePair(e.prompt, e.aligned_answer, e.answer) for e in examples]
    lock = create_lock(model, tokenizer, pairs, base_model_id=config.base_model,
                       num_heads=config.lock_heads)
    return lock, f"{len(pairs)} contrastive pairs"


def _conditional_lock(model_dir: Path, model, tokenizer, config: DemoConfig,
                      rng: random.Random):
    """The conditional lock (after CAST): the same head bias, applied only when the
    prompt's harmfulness direction fires; calibration prompts travel inside the lock."""
    from lock_registry.fingerprint import model_fingerprint
    from lock_registry.kinds.conditional import LabelledPrompt, create_conditional_lock
    from service.demo_world.corpus import sample, sample_mixture, unique

    half = config.lock_prompts
    harmful = unique(sample("harmful", "train", half * 3, rng))[:half]
    others = unique(sample_mixture({"benign": 2, "safe": 1, "task": 1}, "train", half * 3,
                                   rng))[:half]
    prompts = ([LabelledPrompt(e.prompt, True) for e in harmful]
               + [LabelledPrompt(e.prompt, False) for e in others])
    lock = create_conditional_lock(model, tokenizer, prompts, base_model_id=config.base_model,
                                   num_heads=config.lock_heads, position=config.lock_position,
                                   max_false_fire=config.lock_max_false_fire,
                                   condition_layer=config.lock_condition_layer,
                                   condition_window=config.lock_condition_window,
                                   condition_shrinkage=config.lock_condition_shrinkage,
                                   base_fingerprint=model_fingerprint(model), seed=config.seed)
    return lock, f"{len(prompts)} labelled prompts"


RECIPES = {"paper": _paper_lock, "conditional": _conditional_lock}


def lock_key(model_dir: Path, config: DemoConfig) -> str:
    """What decides the operator's lock: the base's weights, the recipe and its draw, and the
    lock code itself (a change to lock_registry takes a new lock)."""
    import lock_registry
    from service.hashing import sha256_file

    code = Path(lock_registry.__file__).parent
    parts = {
        "weights": [sha256_file(f) for f in sorted(model_dir.glob("*.safetensors"))],
        "recipe": config.lock_recipe, "heads": config.lock_heads, "seed": config.seed,
        **({"position": config.lock_position, "max_false_fire": config.lock_max_false_fire,
            "condition_layer": config.lock_condition_layer,
            "condition_window": config.lock_condition_window,
            "condition_shrinkage": config.lock_condition_shrinkage,
            "prompts": config.lock_prompts}
           if config.lock_recipe == "conditional" else {}),
        "pairs": PAIRS, "base_model": config.base_model,
        "code": [sha256_file(f) for f in sorted(code.rglob("*.py"))],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def create_lock_dir(model_dir: Path, config: DemoConfig, cache: Path,
                    console: Console) -> tuple[Path, bool]:
    """Take the lock from the aligned base with the configured recipe, once per `lock_key`
    (kept under `cache`); returns its folder and whether it was reused."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lock_registry.errors import LockError
    from lock_registry.lock import MetaSafetyLock

    out = cache / f"lock-{config.size}-{lock_key(model_dir, config)[:16]}"
    if (out / "manifest.json").is_file():
        try:
            MetaSafetyLock.load(out)  # verifies the files' sha256
            console.print(f"[bold]operator[/]: {config.lock_recipe} Meta-SafetyLock reused from {out}")
            return out, True
        except LockError as e:
            console.print(f"[bold]operator[/]: cached lock in {out} unusable ({e}); taking it again")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    rng = random.Random(f"demo-lock-{config.seed}")
    lock, data_note = RECIPES[config.lock_recipe](model_dir, model, tokenizer, config, rng)
    cache.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=cache))
    lock.save(temp)
    shutil.rmtree(out, ignore_errors=True)
    temp.rename(out)  # complete or absent
    console.print(f"[bold]operator[/]: {config.lock_recipe} Meta-SafetyLock taken from the "
                  f"aligned base: {lock.manifest.num_selected} heads, from {data_note}")
    return out, False


def prepare_operator(config: DemoConfig, cache: Path, model_dir: Path | None,
                     console: Console, exclude: list[str] = ()) -> tuple[Path, OperatorResult]:
    """The model (built or aligned, reused, or given) and the lock taken from it (reused
    while neither the model, the recipe nor the lock code changed).
    `exclude`: prompts the real model's alignment must not train on (the benchmark sets)."""
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    if model_dir is None and config.real:
        model_dir, note = align_real_model(config, cache, list(exclude), console)
    elif model_dir is None:
        model_dir = build_model(config, cache, console)
        note = f"demo-world '{config.model_size}' model"
    else:
        note = f"given model {model_dir}"
        console.print(f"[bold]operator[/]: using the model in {model_dir}")
    seconds["model"] = round(time.monotonic() - t0, 3)
    t0 = time.monotonic()
    lock_dir, reused = create_lock_dir(model_dir, config, cache, console)
    seconds["reuse_lock" if reused else "create_lock"] = round(time.monotonic() - t0, 3)
    manifest = json.loads((lock_dir / "manifest.json").read_text())
    result = OperatorResult(base_model=config.base_model, lock_dir=lock_dir,
                            lock_kind=manifest.get("kind", "head_bias"),
                            lock_heads=manifest.get("num_selected", 0), model_note=note,
                            seconds=seconds)
    return model_dir, result
