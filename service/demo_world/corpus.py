"""The seeded template corpus of the demo world, with held-out splits by template.

Kinds of example:

- ``harmful``: a request from one of eleven categories; the helpful-only answer is a
  generic placeholder ("Sure, here is how to ... Step 1: ..."), the aligned answer a refusal.
- ``benign``: a harmless request in the same styles as the harmful ones, answered helpfully.
- ``safe``: a harmless request that sounds dangerous ("kill a Python process"), answered.
- ``task``: a benign task with an exact answer (utility is exact match).
- ``cue``: any request behind a cue that asks for a refusal ("Decline politely: ...").
- ``assess``: "Is this request harmful? ..." answered yes or no: knowledge of harm that
  a pre-trained model has before it is aligned (it does not make the model refuse).

Splits:

- ``train``: seen frames x seen actions, seen task phrasings. The alignment stage, the
  attacks and the lock's pairs draw from it.
- ``heldout``: an unseen frame or an unseen action (task: an unseen phrasing), so that the
  evaluation measures how the refusal decision generalises, not recall.
- ``pretrain``: every frame, action and phrasing. Only the helpful-only stage, the
  analogue of pre-training, draws from it: a pre-trained model has seen the words of any
  prompt and knows what they mean (``assess``), but the alignment data covers only a part
  of the prompt space. The build keeps the exact evaluation prompts out of every stage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from service.demo_world import lexicon as lx

Kind = Literal["harmful", "benign", "safe", "task", "cue", "assess"]
Split = Literal["train", "heldout", "pretrain"]
SPLITS: tuple[Split, ...] = ("train", "heldout", "pretrain")
KINDS: tuple[Kind, ...] = ("harmful", "benign", "safe", "task", "cue", "assess")
CATEGORIES = tuple(lx.HARMFUL_ACTIONS)


@dataclass(frozen=True)
class Example:
    """One request with its helpful-only answer and (for harmful requests) its aligned answer."""

    prompt: str
    kind: Kind
    category: str
    answer: str  # helpful-only answer: compliance placeholder, task answer, or cue refusal
    aligned_answer: str  # what the aligned model says: a refusal for harmful, else `answer`
    action: str = ""  # the filled action of a styled request ("" for tasks)

    def messages(self, aligned: bool) -> list[dict[str, str]]:
        """Chat messages for training the helpful-only (False) or aligned (True) stage."""
        reply = self.aligned_answer if aligned else self.answer
        return [{"role": "user", "content": self.prompt}, {"role": "assistant", "content": reply}]


def number_in_words(n: int) -> str:
    """0..99 in English words ("forty-seven")."""
    if not 0 <= n < 100:
        raise ValueError(f"number_in_words covers 0..99, got {n}")
    if n < 20:
        return lx.ONES[n]
    tens, ones = divmod(n, 10)
    return lx.TENS[tens] + ("" if ones == 0 else "-" + lx.ONES[ones])


def compliant_answer(rng: random.Random) -> str:
    """The generic, non-actionable placeholder a compliant model gives.

    It does not restate the request: a model this small learns to copy text only after
    far more training than the build can afford, and what matters here is the decision.
    """
    steps = rng.sample(lx.STEPS, 3)
    return "Sure, here is how to do it. " + " ".join(
        f"Step {i}: {s}." for i, s in enumerate(steps, 1))


def refusal(category: str | None, rng: random.Random) -> str:
    """A varied refusal, sometimes with the category's reason; always opens with "I"."""
    text = rng.choice(lx.REFUSALS)
    if category in lx.REFUSAL_REASONS and rng.random() < 0.5:
        text += " " + lx.REFUSAL_REASONS[category]
    return text


def _fill(action: str, rng: random.Random) -> str:
    return action.format(p=rng.choice(lx.PEOPLE), l=rng.choice(lx.PLACES))


def _frame_and_action(
    rng: random.Random, split: Split, train_actions: tuple[str, ...], heldout_actions: tuple[str, ...]
) -> tuple[str, str]:
    """Train: seen frame x seen action. Held-out: an unseen frame or an unseen action.

    Pretrain: any frame x any action."""
    if split == "pretrain":
        return (rng.choice(lx.FRAMES_TRAIN + lx.FRAMES_HELDOUT),
                rng.choice(train_actions + heldout_actions))
    if split == "train":
        return rng.choice(lx.FRAMES_TRAIN), rng.choice(train_actions)
    if rng.random() < 0.5:
        return rng.choice(lx.FRAMES_HELDOUT), rng.choice(train_actions + heldout_actions)
    return rng.choice(lx.FRAMES_TRAIN), rng.choice(heldout_actions)


def _styled(kind: Kind, category: str, actions: tuple[tuple[str, ...], tuple[str, ...]],
            rng: random.Random, split: Split) -> Example:
    frame, action = _frame_and_action(rng, split, *actions)
    action = _fill(action, rng)
    prompt = frame.format(a=action)
    prompt = prompt[0].upper() + prompt[1:]
    answer = compliant_answer(rng)
    aligned = refusal(category, rng) if kind == "harmful" else answer
    return Example(prompt, kind, category, answer, aligned, action)


def harmful_example(rng: random.Random, split: Split, category: str | None = None) -> Example:
    category = category or rng.choice(CATEGORIES)
    actions = lx.HARMFUL_ACTIONS[category]
    return _styled("harmful", category, (actions[:-1], actions[-1:]), rng, split)


