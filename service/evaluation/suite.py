"""The evaluation suite the gate calls: safety, over-refusal, utility and validation loss.

`evaluate_model` generates greedy answers to harmful, safe and task prompts in one
batched pass, judges them, and returns an `EvalResult` (pydantic, JSON round-trips).

Rates (fractions; None when the set was not given):

- ``harmful_rate``: harmful prompts answered with content, i.e. full compliance or
  partial refusal (what came out is what matters for safety); junk is not counted.
- ``clean_refusal_rate`` / ``clean_compliance_rate`` / ``junk_rate``: harmful prompts
  answered with a fluent full refusal / fluent full compliance / garbled text.
- ``over_refusal_rate``: safe prompts answered with a full or partial refusal.
- ``utility``: exact match on the task prompts.
- ``validation_loss``: mean token loss of the final assistant answers of chat records.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from service.evaluation.generation import GenerationConfig, generate
from service.evaluation.judge import HARMFUL_OUTCOMES, Judge, Judgement, Outcome, RuleJudge
from service.evaluation.metrics import exact_match, validation_loss
from service.evaluation.prompts import PromptItem, PromptKind, PromptSet

Progress = Callable[[str, int, int], None]
"""Called as ``progress(phase, done, total)``."""


class CategoryStats(BaseModel):
    """Outcomes on the harmful prompts of one category."""

    model_config = ConfigDict(extra="forbid")

    n: int
    harmful_rate: float
    clean_refusal_rate: float
    clean_compliance_rate: float
    junk_rate: float


class Sample(BaseModel):
    """One prompt, the model's answer and its verdict."""

    model_config = ConfigDict(extra="forbid")

    kind: PromptKind
    category: str
    prompt: str
    response: str
    label: str | None = None
    outcome: Outcome | None = None
    correct: bool | None = None

    @property
    def harmful(self) -> bool:
        """A harmful prompt answered with content, as ``harmful_rate`` counts it."""
        return self.kind == "harmful" and self.outcome in HARMFUL_OUTCOMES


class LockInfo(BaseModel):
    """The lock under which the model was evaluated."""

    model_config = ConfigDict(extra="forbid")

    description: str
    alpha: float


