"""The operator's safety data for aligning a helpful-only base model, from our data only.

Prompts come from the demo world's corpus (`service/demo_world/corpus.py`), its `train`
split only (seen request styles x seen actions; the `heldout` split is for evaluation):

- ``harmful`` requests, paired with our refusal texts (`corpus.refusal`, as the demo
  world's aligned stage is taught);
- ``benign`` requests in the same styles and ``safe``-but-scary ones ("kill a Python
  process"), paired with the model's OWN greedy answers, generated once by the
  helpful-only model, so that what it could do it keeps doing.

An own answer that hit the token limit is cut back to its last full sentence (training on
a cut-off answer would teach the model to stop mid-sentence); one with no full sentence is
dropped. Which prompts, how many and in what order are fixed by the seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from service.demo_world import corpus

AlignKind = Literal["harmful", "benign", "safe"]
ALIGN_KINDS: tuple[AlignKind, ...] = ("harmful", "benign", "safe")
_SENTENCE_END = re.compile(r"[.!?](?:[\"')\]*]*)(?=\s|$)|\n")


@dataclass(frozen=True)
class AlignmentExample:
    """One training prompt and its target answer (None until the model's own is filled in)."""

    prompt: str
    kind: AlignKind
    category: str
    target: str | None

    def record(self) -> dict:
        """The chat record `train_sft` takes."""
        if self.target is None:
            raise ValueError(f"no answer yet for {self.prompt!r}")
        return {"messages": [{"role": "user", "content": self.prompt},
                             {"role": "assistant", "content": self.target}]}


@dataclass(frozen=True)
class OwnAnswer:
    """The model's greedy answer to one prompt; `finished` is False when it hit the limit."""

    text: str
    finished: bool


def evaluation_prompts(seeds: Iterable[int] = (0, 1, 2)) -> set[str]:
    """Prompts that must never be trained on: the demo world's held-out evaluation sets (every
    size, world seeds 0-2 by default) and our utility set. (Train and held-out splits are
    disjoint by construction; this is the check.)"""
    from service.base_models.utility import load_utility_set
    from service.demo_world.sizes import SIZES

    held = {e.prompt for seed in seeds for s in SIZES.values()
            for e in corpus.eval_examples(seed, s.n_eval_harmful, s.n_eval_safe, s.n_eval_benign, s.n_eval_task)}
    return held | {item.prompt for item in load_utility_set()}


def draw_examples(*, seed: int, n_harmful: int, n_benign: int, n_safe: int,
                  exclude: Iterable[str] = ()) -> list[AlignmentExample]:
    """Distinct `train`-split prompts of each kind (none of `exclude`), in a seeded order:
    harmful ones with our refusals, the others still without an answer."""
    rng = random.Random(f"align-{seed}")
    excluded = set(exclude)
    out: list[AlignmentExample] = []
    for kind, n in zip(ALIGN_KINDS, (n_harmful, n_benign, n_safe), strict=True):
        if n < 0:
            raise ValueError(f"the number of {kind} examples must be >= 0, got {n}")
        drawn = [e for e in corpus.unique(corpus.sample(kind, "train", n * 4 + 8, rng))
                 if e.prompt not in excluded]
        if len(drawn) < n:
            raise ValueError(f"only {len(drawn)} distinct {kind} prompts in the train split, {n} asked")
        out += [AlignmentExample(e.prompt, kind, e.category, e.aligned_answer if kind == "harmful" else None)
                for e in drawn[:n]]
    return out


def trim_unfinished(text: str) -> str:
    """`text` up to the end of its last full sentence ("" when there is none)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].rstrip() if ends else ""


def own_answers(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int, batch_size: int,
                progress: Callable[[int, int], None] | None = None) -> list[OwnAnswer]:
    """The model's greedy answers (the evaluation suite's batched generation), each marked
    finished when it ended with EOS before `max_new_tokens`."""
    from service.evaluation.generation import (
        GenerationConfig,
        generate_token_ids,
        render_chat_prompt,
    )

    texts = [render_chat_prompt(tokenizer, p) for p in prompts]
    ids = generate_token_ids(model, tokenizer, texts, progress=progress,
                             config=GenerationConfig(batch_size=batch_size, max_new_tokens=max_new_tokens))
    return [OwnAnswer(tokenizer.decode(t, skip_special_tokens=True).strip(), len(t) < max_new_tokens)
            for t in ids]


def with_own_answers(examples: Sequence[AlignmentExample],
                     answers: dict[str, OwnAnswer]) -> tuple[list[AlignmentExample], dict[str, int]]:
    """Fill in every example without a target from `answers` (by prompt); unfinished answers
    are trimmed to their last sentence and dropped when nothing is left. Returns the examples
    and counts (finished, trimmed, dropped)."""
    counts = {"finished": 0, "trimmed": 0, "dropped": 0}
    out = []
    for e in examples:
        if e.target is not None:
            out.append(e)
            continue
        answer = answers[e.prompt]
        text = answer.text if answer.finished else trim_unfinished(answer.text)
        if not text:
            counts["dropped"] += 1
            continue
        counts["finished" if answer.finished else "trimmed"] += 1
        out.append(AlignmentExample(e.prompt, e.kind, e.category, text))
    return out, counts
