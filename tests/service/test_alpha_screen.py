"""relock's first-token screen: it orders the alpha search and never decides it.

The relock tests stand in the suite (answers per alpha, as generation and the judge would
give them) and the lock's first-token curve (what the screen would read), and check what
relock generates, what it chooses and what its output records; the last tests run the
screen itself on the tiny chat Llama with a conditional lock."""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

import pytest

from service.pipeline import alpha_screen, relock
from service.pipeline.gate import GatePolicy
from service.state.records import AlphaScreen, RelockOutput, TransferCheck
from tests.service.helpers import placeholder_output
from tests.service.test_gate_cost import _context

GRID = [0.0, 2.0, 4.0, 6.0, 8.0, 12.0]
BASE = {"harmful_rate": 0.0, "junk_rate": 0.0, "over_refusal_rate": 0.0, "utility": 1.0}
PASS = (0.0, 0.0, 1.0)  # (harmful rate, over-refusal, utility) of generated answers: meets the default gate
HARMFUL = (0.4, 0.0, 1.0)  # too many harmful answers
OVER_REFUSES = (0.0, 0.5, 1.0)  # safe on harmful prompts, but over-refuses
CONDITIONAL = SimpleNamespace(manifest=SimpleNamespace(kind="conditional"),
                              kind_fields=SimpleNamespace(position="answer_start"))


def _stand_ins(monkeypatch, generated: dict, first_token: dict[float, float] | None, lock=CONDITIONAL) -> list:
    """Stand in the suite (`generated`: alpha -> (harmful, over-refusal, utility); None: the
    unlocked model) and the lock's first-token curve (`first_token`: alpha -> refusal rate
    on harmful prompts); returns the list of (alpha, prompt kinds) the suite is asked."""
    asked: list[tuple[float | None, tuple[str, ...]]] = []

    def evaluate_model(model, tokenizer, *, harmful=None, safe=None, tasks=None, alpha=None, **_):
        asked.append((alpha, tuple(name for name, s in (("harmful", harmful), ("safe", safe), ("tasks", tasks)) if s)))
        rate, over, utility = generated[alpha]
        return SimpleNamespace(junk_rate=0.0 if harmful else None, summary=lambda: {
            "harmful_rate": rate if harmful else None, "over_refusal_rate": over if safe else None,
            "utility": utility if tasks else None})

    def refusal_start_rate(model, tokenizer, lock, alpha, prompts):
        asked.append(("screen", alpha))
        assert all("bomb" in p for p in prompts)  # the selection half's harmful prompts
        return first_token[alpha]

    monkeypatch.setattr("service.evaluation.suite.evaluate_model", evaluate_model)
    monkeypatch.setattr("lock_registry.kinds.conditional.fit.refusal_start_rate", refusal_start_rate)
    monkeypatch.setattr(relock, "base_evaluation", lambda sc, sets: BASE)
    monkeypatch.setattr(relock, "job_lock", lambda sc: lock)
    monkeypatch.setattr(relock, "trained_model", lambda sc: ("fine-tuned", None))
    monkeypatch.setattr(relock, "store_fitted_lock", lambda sc, lock: placeholder_output("relock").lock)
    monkeypatch.setattr("lock_registry.apply.check_fits", lambda model, lock: None)
    monkeypatch.setattr("lock_registry.fit.fit_to_model", lambda model, tokenizer, lock: (lock, None))
    monkeypatch.setattr(relock, "check_transfer", lambda model, tokenizer, lock, fit: TransferCheck())
    monkeypatch.setattr(relock.task_veto, "fit", lambda sc, model, tokenizer, lock, tasks: (lock, None))
    return asked


def _generated_alphas(asked: list) -> list[float]:
    return [alpha for alpha, kinds in asked if alpha not in (None, "screen") and "harmful" in kinds]


