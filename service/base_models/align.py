"""Operator alignment of a helpful-only base model: safety SFT on our own data, cached.

`align_model(model_dir, cache, model_id)`:

1. hashes the input model's files (`model_sha256`);
2. draws the training prompts (`alignment_data.draw_examples`: demo-world corpus, train
   split; harmful -> our refusals; benign and safe-but-scary -> the model's own answers);
3. keys the result by sha256 of (input model, those prompts and refusals, the recipe,
   library versions): `<cache>/<id>-aligned-<key[:16]>/`; a folder with this key already
   there is returned at once (no generation, no training);
4. otherwise generates the model's own greedy answers once (kept in
   `<cache>/<id>-aligned-answers/`, keyed by model, prompts and generation settings, so a
   change of training recipe does not generate again), fine-tunes with the project's
   `train_sft` (full fine-tuning, seeded), and writes the folder through a temporary
   sibling renamed into place.

The folder is a plain model (`from_pretrained`) plus `alignment.json` (recipe, data counts,
key, input sha256, wall times, losses) and `alignment_data.jsonl` (the training records).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.base_models.alignment_data import (
    DATA_RULES,
    AlignmentExample,
    Exclusions,
    OwnAnswer,
    draw_examples,
    own_answers,
    own_evaluation_prompts,
    with_own_answers,
)
from service.base_models.question_set import load_question_set
from service.hashing import sha256_file
from service.training import TrainConfig, TrainProgress, train_sft, training_precision

RECORD = "alignment.json"
DATA = "alignment_data.jsonl"
FORMAT = 1
# Files that define a saved model for from_pretrained (weights, config, tokenizer, template).
MODEL_FILE_PATTERNS = ("config.json", "generation_config.json", "*.safetensors", "tokenizer*.json",
                       "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
                       "vocab.json", "merges.txt", "tokenizer.model")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class AlignRecipe:
    """Everything that decides the aligned model besides the input model (feasibility.md:
    full SFT, 2 epochs, lr 5e-5, batch 8 aligned SmolLM2-135M without losing its skills)."""

    corpus_seed: int = 0
    """Seed of the prompts drawn from the demo-world corpus (train split)."""
    n_harmful: int = 200
    """Harmful requests, answered with our refusal texts."""
    n_benign: int = 120
    """Benign requests in the same styles, answered with the model's own answers."""
    n_safe: int = 100
    """Safe requests that sound dangerous, answered with the model's own answers."""
    questions: bool = True
    """Add our plain questions (`question_set.jsonl`: harmful, safe-but-scary, everyday)."""
    answer_max_new_tokens: int = 128
    """Length limit of the own answers (longer ones are cut back to a full sentence)."""
    answer_batch_size: int = 16
    """Batch of the own-answer generation (left padding can change a greedy answer)."""
    n_epochs: float = 2.0
    learning_rate: float = 5e-5
    batch_size: int = 8
    max_seq_length: int = 384
    seed: int = 0
    """Training seed (data order, initialisation of anything new)."""

    def __post_init__(self) -> None:
        for name in ("n_epochs", "learning_rate"):  # 2 and 2.0 are one recipe, one key
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.n_harmful < 1:
            raise ValueError("alignment needs at least one harmful example (n_harmful >= 1)")
        for name in ("n_benign", "n_safe"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("answer_max_new_tokens", "answer_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        self.train_config()  # TrainConfig checks the rest

    def train_config(self) -> TrainConfig:
        return TrainConfig(method="full", n_epochs=self.n_epochs, learning_rate=self.learning_rate,
                           batch_size=self.batch_size, max_seq_length=self.max_seq_length,
                           seed=self.seed)

    def examples(self, exclude: Iterable[str] = ()) -> list[AlignmentExample]:
        """The training prompts (own answers not filled in yet): none of our own evaluation
        prompts, none of `exclude` nor a near duplicate of one."""
        excluded = Exclusions(own_evaluation_prompts(), near=False).update(exclude)
        return draw_examples(seed=self.corpus_seed, n_harmful=self.n_harmful, n_benign=self.n_benign,
                             n_safe=self.n_safe, exclude=excluded,
                             questions=load_question_set() if self.questions else ())


@dataclass(frozen=True)
class AlignedModel:
    """An aligned model folder and what made it."""

    id: str
    path: Path
    key: str
    input_sha256: str
    reused: bool
    seconds: float
    record: dict[str, Any] = field(default_factory=dict)


def model_files(model_dir: Path) -> list[Path]:
    """The files of a saved model that `model_sha256` covers, sorted by name."""
    found = {p for pattern in MODEL_FILE_PATTERNS for p in model_dir.glob(pattern) if p.is_file()}
    return sorted(found, key=lambda p: p.name)


def model_sha256(model_dir: Path) -> str:
    """sha256 over the names and sha256s of the model's files (weights, config, tokenizer)."""
    files = model_files(model_dir)
    if not any(p.suffix == ".safetensors" for p in files):
        raise FileNotFoundError(f"no *.safetensors weights in {model_dir}")
    lines = "".join(f"{p.name} {sha256_file(p)}\n" for p in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def _software() -> dict[str, str]:
    import torch
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def alignment_key(input_sha256: str, examples: list[AlignmentExample], recipe: AlignRecipe,
                  software: dict[str, str] | None = None) -> str:
    """Content hash of what determines the aligned model. The own answers are not hashed:
    they follow from the input model, the prompts and the recipe's generation settings."""
    return _digest({
        "format": FORMAT,
        "data_rules": DATA_RULES,
        "input_sha256": input_sha256,
        "data": [[e.kind, e.category, e.prompt, e.target] for e in examples],
        "recipe": asdict(recipe),
        "software": software if software is not None else _software(),
        "precision": training_precision(),  # bf16 autocast and fp32 train different models
    })


def _answers_key(input_sha256: str, prompts: list[str], recipe: AlignRecipe) -> str:
    return _digest({"format": FORMAT, "input_sha256": input_sha256, "prompts": prompts,
                    "max_new_tokens": recipe.answer_max_new_tokens,
                    "batch_size": recipe.answer_batch_size, "software": _software()})


def cached(out: Path, key: str) -> dict | None:
    """The alignment record in `out` if it is complete and has this key."""
    try:
        record = json.loads((out / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("key") != key or not any(out.glob("*.safetensors")):
        return None
    return record


def aligned_dir(cache: Path, model_id: str, key: str) -> Path:
    return cache / f"{model_id}-aligned-{key[:16]}"


def _load_answers(path: Path) -> dict[str, OwnAnswer] | None:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return {r["prompt"]: OwnAnswer(r["text"], r["finished"]) for r in rows}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _generate_answers(model_dir: Path, prompts: list[str], recipe: AlignRecipe, say: Progress
                      ) -> dict[str, OwnAnswer]:
    from service.evaluation.loading import load_model

    model, tokenizer = load_model(model_dir)
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        rate = (time.monotonic() - started) / max(done, 1)
        say(f"own answers: {done}/{total} ({rate:.1f} s a prompt)")

    answers = own_answers(model, tokenizer, prompts, max_new_tokens=recipe.answer_max_new_tokens,
                          batch_size=recipe.answer_batch_size, progress=progress)
    return dict(zip(prompts, answers, strict=True))


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def align_model(model_dir: str | Path, cache: str | Path, model_id: str,
                recipe: AlignRecipe = AlignRecipe(), *, exclude: Iterable[str] = (),
                force: bool = False, progress: Progress | None = None) -> AlignedModel:
    """The aligned model of `model_dir` (see the module docstring); cached by content hash.
    `exclude`: evaluation prompts that neither they nor their near duplicates may be trained
    on (they change the key only where they change the data)."""
    model_dir, cache = Path(model_dir), Path(cache)
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"no model at {model_dir} (no config.json); import it first "
                                "with `safetylock base-model import`")
    say(f"hashing {model_dir}")
    input_sha = model_sha256(model_dir)
    exclude = list(exclude)
    examples = recipe.examples(exclude)
    key = alignment_key(input_sha, examples, recipe)
    out = aligned_dir(cache, model_id, key)
    seconds = {"hash": round(time.monotonic() - started, 2)}
    if not force and (record := cached(out, key)) is not None:
        say(f"reusing {out} (key {key[:12]})")
        return AlignedModel(model_id, out, key, input_sha, True, round(time.monotonic() - started, 2), record)

    cache.mkdir(parents=True, exist_ok=True)
    to_answer = [e.prompt for e in examples if e.target is None]
    answers_file = cache / f"{model_id}-aligned-answers" / f"{_answers_key(input_sha, to_answer, recipe)[:16]}.json"
    t = time.monotonic()
    answers = None if force else _load_answers(answers_file)
    answers_reused = answers is not None and set(to_answer) <= set(answers)
    if not answers_reused:
        say(f"generating the model's own answers to {len(to_answer)} benign and safe prompts")
        answers = _generate_answers(model_dir, to_answer, recipe, say)
        answers_file.parent.mkdir(parents=True, exist_ok=True)
        _write_json(answers_file, [{"prompt": p, "text": a.text, "finished": a.finished}
                                   for p, a in answers.items()])
    else:
        say(f"reusing the own answers in {answers_file}")
    seconds["answers"] = round(time.monotonic() - t, 2)
    filled, answer_counts = with_own_answers(examples, answers)
    records = [e.record() for e in filled]

    config = recipe.train_config()
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=cache))
    try:
        def on_step(p: TrainProgress) -> None:
            loss = f"{p.loss:.3f}" if p.loss is not None else "-"
            say(f"training: step {p.step}/{p.total_steps}, loss {loss}, eta {p.eta_seconds:.0f} s")

        say(f"training on {len(records)} examples ({config.method}, {config.n_epochs:g} epochs, "
            f"lr {config.learning_rate:g}, batch {config.batch_size}, seed {config.seed})")
        t = time.monotonic()
        result = train_sft(model_dir, records, work, config, on_progress=on_step)
        seconds["train"] = round(time.monotonic() - t, 2)
        with (work / DATA).open("w", encoding="utf-8") as f:
            for e, r in zip(filled, records, strict=True):
                f.write(json.dumps({"kind": e.kind, "category": e.category, **r}, ensure_ascii=False) + "\n")
        seconds["total"] = round(time.monotonic() - started, 2)
        record = _record(model_id, model_dir, input_sha, key, recipe, config, filled, answer_counts,
                         answers_reused, result, seconds, sha256_file(work / DATA), len(exclude))
        _write_json(work / RECORD, record)
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"aligned {model_id} in {seconds['total']:.0f} s -> {out}")
    return AlignedModel(model_id, out, key, input_sha, False, seconds["total"], record)


def _record(model_id, model_dir, input_sha, key, recipe, config, filled, answer_counts,
            answers_reused, result, seconds, data_sha, n_excluded) -> dict[str, Any]:
    import torch

    counts = {kind: sum(e.kind == kind for e in filled) for kind in ("harmful", "benign", "safe")}
    imported = model_dir / "import.json"
    return {
        "format": FORMAT,
        "id": f"{model_id}-aligned",
        "base_model": model_id,
        "key": key,
        "input_model": {"path": str(model_dir), "sha256": input_sha,
                        "import": json.loads(imported.read_text()) if imported.is_file() else None},
        "recipe": asdict(recipe),
        "train_config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "data": {
            "source": "service/demo_world/corpus.py, split train"
                      + (" + service/base_models/question_set.jsonl" if recipe.questions else ""),
            "exclude_list_size": n_excluded,
            "counts": {**counts, "total": len(filled)},
            "own_answers": {**answer_counts, "reused": answers_reused},
            "file": DATA,
            "sha256": data_sha,
        },
        "training": {"steps": result.steps, "train_loss": round(result.train_loss, 4),
                     "precision": training_precision(),
                     "losses": [round(x, 4) for x in result.losses]},
        "seconds": seconds,
        "torch_threads": torch.get_num_threads(),
        "software": _software(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def as_dict(aligned: AlignedModel) -> dict[str, Any]:
    return {"id": aligned.id, "path": str(aligned.path), "key": aligned.key,
            "input_sha256": aligned.input_sha256, "reused": aligned.reused, "seconds": aligned.seconds}