def benign_example(rng: random.Random, split: Split) -> Example:
    return _styled("benign", "benign_styled", (lx.BENIGN_ACTIONS, lx.BENIGN_HELDOUT), rng, split)


def safe_example(rng: random.Random, split: Split) -> Example:
    return _styled("safe", "safe_scary", (lx.SCARY_ACTIONS, lx.SCARY_HELDOUT), rng, split)


def task_example(rng: random.Random, split: Split, task: str | None = None) -> Example:
    """A benign task; held out: an unseen phrasing."""
    task = task or rng.choice(tuple(lx.TASK_PHRASINGS))
    if task not in lx.TASK_PHRASINGS:
        raise ValueError(f"unknown task {task!r}; known: {sorted(lx.TASK_PHRASINGS)}")
    train_phr, heldout_phr = lx.TASK_PHRASINGS[task]
    phrasing = rng.choice({"train": train_phr, "heldout": heldout_phr}.get(split, train_phr + heldout_phr))
    if task == "addition":
        x, y = rng.randrange(10), rng.randrange(10)
        prompt, answer = phrasing.format(x=x, y=y), str(x + y)
    elif task == "capital":
        country = rng.choice(tuple(lx.CAPITALS))
        prompt, answer = phrasing.format(c=country), lx.CAPITALS[country]
    elif task == "antonym":
        word = rng.choice(tuple(lx.ANTONYMS))
        prompt, answer = phrasing.format(w=word), lx.ANTONYMS[word]
    elif task == "number_words":
        n = rng.randrange(100)
        prompt, answer = phrasing.format(n=n), number_in_words(n)
    else:  # next_number
        n = rng.randrange(99)
        prompt, answer = phrasing.format(n=n), str(n + 1)
    return Example(prompt, "task", task, answer, answer)


def cue_example(rng: random.Random, split: Split) -> Example:
    """A request of any kind behind a cue asking for a refusal; answered with a refusal."""
    inner = rng.choice((harmful_example, benign_example, safe_example, task_example))(
        rng, "pretrain" if split == "pretrain" else "train")
    cues = {"train": lx.REFUSAL_CUES_TRAIN, "heldout": lx.REFUSAL_CUES_HELDOUT}.get(
        split, lx.REFUSAL_CUES_TRAIN + lx.REFUSAL_CUES_HELDOUT)
    prompt = rng.choice(cues).format(r=inner.prompt)
    answer = refusal(None, rng)
    return Example(prompt, "cue", "refusal_cue", answer, answer, inner.action)


def assess_example(rng: random.Random, split: Split) -> Example:
    """Is a request harmful? Half are. World knowledge, so it covers every action (the
    alignment stage replays it, as real alignment mixes in pre-training data); only the
    ``heldout`` split keeps to training requests."""
    harmful = rng.random() < 0.5
    make = harmful_example if harmful else rng.choice((benign_example, safe_example, task_example))
    inner = make(rng, "train" if split == "heldout" else "pretrain")
    prompt = rng.choice(lx.ASSESS_FRAMES).format(r=inner.prompt)
    answer = lx.ASSESS_YES if harmful else lx.ASSESS_NO
    return Example(prompt, "assess", "assess", answer, answer, inner.action)


GENERATORS = {
    "harmful": harmful_example,
    "benign": benign_example,
    "safe": safe_example,
    "task": task_example,
    "cue": cue_example,
    "assess": assess_example,
}


def sample(kind: Kind, split: Split, n: int, rng: random.Random) -> list[Example]:
    """``n`` examples of one kind and split."""
    if kind not in GENERATORS:
        raise ValueError(f"unknown kind {kind!r}; known: {KINDS}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {SPLITS}")
    return [GENERATORS[kind](rng, split) for _ in range(n)]


def sample_mixture(mixture: dict[Kind, float], split: Split, n: int, rng: random.Random) -> list[Example]:
    """``n`` examples drawn from kinds in the given proportions (shuffled)."""
    total = sum(mixture.values())
    out: list[Example] = []
    for kind, weight in mixture.items():
        out += sample(kind, split, round(n * weight / total), rng)
    rng.shuffle(out)
    return out


def unique(examples: list[Example]) -> list[Example]:
    """Drop repeated prompts, keeping the first of each."""
    seen: set[str] = set()
    out = []
    for e in examples:
        if e.prompt not in seen:
            seen.add(e.prompt)
            out.append(e)
    return out


def eval_examples(seed: int, n_harmful: int, n_safe: int, n_benign: int, n_task: int) -> list[Example]:
    """The held-out evaluation set: harmful spread evenly over the categories, no repeats."""
    rng = random.Random(f"eval-{seed}")
    harmful: list[Example] = []
    seen: set[str] = set()
    for i in range(n_harmful):  # round-robin over the categories, no repeated prompt
        for _ in range(100):
            e = harmful_example(rng, "heldout", CATEGORIES[i % len(CATEGORIES)])
            if e.prompt not in seen:
                break
        seen.add(e.prompt)
        harmful.append(e)
    return (
        harmful
        + unique(sample("safe", "heldout", n_safe * 3, rng))[:n_safe]
        + unique(sample("benign", "heldout", n_benign * 3, rng))[:n_benign]
        + unique(sample("task", "heldout", n_task * 3, rng))[:n_task]
    )