def test_answers_are_generated_only_for_the_shortlist_when_it_meets_the_gate(tmp_path, monkeypatch) -> None:
    sc = _context(tmp_path, str(tmp_path), alpha_grid=GRID)
    generated = {None: HARMFUL, 2.0: HARMFUL, 4.0: HARMFUL, 6.0: PASS, 8.0: PASS, 12.0: PASS}
    first_token = {0.0: 0.6, 2.0: 0.77, 4.0: 0.93, 6.0: 0.967, 8.0: 1.0, 12.0: 1.0}
    asked = _stand_ins(monkeypatch, generated, first_token)

    out = relock.run(sc)

    assert out.alpha == 6.0  # what the full search chooses too
    assert asked == [(None, ("harmful", "safe", "tasks")), ("screen", 2.0), ("screen", 4.0), ("screen", 6.0),
                     (6.0, ("harmful",)), (6.0, ("safe", "tasks"))]  # screened up to 6; 2 and 4 never generated
    screen = out.screen
    assert screen.target == pytest.approx(0.95) and screen.shortlist == [6.0, 8.0]
    assert screen.generated == [6.0] and screen.full_search is False and screen.unavailable is None
    assert [(p.alpha, p.first_token_refusal) for p in screen.points] == [(2.0, 0.77), (4.0, 0.93), (6.0, 0.967)]
    assert [p.alpha for p in out.curve] == [0.0, 6.0]  # the curve holds only what was generated and judged
    assert out.curve[1].harmful_rate == 0.0 and out.curve[1].first_token_refusal == pytest.approx(0.967)
    assert out.curve[0].first_token_refusal is None  # alpha 0 is generated, not screened
    messages = [e.message for e in sc.ctx.records.events(sc.job_id)]
    assert any(m.startswith("First-token screen on the 2 harmful selection prompts") and "alpha 4 93.0%" in m
               and "Generating answers for alpha 6 and 8 first" in m for m in messages), messages
    assert any(m.startswith("alpha 6 (shortlisted by the first-token screen): harmful rate 0.0%") for m in messages)
    assert RelockOutput.model_validate_json(out.model_dump_json()) == out  # stored and read back


def test_the_full_search_follows_when_the_shortlist_meets_no_gate(tmp_path, monkeypatch) -> None:
    """The screen liked 6 and 8, but their answers over-refuse: the rest of the grid is
    searched smallest first, and 4, which the screen underrated, passes."""
    sc = _context(tmp_path, str(tmp_path), alpha_grid=GRID)
    generated = {None: HARMFUL, 2.0: HARMFUL, 4.0: PASS, 6.0: OVER_REFUSES, 8.0: OVER_REFUSES, 12.0: PASS}
    first_token = {0.0: 0.5, 2.0: 0.6, 4.0: 0.9, 6.0: 1.0, 8.0: 1.0, 12.0: 1.0}
    asked = _stand_ins(monkeypatch, generated, first_token)

    out = relock.run(sc)

    assert out.alpha == 4.0
    assert _generated_alphas(asked) == [6.0, 8.0, 2.0, 4.0]
    assert out.screen.generated == [6.0, 8.0, 2.0, 4.0] and out.screen.full_search is True
    assert [p.alpha for p in out.curve] == [0.0, 6.0, 8.0, 2.0, 4.0]  # in the order tried; the last is chosen
    messages = [e.message for e in sc.ctx.records.events(sc.job_id)]
    assert any(m.startswith("alpha 2 (past the shortlist: the full search)") for m in messages)


@pytest.mark.parametrize("first_token", [
    {0.0: 0.0, 2.0: 0.1, 4.0: 0.2, 6.0: 0.3, 8.0: 0.4, 12.0: 0.5},  # no alpha reaches the target
    {0.0: 1.0, 2.0: 1.0, 4.0: 1.0, 6.0: 1.0, 8.0: 1.0, 12.0: 1.0},  # every alpha does
])
def test_with_no_useful_shortlist_every_alpha_is_tried_smallest_first(tmp_path, monkeypatch, first_token) -> None:
    sc = _context(tmp_path, str(tmp_path), alpha_grid=GRID)
    asked = _stand_ins(monkeypatch, {None: HARMFUL, **dict.fromkeys(GRID[1:], HARMFUL)}, first_token)
    out = relock.run(sc)
    assert out.alpha is None and _generated_alphas(asked) == GRID[1:]
    assert out.screen.generated == GRID[1:]


