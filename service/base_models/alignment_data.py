"""The operator's safety data for aligning a helpful-only base model, from our data only.

Prompts come from the demo world's corpus (`service/demo_world/corpus.py`), its `train`
split only (seen request styles x seen actions; the `heldout` split is for evaluation),
and from our plain questions (`question_set.py`), of the same three kinds:

- ``harmful`` requests, paired with our refusal texts (`corpus.refusal`, as the demo
  world's aligned stage is taught);
- ``benign`` requests in the same styles and ``safe``-but-scary ones ("kill a Python
  process"), paired with the model's OWN greedy answers, generated once by the
  helpful-only model, so that what it could do it keeps doing.

An own answer that hit the token limit is cut back to its last full sentence (training on
a cut-off answer would teach the model to stop mid-sentence); one with no full sentence is
dropped, and so is one that is not a skill worth keeping, by the evaluation suite's own
rules: a greedy loop (a sentence said twice), junk (`detect_junk`) or a refusal
(`RuleJudge`). Which prompts, how many and in what order are fixed by the seed.

No evaluation prompt is trained on: candidates equal to the demo world's held-out prompts
or our utility set (disjoint by construction: this checks it), or equal to or near
duplicates of any prompts the operator names (`exclude`, e.g. AdvBench and XSTest when they
will measure the model), are skipped. Near duplicate:
the same content words after case, punctuation, contractions and function words are
ignored, or one prompt's content words (at least three) all inside the other's ("How can I
kill a Python process?" ~ "Explain how to kill a Python process.").
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from service.base_models.question_set import Question
from service.demo_world import corpus

DATA_RULES = 3
"""Version of the rules above (the own-answer filter included, and with it the judge's refusal
rules): part of the cache key, raised whenever they change."""
AlignKind = Literal["harmful", "benign", "safe"]
ALIGN_KINDS: tuple[AlignKind, ...] = ("harmful", "benign", "safe")
_SENTENCE_END = re.compile(r"[.!?](?:[\"')\]*]*)(?=\s|$)|\n")
_CONTRACTIONS = ((r"n't\b", " not"), (r"'re\b", " are"), (r"'m\b", " am"), (r"'ll\b", " will"),
                 (r"'ve\b", " have"), (r"'d\b", " would"), (r"'s\b", " is"))
_FUNCTION_WORDS = frozenset(["a", "an", "the", "i", "me", "my", "mine", "you", "your", "we", "us", "our", "they", "them", "their", "he", "him", "his", "she", "her", "it", "its", "this", "that", "these", "those", "to", "of", "for", "in", "on", "at", "into", "onto", "by", "with", "from", "about", "as", "and", "or", "but", "if", "so", "is", "are", "am", "was", "were", "be", "been", "being", "do", "does", "did", "can", "could", "would", "will", "shall", "should", "may", "might", "must", "how", "what", "which", "who", "whom", "why", "when", "where", "please", "tell", "give", "show", "let", "some", "any"])


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


def content_words(prompt: str) -> frozenset[str]:
    """The words of a prompt that say what it asks (see the module docstring)."""
    text = prompt.lower().replace("\u2019", "'")
    for pattern, replacement in _CONTRACTIONS:
        text = re.sub(pattern, replacement, text)
    return frozenset(w for w in re.findall(r"[a-z0-9]+", text) if w not in _FUNCTION_WORDS)


class Exclusions:
    """Prompts not to train on; `prompt in exclusions` is True for them and their near duplicates."""

    def __init__(self, prompts: Iterable[str] = (), *, near: bool = True) -> None:
        self._exact: set[str] = set()
        self._sets: list[frozenset[str]] = []
        self._index: dict[str, list[int]] = {}
        self.update(prompts, near=near)

    def update(self, prompts: Iterable[str], *, near: bool = True) -> Exclusions:
        """Exclude `prompts`, and with `near` their near duplicates too."""
        for prompt in prompts:
            self._exact.add(" ".join(re.findall(r"[a-z0-9]+", prompt.lower())))
            words = content_words(prompt)
            if near and len(words) >= 2:
                for w in words:
                    self._index.setdefault(w, []).append(len(self._sets))
                self._sets.append(words)
        return self
    def __len__(self) -> int:
        return len(self._exact)

    def __contains__(self, prompt: str) -> bool:
        if " ".join(re.findall(r"[a-z0-9]+", prompt.lower())) in self._exact:
            return True
        words = content_words(prompt)
        if len(words) < 2:
            return False
        near = {i for w in words for i in self._index.get(w, ())}
        return any(words == s or (min(len(words), len(s)) >= 3 and (words <= s or s <= words))
                   for s in (self._sets[i] for i in near))


def read_prompts(path: str | Path) -> list[str]:
    """The prompts of a file: CSV (column prompt, goal, question or text), JSONL (field
    "prompt") or JSON (a list of strings or of objects with "prompt")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no prompt file at {path}")
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            column = next((c for c in ("prompt", "goal", "question", "text") if c in (reader.fieldnames or [])),
                          None)
            if column is None:
                raise ValueError(f"{path}: no prompt, goal, question or text column")
            return [row[column] for row in reader if row[column]]
    text = path.read_text(encoding="utf-8")
    try:
        rows = ([json.loads(line) for line in text.splitlines() if line.strip()]
                if path.suffix.lower() == ".jsonl" else json.loads(text))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg})") from e
    out = [r if isinstance(r, str) else r.get("prompt") if isinstance(r, dict) else None for r in rows]
    if not isinstance(rows, list) or any(not isinstance(p, str) for p in out):
        raise ValueError(f"{path}: expected a list of prompts (strings or objects with 'prompt')")
    return out


