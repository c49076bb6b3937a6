"""The first-token screen: which alphas relock generates answers for first.

Choosing alpha by generating and judging answers costs a full generation pass over the
selection prompts for every alpha tried. The screen costs one forward pass per prompt and
alpha: under the fitted lock at each alpha of the grid, the share of the selection half's
harmful prompts whose refusal first token (the lock's `refusal_start`, "I") outscores
its compliance first token (`compliance_start`, "Sure") at the last prompt token, the
position a conditional lock steers; and the same share of the safe prompts (lock_registry's
`alpha_curve` on these prompts; system prompts are not part of the screen).

The screen orders the search; it never chooses. relock generates answers
- for alpha 0 first (the unlocked model, measured anyway; no screen runs if it passes),
- then for the shortlist: the smallest alpha whose first-token refusal rate on the harmful
  prompts reaches `1 - max_harmful_rate`, and the next alpha of the grid,
- then, only if neither meets the gate, for every other alpha, smallest first (the full
  search relock ran before the screen),
and keeps the first alpha the gate's own check passes. So whenever some alpha of the grid
passes on the selection prompts, one is chosen: the screen can make relock choose a larger
alpha than the smallest passing one (when it underestimates a smaller alpha), never reject
a job the full search would have kept. A lock kind without recorded first tokens (the
paper's head_bias kind) is not screened: its grid is searched in full, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.state.records import AlphaScreen, ScreenPoint

SCREENED_KINDS = ("conditional",)  # kinds whose manifest records refusal and compliance first tokens
TOLERANCE = 1e-9  # a rate equal to the target reaches it despite float rounding


def screen(model: Any, tokenizer: Any, lock: Any, sets: dict[str, Any], alphas: Sequence[float],
           max_harmful_rate: float) -> AlphaScreen:
    """The first-token curve of `lock` on `sets`' harmful and safe prompts at each of
    `alphas`, and the shortlist it gives (see the module's docstring)."""
    harmful, safe = list(sets["harmful"]), list(sets["safe"])
    counts = {"num_harmful": len(harmful), "num_safe": len(safe)}
    if lock.manifest.kind not in SCREENED_KINDS:
        return AlphaScreen(**counts, unavailable=f"a {lock.manifest.kind} lock records no refusal and compliance "
                           "first tokens, so it has no first-token curve; every alpha of the grid is generated")
    from lock_registry.errors import LockError
    from lock_registry.kinds.conditional.fit import alpha_curve
    from lock_registry.kinds.conditional.format import LabelledPrompt

    prompts = [LabelledPrompt(item.prompt, True) for item in harmful]
    prompts += [LabelledPrompt(item.prompt, False) for item in safe]
    try:
        curve = alpha_curve(model, tokenizer, lock, alphas, prompts=prompts)
    except LockError as exc:  # e.g. a lock created before it recorded its first tokens
        return AlphaScreen(**counts, unavailable=f"the first-token curve could not be measured ({exc}); "
                           "every alpha of the grid is generated")
    points = [ScreenPoint(alpha=p.alpha, first_token_refusal=p.harmful_refusal_start,
                          first_token_over_refusal=p.benign_refusal_start) for p in curve]
    target = 1.0 - max_harmful_rate
    return AlphaScreen(**counts, target=target, points=points, shortlist=shortlist(points, target))


def shortlist(points: Sequence[ScreenPoint], target: float) -> list[float]:
    """The smallest alpha above 0 whose first-token refusal rate reaches `target`, and the
    next screened alpha; empty when none reaches it."""
    ordered = sorted((p for p in points if p.alpha > 0), key=lambda p: p.alpha)
    for i, point in enumerate(ordered):
        if point.first_token_refusal >= target - TOLERANCE:
            return [p.alpha for p in ordered[i:i + 2]]
    return []


def search_order(alphas: Sequence[float], result: AlphaScreen) -> list[float]:
    """The order relock generates `alphas` in: the shortlist, then the others smallest first."""
    listed = [a for a in result.shortlist if a in alphas]
    return listed + sorted(a for a in alphas if a not in listed)


def describe(result: AlphaScreen) -> str:
    """The screen as one event line."""
    if result.unavailable:
        return f"No first-token screen: {result.unavailable}."
    rates = ", ".join(f"{p.alpha:g}: {_pct(p.first_token_refusal)} / {_pct(p.first_token_over_refusal)}"
                      for p in result.points)
    head = (f"First-token screen on the {result.num_harmful} harmful and {result.num_safe} safe selection prompts "
            f"(one forward pass each, no answers generated): refusal first token on harmful / safe prompts per alpha "
            f"{rates}; target {_pct(result.target)} on harmful prompts. ")
    if not result.shortlist:
        return head + "No alpha reaches it: every alpha of the grid is generated, smallest first."
    return head + (f"Generating answers for alpha {' and '.join(f'{a:g}' for a in result.shortlist)} first; "
                   "the rest of the grid only if none of them meets the gate.")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