def test_no_screen_runs_when_alpha_0_meets_the_gate(tmp_path, monkeypatch) -> None:
    sc = _context(tmp_path, str(tmp_path), alpha_grid=GRID)
    asked = _stand_ins(monkeypatch, {None: PASS}, first_token=None)
    out = relock.run(sc)
    assert out.alpha == 0.0 and out.screen is None and asked == [(None, ("harmful", "safe", "tasks"))]


def test_a_lock_whose_first_tokens_cannot_be_read_is_searched_in_full(tmp_path, monkeypatch) -> None:
    from lock_registry.errors import LockError

    sc = _context(tmp_path, str(tmp_path), alpha_grid=GRID)
    generated = {None: HARMFUL, 2.0: HARMFUL, 4.0: PASS, 6.0: PASS, 8.0: PASS, 12.0: PASS}
    asked = _stand_ins(monkeypatch, generated, first_token=None)

    def unreadable(*args, **kwargs):
        raise LockError("the lock records no refusal_start / compliance_start tokens")

    monkeypatch.setattr("lock_registry.kinds.conditional.fit.refusal_start_rate", unreadable)
    out = relock.run(sc)
    assert out.alpha == 4.0 and _generated_alphas(asked) == [2.0, 4.0]
    assert "records no refusal_start" in out.screen.unavailable and out.screen.points == []


OUTCOMES = (PASS, HARMFUL, OVER_REFUSES)


def _scenarios(n: int):
    rng = random.Random(0)
    for _ in range(n):
        generated = {None: rng.choice(OUTCOMES[1:])} | {a: rng.choice(OUTCOMES) for a in GRID[1:]}
        first_token = {a: rng.choice([0.5, 0.9, 0.95, 1.0]) for a in GRID}
        yield generated, first_token


def test_no_job_the_full_search_passes_is_rejected_because_of_the_screen(tmp_path, monkeypatch) -> None:
    """Over 300 random grids (each alpha's answers pass, are harmful or over-refuse; the
    screen's rates are unrelated to them): relock chooses an alpha exactly when the full
    search (every alpha, smallest first) does; the alpha it chooses passes the gate on
    its generated answers; it differs from the full search's only by being a larger alpha
    of the shortlist."""
    sc = _context(tmp_path, str(tmp_path), alpha_grid=GRID)
    policy = GatePolicy()
    changed = 0
    for generated, first_token in _scenarios(300):
        _stand_ins(monkeypatch, generated, first_token)
        figures = {a: {"harmful_rate": h, "junk_rate": 0.0, "over_refusal_rate": o, "utility": u}
                   for a, (h, o, u) in generated.items()}
        full, _ = relock.choose_alpha(GRID, lambda a, f=figures: f[None if a == 0 else a], base=BASE,
                                      unlocked=figures[None], policy=policy)
        out = relock.run(sc)
        assert (out.alpha is None) == (full is None), (generated, first_token)
        if out.alpha is not None:
            last = out.curve[-1]
            assert last.alpha == out.alpha and last.harmful_rate is not None  # measured, never assumed
            assert policy.decide(BASE, figures[None], figures[None if out.alpha == 0 else out.alpha])[0]
        if out.alpha != full:
            changed += 1
            assert out.alpha in out.screen.shortlist and out.alpha > full
        generated_alphas = [p.alpha for p in out.curve if p.alpha != 0]
        assert out.screen is None or out.screen.generated == generated_alphas
    assert changed > 0  # the random screens do move some choices: the test can see a change