def own_evaluation_prompts(seeds: Iterable[int] = (0, 1, 2)) -> set[str]:
    """Our evaluation prompts, never trained on: the demo world's held-out evaluation sets
    (every size, world seeds 0-2 by default), our utility set and our harmful-styles set."""
    from service.base_models.utility import load_utility_set
    from service.demo_world.sizes import SIZES
    from service.evaluation.harmful_styles import load_harmful_styles

    held = {e.prompt for seed in seeds for s in SIZES.values()
            for e in corpus.eval_examples(seed, s.n_eval_harmful, s.n_eval_safe, s.n_eval_benign, s.n_eval_task)}
    return (held | {item.prompt for item in load_utility_set()}
            | {item.prompt for item in load_harmful_styles()})


def draw_examples(*, seed: int, n_harmful: int, n_benign: int, n_safe: int,
                  exclude: Iterable[str] | Exclusions = (),
                  questions: Sequence[Question] = ()) -> list[AlignmentExample]:
    """Distinct `train`-split prompts of each kind (none of `exclude` nor their near
    duplicates), in a seeded order, then every one of `questions` not excluded: harmful
    ones with our refusals, the others still without an answer."""
    rng = random.Random(f"align-{seed}")
    excluded = exclude if isinstance(exclude, Exclusions) else Exclusions(exclude)
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
    refusals = random.Random(f"align-questions-{seed}")
    out += [AlignmentExample(q.prompt, q.kind, q.category,
                             corpus.refusal(q.category, refusals) if q.kind == "harmful" else None)
            for q in questions if q.prompt not in excluded]
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


def looped(text: str) -> bool:
    """True when the answer says a sentence of three or more words twice (a greedy loop)."""
    from service.evaluation.judge import split_units

    units = [u for u in split_units(text) if len(u.split()) >= 3]
    return len(set(units)) < len(units)


def unusable(text: str) -> str | None:
    """Why an own answer is not worth training on (None: it is): the suite's rules."""
    from service.evaluation.judge import RuleJudge, detect_junk

    if not text:
        return "unfinished"
    if looped(text):
        return "loop"
    if detect_junk(text) is not None:
        return "junk"
    if RuleJudge().judge_one(text).label != "full_compliance":
        return "refusal"
    return None


def with_own_answers(examples: Sequence[AlignmentExample],
                     answers: dict[str, OwnAnswer]) -> tuple[list[AlignmentExample], dict[str, int]]:
    """Fill in every example without a target from `answers` (by prompt): unfinished answers
    cut back to their last sentence, unusable ones dropped. Returns the examples and counts
    (finished, trimmed, and dropped for each reason)."""
    counts = {"finished": 0, "trimmed": 0, "dropped_unfinished": 0, "dropped_loop": 0,
              "dropped_junk": 0, "dropped_refusal": 0}
    out = []
    for e in examples:
        if e.target is not None:
            out.append(e)
            continue
        answer = answers[e.prompt]
        text = answer.text if answer.finished else trim_unfinished(answer.text)
        if (why := unusable(text)) is not None:
            counts[f"dropped_{why}"] += 1
            continue
        counts["finished" if answer.finished else "trimmed"] += 1
        out.append(AlignmentExample(e.prompt, e.kind, e.category, text))
    return out, counts
