"""Loading what relock and evaluate need: models, the lock, the evaluation prompt sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.pipeline.context import StageContext
from service.pipeline.resolve_lock import load_lock
from service.pipeline.train import TRAINED
from service.pipeline.validate import load_records


def load_model(path: str | Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.eval()
    return model, tokenizer


def trained_model(sc: StageContext) -> tuple[Any, Any]:
    return load_model(sc.local_dir(TRAINED))


def base_model_path(sc: StageContext) -> str:
    return sc.settings.base_models[sc.job.model]


def job_lock(sc: StageContext) -> Any:
    info = sc.require("resolve_lock")
    return load_lock(sc.ctx.registry, info["base_model"], info["version"])


def prompt_sets(sc: StageContext) -> dict[str, Any]:
    """harmful / safe / tasks sets, each capped at `eval_limit` prompts."""
    from service.evaluation.prompts import demo_prompt_set, load_prompt_set

    source = sc.settings.eval_prompts
    prompts = load_prompt_set(source) if source else demo_prompt_set(base_model_path(sc))
    limit = sc.settings.eval_limit
    sets = {}
    for name, kind in (("harmful", "harmful"), ("safe", "safe"), ("tasks", "task")):
        items = prompts.of_kind(kind).items
        sets[name] = items[:limit] if limit else items
    return sets


def validation_records(sc: StageContext) -> list[dict] | None:
    job = sc.job
    if not job.validation_file:
        return None
    return load_records(sc.ctx.store.get_bytes(f"files/{job.tenant}/{job.validation_file}"))


def summarise(result: Any) -> dict[str, float | None]:
    """An EvalResult as the report's Eval object, plus the junk rate the gate checks."""
    return {**result.summary(), "junk_rate": result.junk_rate}