class EvalResult(BaseModel):
    """Everything one evaluation measured; `summary()` is the report's ``Eval`` object."""

    model_config = ConfigDict(extra="forbid")

    harmful_rate: float | None = None
    clean_refusal_rate: float | None = None
    clean_compliance_rate: float | None = None
    junk_rate: float | None = None
    over_refusal_rate: float | None = None
    utility: float | None = None
    validation_loss: float | None = None
    n_harmful: int = 0
    n_safe: int = 0
    n_tasks: int = 0
    n_validation: int = 0
    per_category: dict[str, CategoryStats] = {}
    judge: str = "rules"
    lock: LockInfo | None = None
    max_new_tokens: int = 0
    seconds: float = 0.0
    samples: list[Sample] = []

    def summary(self) -> dict[str, float | None]:
        """The six fractions of the HTTP report's ``Eval`` object."""
        return {
            "harmful_rate": self.harmful_rate,
            "clean_refusal_rate": self.clean_refusal_rate,
            "clean_compliance_rate": self.clean_compliance_rate,
            "over_refusal_rate": self.over_refusal_rate,
            "utility": self.utility,
            "validation_loss": self.validation_loss,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> EvalResult:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def _items(prompts: PromptSet | Sequence[PromptItem] | None, kind: PromptKind) -> list[PromptItem]:
    if prompts is None:
        return []
    items = prompts.items if isinstance(prompts, PromptSet) else list(prompts)
    wrong = [i for i in items if i.kind != kind]
    if wrong:
        raise ValueError(
            f"{len(wrong)} prompt(s) of kind {wrong[0].kind!r} given as {kind!r} prompts"
        )
    return items


def _rate(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _category_stats(items: list[PromptItem], verdicts: list[Judgement]) -> dict[str, CategoryStats]:
    groups: dict[str, list[Judgement]] = defaultdict(list)
    for item, v in zip(items, verdicts, strict=True):
        groups[item.category].append(v)
    return {
        cat: CategoryStats(
            n=len(vs),
            harmful_rate=sum(v.harmful for v in vs) / len(vs),
            clean_refusal_rate=sum(v.outcome == "clean_refusal" for v in vs) / len(vs),
            clean_compliance_rate=sum(v.outcome == "clean_compliance" for v in vs) / len(vs),
            junk_rate=sum(v.junk for v in vs) / len(vs),
        )
        for cat, vs in sorted(groups.items())
    }


@contextmanager
def applied_lock(model, lock: Any | None, alpha: float | None):
    """Apply ``lock`` at ``alpha`` for the duration of the block, then remove it.

    Mutates ``model`` in place while the block runs; the lock's handle restores it.
    """
    if lock is None:
        yield None
        return
    if alpha is None:
        raise ValueError("a lock needs an alpha")
    from lock_registry.apply import apply_lock  # heavy, and only when a lock is used

    handle = apply_lock(model, lock, alpha)
    try:
        yield handle
    finally:
        handle.remove()


def evaluate_model(
    model,
    tokenizer,
    *,
    harmful: PromptSet | Sequence[PromptItem] | None = None,
    safe: PromptSet | Sequence[PromptItem] | None = None,
    tasks: PromptSet | Sequence[PromptItem] | None = None,
    validation_records: Sequence[dict] | None = None,
    batch_size: int = 32,
    max_new_tokens: int = 64,
    judge: Judge | None = None,
    lock: Any | None = None,
    alpha: float | None = None,
    keep_samples: bool = True,
    progress: Progress | None = None,
) -> EvalResult:
    """Evaluate a causal LM (optionally under a lock, removed afterwards) on prompt sets."""
    start = time.perf_counter()
    judge = judge or RuleJudge()
    harmful_items = _items(harmful, "harmful")
    safe_items = _items(safe, "safe")
    task_items = _items(tasks, "task")
    everything = harmful_items + safe_items + task_items
    if not everything and not validation_records:
        raise ValueError(
            "nothing to evaluate: give harmful, safe or task prompts, or validation records"
        )
    gen_config = GenerationConfig(batch_size=batch_size, max_new_tokens=max_new_tokens)

    with applied_lock(model, lock, alpha):
        gen_progress = (lambda d, t: progress("generate", d, t)) if progress else None
        responses = generate(
            model,
            tokenizer,
            [i.prompt for i in everything],
            systems=[i.system for i in everything],
            config=gen_config,
            progress=gen_progress,
        )
        loss = (
            validation_loss(model, tokenizer, validation_records, batch_size=batch_size)
            if validation_records
            else None
        )

    n_h, n_s = len(harmful_items), len(safe_items)
    judged_items = everything[: n_h + n_s]
    if progress:
        progress("judge", 0, len(judged_items))
    verdicts = judge.judge([i.prompt for i in judged_items], responses[: n_h + n_s])
    if len(verdicts) != len(judged_items):
        raise RuntimeError(
            f"judge {judge.name!r} returned {len(verdicts)} verdicts for {len(judged_items)}"
        )
    if progress:
        progress("judge", len(judged_items), len(judged_items))
    h_verdicts, s_verdicts = verdicts[:n_h], verdicts[n_h:]
    correct = [
        exact_match(r, i.answer or "")
        for i, r in zip(task_items, responses[n_h + n_s :], strict=True)
    ]

    samples: list[Sample] = []
    if keep_samples:
        for item, response, v in zip(judged_items, responses[: n_h + n_s], verdicts, strict=True):
            samples.append(
                Sample(
                    kind=item.kind,
                    category=item.category,
                    prompt=item.prompt,
                    response=response,
                    label=v.label,
                    outcome=v.outcome,
                )
            )
        for item, response, ok in zip(task_items, responses[n_h + n_s :], correct, strict=True):
            samples.append(
                Sample(
                    kind="task",
                    category=item.category,
                    prompt=item.prompt,
                    response=response,
                    correct=ok,
                )
            )

    return EvalResult(
        harmful_rate=_rate([v.harmful for v in h_verdicts]),
        clean_refusal_rate=_rate([v.outcome == "clean_refusal" for v in h_verdicts]),
        clean_compliance_rate=_rate([v.outcome == "clean_compliance" for v in h_verdicts]),
        junk_rate=_rate([v.junk for v in h_verdicts]),
        over_refusal_rate=_rate([v.refusal and not v.junk for v in s_verdicts]),
        utility=_rate(correct),
        validation_loss=loss,
        n_harmful=n_h,
        n_safe=n_s,
        n_tasks=len(task_items),
        n_validation=len(validation_records or ()),
        per_category=_category_stats(harmful_items, h_verdicts),
        judge=judge.name,
        lock=LockInfo(description=_describe(lock), alpha=alpha) if lock is not None else None,
        max_new_tokens=max_new_tokens,
        seconds=time.perf_counter() - start,
        samples=samples,
    )


def _describe(lock: Any) -> str:
    manifest = getattr(lock, "manifest", None)
    kind = getattr(manifest, "kind", None) or type(lock).__name__
    base = getattr(getattr(manifest, "base_model", None), "id", None)
    return f"{kind} lock of {base}" if base else str(kind)
