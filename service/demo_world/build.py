"""Build the staged demo model: tokenizer -> helpful-only stage -> safety-aligned stage.

``build_demo_model(out_dir, size, seed)`` writes::

    out_dir/build.json        the content hash (key), sizes, timings, stage losses
    out_dir/helpful_only/     model + tokenizer + eval_prompts.jsonl + lock_pairs.json
    out_dir/aligned/          the same for the aligned stage

The key hashes the size, the seed, this package's source and the library versions; a
second build with the same key reuses the directory. Building is deterministic for a seed
(it trains on one CPU thread, so the order of floating-point operations does not depend on
the machine's core count; the device, cpu by default, is part of the key).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service.demo_world import corpus
from service.demo_world.sizes import ALIGN_MIXTURE, HELPFUL_MIXTURE, DemoSize, get_size

BUILD_FILE = "build.json"
STAGES = ("helpful_only", "aligned")
EVAL_PROMPTS = "eval_prompts.jsonl"
LOCK_PAIRS = "lock_pairs.json"
_SOURCES = ("lexicon.py", "corpus.py", "tokenizer.py", "stage.py", "build.py")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoModel:
    """A built demo model: one directory per stage, each loadable with from_pretrained."""

    root: Path
    key: str
    size: str
    seed: int

    @property
    def helpful_only(self) -> Path:
        return self.root / "helpful_only"

    @property
    def aligned(self) -> Path:
        return self.root / "aligned"

    @property
    def info(self) -> dict:
        return json.loads((self.root / BUILD_FILE).read_text(encoding="utf-8"))


def build_key(size: DemoSize, seed: int, device: str = "cpu") -> str:
    """Content hash of everything that determines the built weights."""
    import tokenizers
    import torch
    import transformers

    h = hashlib.sha256()
    h.update(json.dumps({"size": size.to_dict(), "seed": seed, "device": device,
                         "mixtures": [HELPFUL_MIXTURE, ALIGN_MIXTURE], "torch": torch.__version__,
                         "transformers": transformers.__version__,
                         "tokenizers": tokenizers.__version__}, sort_keys=True).encode())
    here = Path(__file__).parent
    for name in _SOURCES:
        h.update((here / name).read_bytes())
    return h.hexdigest()


def load_cached(out_dir: Path, key: str) -> DemoModel | None:
    """The build in ``out_dir`` if it is complete and has this key."""
    try:
        info = json.loads((out_dir / BUILD_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if info.get("key") != key or not all((out_dir / s / "model.safetensors").is_file() for s in STAGES):
        return None
    return DemoModel(out_dir, key, info["size"], info["seed"])


def eval_prompt_set(size: DemoSize, seed: int):
    """The held-out evaluation prompts as a `service.evaluation` PromptSet."""
    from service.evaluation.prompts import PromptItem, PromptSet

    kinds = {"harmful": "harmful", "safe": "safe", "benign": "safe", "task": "task"}
    items = [
        PromptItem(prompt=e.prompt, kind=kinds[e.kind], category=e.category,
                   answer=e.answer if e.kind == "task" else None)
        for e in corpus.eval_examples(seed, size.n_eval_harmful, size.n_eval_safe,
                                      size.n_eval_benign, size.n_eval_task)
    ]
    return PromptSet(name="demo-heldout", items=items)


def lock_pairs(n: int, seed: int) -> list[dict[str, str]]:
    """Contrastive pairs (refusal_pairs format) from training-split harmful requests."""
    rng = random.Random(f"pairs-{seed}")
    examples = corpus.unique(corpus.sample("harmful", "train", n * 3, rng))[:n]
    return [{"question": e.prompt, "answer_matching_behavior": e.aligned_answer,
             "answer_not_matching_behavior": e.answer} for e in examples]


def _stage_data(mixture, split: str, stage, held: set[str], rng: random.Random):
    """A stage's training examples: the mixture, minus any evaluation prompt (even inside a cue)."""
    needed = stage.steps * stage.batch_size
    drawn = corpus.sample_mixture(mixture, split, needed + needed // 4, rng)
    kept = [e for e in drawn if e.prompt not in held and not any(h in e.prompt for h in held
                                                                  if e.kind in ("cue", "assess"))]
    if len(kept) < needed:
        raise RuntimeError(f"{len(kept)} training examples left after removing the evaluation "
                           f"prompts, {needed} needed")
    return kept[:needed]


def _write_stage(model, tokenizer, stage_dir: Path, prompts, pairs) -> None:
    from service.evaluation.prompts import save_prompt_set

    model.save_pretrained(stage_dir)
    tokenizer.save_pretrained(stage_dir)
    save_prompt_set(prompts, stage_dir / EVAL_PROMPTS)
    (stage_dir / LOCK_PAIRS).write_text(json.dumps(pairs, indent=1), encoding="utf-8")


def _build(work: Path, size: DemoSize, seed: int, key: str, device: str, say: Progress) -> dict:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same floating-point order on every machine; tiny matmuls gain
    try:  # little from more threads, and lose a lot to them on a shared CPU
        return _train_stages(work, size, seed, key, device, say)
    finally:
        torch.set_num_threads(threads)


def _train_stages(work: Path, size: DemoSize, seed: int, key: str, device: str,
                  say: Progress) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from service.demo_world.stage import train_stage
    from service.demo_world.tokenizer import train_tokenizer

    timings: dict[str, float] = {}
    t0 = time.monotonic()
    cpu0 = time.process_time()
    rng = random.Random(f"build-{seed}")
    prompts = eval_prompt_set(size, seed)
    held = {item.prompt for item in prompts.items}
    helpful_data = _stage_data(HELPFUL_MIXTURE, "pretrain", size.helpful, held, rng)
    align_data = _stage_data(ALIGN_MIXTURE, "train", size.align, held, rng)
    texts = [t for e in helpful_data + align_data for t in (e.prompt, e.answer, e.aligned_answer)]
    tokenizer = train_tokenizer(texts, size.vocab_size)
    timings["tokenizer"] = time.monotonic() - t0
    say(f"tokenizer: {len(tokenizer)} tokens")

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size, num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads, num_key_value_heads=size.num_heads,
        max_position_embeddings=256, tie_word_embeddings=True, rms_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config).to(device)
    pairs = lock_pairs(size.n_lock_pairs, seed)

    def report(stage: str, step: int, total: int, loss: float) -> None:
        say(f"{stage}: step {step}/{total} loss {loss:.3f}")

    losses = {}
    for name, stage_cfg, data, aligned in (("helpful_only", size.helpful, helpful_data, False),
                                           ("aligned", size.align, align_data, True)):
        t = time.monotonic()
        losses[name] = train_stage(model, tokenizer, data, aligned=aligned, config=stage_cfg,
                                   seed=seed, progress=report)
        timings[name] = time.monotonic() - t
        _write_stage(model, tokenizer, work / name, prompts, pairs)
        say(f"{name}: saved ({timings[name]:.1f}s)")
    info = {
        "key": key, "size": size.name, "seed": seed, "spec": size.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "timings_seconds": {k: round(v, 2) for k, v in timings.items()},
        "process_cpu_seconds": round(time.process_time() - cpu0, 1),
        "final_loss": {k: round(sum(v[-10:]) / len(v[-10:]), 4) for k, v in losses.items()},
        "device": device, "torch_threads": torch.get_num_threads(),
    }
    (work / BUILD_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def build_demo_model(out_dir: str | Path, size: str = "test", seed: int = 0, *,
                     device: str = "cpu", progress: Progress | None = None,
                     force: bool = False) -> DemoModel:
    """Build (or reuse, when the key matches) the staged demo model in ``out_dir``."""
    spec = get_size(size)
    out_dir = Path(out_dir)
    key = build_key(spec, seed, device)
    say = progress or (lambda _msg: None)
    if not force and (cached := load_cached(out_dir, key)) is not None:
        say(f"reusing {out_dir} (key {key[:12]})")
        return cached
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / BUILD_FILE).exists():
        raise FileExistsError(f"{out_dir} is not empty and holds no demo-model build; "
                              "choose another --out")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.build-", dir=out_dir.parent))
    try:
        _build(work, spec, seed, key, device, say)
        if (cached := load_cached(out_dir, key)) is not None and not force:
            return cached  # another process finished the same build first
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"built {out_dir} (key {key[:12]})")
    return DemoModel(out_dir, key, spec.name, seed)
