"""The demo corpus: deterministic, held out by template, and format never gives harm away."""

from __future__ import annotations

import random
import re

import pytest

from service.demo_world import corpus
from service.demo_world import lexicon as lx


def _train(kind, n=3000, seed=0):
    return corpus.sample(kind, "train", n, random.Random(seed))


def _frame_regex(frame: str) -> re.Pattern:
    head, tail = frame.split("{a}")
    return re.compile("^" + re.escape(head[0].upper() + head[1:] if head else "") + ".+" + re.escape(tail) + "$")


def test_same_seed_same_corpus():
    assert _train("harmful", 200, seed=3) == _train("harmful", 200, seed=3)
    assert _train("harmful", 200, seed=3) != _train("harmful", 200, seed=4)
    assert corpus.eval_examples(1, 30, 10, 10, 10) == corpus.eval_examples(1, 30, 10, 10, 10)


@pytest.mark.parametrize("kind", ["harmful", "benign", "safe"])
def test_heldout_frames_and_actions_never_in_training(kind):
    train = _train(kind)
    heldout_frames = [_frame_regex(f) for f in lx.FRAMES_HELDOUT]
    assert not any(r.match(e.prompt) for e in train for r in heldout_frames)
    heldout_actions = {"harmful": [a[-1] for a in lx.HARMFUL_ACTIONS.values()],
                       "benign": lx.BENIGN_HELDOUT, "safe": lx.SCARY_HELDOUT}[kind]
    patterns = [re.compile(re.escape(a).replace(r"\{p\}", ".+").replace(r"\{l\}", ".+"))
                for a in heldout_actions]
    assert not any(p.fullmatch(e.action) for e in train for p in patterns)


def test_eval_prompts_are_unseen_and_unique():
    evals = corpus.eval_examples(0, 110, 40, 40, 60)
    assert len({e.prompt for e in evals}) == len(evals)
    seen = {e.prompt for kind in ("harmful", "benign", "safe", "task") for e in _train(kind, 4000)}
    assert not {e.prompt for e in evals if e.kind != "task"} & seen
    counts = {c: sum(e.category == c for e in evals if e.kind == "harmful") for c in corpus.CATEGORIES}
    assert set(counts.values()) == {10}  # spread evenly over the eleven categories


def test_format_does_not_give_harmfulness_away():
    harmful, benign, safe = _train("harmful"), _train("benign"), _train("safe")
    frames = lambda xs: {f for e in xs for f in lx.FRAMES_TRAIN if _frame_regex(f).match(e.prompt)}
    assert frames(harmful) == frames(benign) == frames(safe) == set(lx.FRAMES_TRAIN)
    # The helpful answers look the same whatever the request; only the aligned one differs.
    for e in harmful + benign + safe:
        assert e.answer.startswith("Sure, here is how to do it. Step 1: ")
    assert all(e.aligned_answer == e.answer for e in benign + safe)
    # People and places occur in harmful and benign requests alike.
    for who in lx.PEOPLE[:4]:
        assert any(who in e.prompt for e in harmful) and any(who in e.prompt for e in benign)


def test_refusals_open_with_I_and_compliance_is_a_placeholder():
    for e in _train("harmful", 500):
        assert e.aligned_answer.startswith("I")
        assert e.answer.count("Step") == 3 and len(e.answer) < 200
    cues = _train("cue", 300)
    assert all(e.answer.startswith("I") and e.answer == e.aligned_answer for e in cues)
    assert {e.prompt.split(":")[0] for e in cues} >= {"Decline politely", "Say no to this request"}


def test_tasks_have_correct_exact_answers():
    rng = random.Random(0)
    for _ in range(300):
        e = corpus.task_example(rng, "train", "addition")
        x, y = map(int, re.findall(r"\d+", e.prompt))
        assert e.answer == str(x + y)
        e = corpus.task_example(rng, "heldout", "capital")
        assert e.prompt.startswith("What is the capital city of")
        assert e.answer == lx.CAPITALS[e.prompt.rsplit(" ", 1)[1].rstrip("?")]
    assert [corpus.number_in_words(n) for n in (0, 13, 20, 47, 99)] == [
        "zero", "thirteen", "twenty", "forty-seven", "ninety-nine"]
    with pytest.raises(ValueError, match="0..99"):
        corpus.number_in_words(100)
    with pytest.raises(ValueError, match="unknown task"):
        corpus.task_example(rng, "train", "juggling")


def test_assess_examples_know_harm_without_refusing():
    examples = corpus.sample("assess", "train", 400, random.Random(0))
    yes = [e for e in examples if e.answer == lx.ASSESS_YES]
    assert 150 < len(yes) < 250 and all(e.answer in (lx.ASSESS_YES, lx.ASSESS_NO) for e in examples)


def test_mixture_proportions():
    examples = corpus.sample_mixture({"harmful": 0.5, "task": 0.25, "cue": 0.25}, "train", 400,
                                     random.Random(0))
    kinds = [e.kind for e in examples]
    assert (kinds.count("harmful"), kinds.count("task"), kinds.count("cue")) == (200, 100, 100)
    with pytest.raises(ValueError, match="unknown kind"):
        corpus.sample("weird", "train", 1, random.Random(0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown split 'test'"):
        corpus.sample("harmful", "test", 1, random.Random(0))  # type: ignore[arg-type]
