"""The base model's evaluation on one half of the prompts, measured once and kept.

Every job of one base model measures the same base on the same prompts with the same
judge, so the answers cannot differ between jobs: the first job measures and stores the
figures under `cache/base-evaluations/{key}.json`, and later jobs read them instead of
generating again. The key is the sha256 of everything the figures depend on: the base
model's weights and tokenizer files, the prompts, the judge, the answer length and
`VERSION` (raised when the evaluation code changes what it measures). A base that is no
local folder of safetensors has no such key and is measured every time. The validation
loss depends on the job's own file and is never stored here. The stored file holds the
figures and the harmful prompts' figures per category (`base_evaluation_by_category`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from service.pipeline.context import StageContext
from service.pipeline.loading import base_model_path, load_model, summarise
from service.state.records import CategoryFigures, Figures
from service.store_layout import dumps

VERSION = 2  # 2: the per-category figures are stored beside the figures
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "generation_config.json", "vocab.json", "merges.txt")


def base_evaluation(sc: StageContext, sets: dict[str, Any]) -> Figures:
    """The base model's figures on `sets` (harmful / safe / tasks), from the store if kept."""
    return base_evaluation_by_category(sc, sets)[0]


def base_evaluation_by_category(sc: StageContext, sets: dict[str, Any]) -> tuple[Figures, dict[str, CategoryFigures]]:
    """`base_evaluation`, and the base's figures on each category of harmful prompts."""
    from service.evaluation.suite import evaluate_model

    key = cache_key(sc, sets)
    stored = f"cache/base-evaluations/{key}.json" if key else None
    if stored and sc.ctx.store.exists(stored):
        sc.event(f"Base model's evaluation on these {sum(len(s) for s in sets.values())} prompts found stored "
                 f"({key[:12]}); not measured again.", once=f"base-cached:{key}")
        kept = json.loads(sc.ctx.store.get_bytes(stored))
        return kept["figures"], {c: CategoryFigures(**f) for c, f in kept["per_category"].items()}
    model, tokenizer = load_model(base_model_path(sc))
    result = evaluate_model(model, tokenizer, max_new_tokens=sc.settings.eval_max_new_tokens,
                            keep_samples=False, judge=sc.judge(), **sets)
    figures, categories = summarise(result), category_figures(result)
    if stored:
        sc.ctx.store.put_bytes(stored, dumps({"figures": figures,
                                              "per_category": {c: f.model_dump() for c, f in categories.items()}}))
    return figures, categories


def category_figures(result: Any) -> dict[str, CategoryFigures]:
    """An EvalResult's harmful prompts' figures per category, as the stage outputs keep them."""
    return {category: CategoryFigures(**stats.model_dump()) for category, stats in result.per_category.items()}


def cache_key(sc: StageContext, sets: dict[str, Any]) -> str | None:
    """The sha256 the base's figures on `sets` depend on; None if the base has no fingerprint."""
    from lock_registry.errors import LockFormatError
    from lock_registry.fingerprint import model_fingerprint

    folder = Path(base_model_path(sc))
    try:
        weights = model_fingerprint(folder)
    except (LockFormatError, OSError):
        return None
    digest = hashlib.sha256(f"v{VERSION}|{weights}|{sc.settings.eval_judge}|{sc.settings.eval_max_new_tokens}".encode())
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    prompts = {name: [item.model_dump() for item in items] for name, items in sorted(sets.items())}
    digest.update(json.dumps(prompts, sort_keys=True).encode())
    return digest.hexdigest()