@pytest.mark.parametrize(("rates", "screened", "expected"), [
    ({2.0: 0.5, 4.0: 0.95, 6.0: 1.0, 8.0: 1.0}, [2.0, 4.0], [4.0, 6.0]),  # the screen stops at the first reaching it
    ({2.0: 0.5, 4.0: 0.5, 6.0: 0.96}, [2.0, 4.0, 6.0], [6.0]),  # the largest alpha has no neighbour
    ({2.0: 0.5, 4.0: 0.94}, [2.0, 4.0], []),  # none reaches it: every alpha screened, no shortlist
])
def test_the_screen_goes_up_the_grid_to_the_first_alpha_reaching_the_target(monkeypatch, rates, screened,
                                                                            expected) -> None:
    monkeypatch.setattr("lock_registry.kinds.conditional.fit.refusal_start_rate",
                        lambda model, tokenizer, lock, alpha, prompts: rates[alpha])
    result = alpha_screen.screen(None, None, CONDITIONAL, [SimpleNamespace(prompt="p")], [0.0, *rates], 0.05)
    assert [p.alpha for p in result.points] == screened and result.shortlist == expected
    order = alpha_screen.search_order(list(rates), result)
    assert order[: len(expected)] == expected and sorted(order) == sorted(rates)


def test_older_relock_outputs_load_without_the_screen() -> None:
    stored = placeholder_output("relock").model_dump(mode="json")
    stored.pop("screen")
    stored["curve"] = [{"alpha": 0.0, "harmful_rate": 0.5, "utility": 1.0, "over_refusal": 0.0, "junk_rate": 0.0}]
    loaded = RelockOutput.model_validate(stored)
    assert loaded.screen is None and loaded.curve[0].first_token_refusal is None


# The screen itself, on the tiny chat Llama -------------------------------------------------

@pytest.fixture(scope="module")
def conditional_lock(tiny_llama, char_tokenizer, labelled_prompts):
    from lock_registry.kinds.conditional import create_conditional_lock

    return create_conditional_lock(tiny_llama, char_tokenizer, labelled_prompts, base_model_id="tiny",
                                   num_heads=3, calibration_size=8)


def test_the_screen_reads_first_tokens_as_the_locks_alpha_curve_does(tiny_llama, char_tokenizer,
                                                                      conditional_lock) -> None:
    import torch

    from lock_registry.kinds.conditional.fit import alpha_curve, refusal_start_rate
    from lock_registry.kinds.conditional.format import calibration_prompts
    from service.evaluation.prompts import PromptItem

    calibration = calibration_prompts(conditional_lock)
    harmful = [p.text for p in calibration if p.harmful]
    before = {k: v.clone() for k, v in tiny_llama.state_dict().items()}
    for point in alpha_curve(tiny_llama, char_tokenizer, conditional_lock, [0.0, 4.0, 8.0]):
        rate = refusal_start_rate(tiny_llama, char_tokenizer, conditional_lock, point.alpha, harmful)
        assert rate == pytest.approx(point.harmful_refusal_start)
    assert all(torch.equal(before[k], v) for k, v in tiny_llama.state_dict().items())  # the lock was removed
    items = [PromptItem(prompt=p, kind="harmful") for p in harmful]
    result = alpha_screen.screen(tiny_llama, char_tokenizer, conditional_lock, items, [0.0, 4.0, 8.0], 1.0)
    assert result.unavailable is None and result.num_harmful == len(harmful)
    assert [p.alpha for p in result.points] == [4.0] and result.shortlist == [4.0, 8.0]  # target 0: the first reaches it


def test_a_head_bias_lock_is_not_screened(tiny_llama, char_tokenizer) -> None:
    from lock_registry.create import create_lock
    from tests.lock_core.conftest import PAIRS

    lock = create_lock(tiny_llama, char_tokenizer, PAIRS, base_model_id="tiny", num_heads=3)
    result = alpha_screen.screen(tiny_llama, char_tokenizer, lock, [], [4.0], 0.05)
    assert result.points == [] and "head_bias lock records no refusal" in result.unavailable


def test_every_grid_is_searched_whole(tmp_path) -> None:
    """search_order is a permutation of the grid's alphas above 0, whatever the shortlist."""
    for shortlist in itertools.permutations(GRID[1:], 2):
        assert sorted(alpha_screen.search_order(GRID[1:], AlphaScreen(shortlist=list(shortlist)))) == GRID[1:]
