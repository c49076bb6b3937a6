"""The first-token screen: which alphas relock generates answers for first.

Choosing alpha by generating and judging answers costs a full generation pass over the
selection prompts for every alpha tried. The screen costs one forward pass over the
selection half's harmful prompts per alpha: under the fitted lock at that alpha, the share
of them whose refusal first token (the lock's `refusal_start`, "I") outscores its
compliance first token (`compliance_start`, "Sure") at the last prompt token, the position
a conditional lock steers (lock_registry's `refusal_start_rate`, the decision its
`alpha_curve` counts; system prompts are not part of the screen).

The screen orders the search; it never chooses. relock generates answers
- for alpha 0 first (the unlocked model, measured anyway; no screen runs if it passes),
- then for the shortlist: the smallest alpha whose first-token refusal rate on the harmful
  prompts reaches `1 - max_harmful_rate` (the screen goes up the grid and stops there),
  and the next alpha of the grid,
- then, only if neither meets the gate, for every other alpha, smallest first (the full
  search relock ran before the screen),
and keeps the first alpha the gate's own check passes. So whenever some alpha of the grid
passes on the selection prompts, one is chosen: the screen can make relock choose a larger
alpha than the smallest passing one (when it underrates a smaller alpha), never reject a
job the full search would have kept. A lock kind without recorded first tokens (the
paper's head_bias kind) is not screened: its grid is searched in full, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.state.records import AlphaScreen, ScreenPoint

SCREENED_KINDS = ("conditional",)  # kinds whose manifest records refusal and compliance first tokens
TOLERANCE = 1e-9  # a rate equal to the target reaches it despite float rounding


def screen(model: Any, tokenizer: Any, lock: Any, harmful: Sequence[Any], alphas: Sequence[float],
           max_harmful_rate: float) -> AlphaScreen:
    """Screen `alphas` (above 0, smallest first) on the `harmful` prompt items up to the
    first that reaches the target; the shortlist is that alpha and the next of `alphas`."""
    alphas = sorted(a for a in alphas if a > 0)
    if lock.manifest.kind not in SCREENED_KINDS:
        return AlphaScreen(num_harmful=len(harmful), unavailable=(
            f"a {lock.manifest.kind} lock records no refusal and compliance first tokens, so it has no "
            "first-token curve; every alpha of the grid is generated"))
    from lock_registry.errors import LockError
    from lock_registry.kinds.conditional.fit import refusal_start_rate

    target = 1.0 - max_harmful_rate
    prompts = [item.prompt for item in harmful]
    points: list[ScreenPoint] = []
    for i, alpha in enumerate(alphas):
        try:
            rate = refusal_start_rate(model, tokenizer, lock, alpha, prompts)
        except LockError as exc:  # e.g. a lock taken before locks recorded their first tokens
            return AlphaScreen(num_harmful=len(harmful), unavailable=(
                f"the first-token rate could not be measured ({exc}); every alpha of the grid is generated"))
        points.append(ScreenPoint(alpha=alpha, first_token_refusal=rate))
        if rate >= target - TOLERANCE:
            return AlphaScreen(num_harmful=len(harmful), target=target, points=points, shortlist=alphas[i:i + 2])
    return AlphaScreen(num_harmful=len(harmful), target=target, points=points)


def search_order(alphas: Sequence[float], result: AlphaScreen) -> list[float]:
    """The order relock generates `alphas` in: the shortlist, then the others smallest first."""
    listed = [a for a in result.shortlist if a in alphas]
    return listed + sorted(a for a in alphas if a not in listed)


def describe(result: AlphaScreen) -> str:
    """The screen as one event line."""
    if result.unavailable:
        return f"No first-token screen: {result.unavailable}."
    rates = ", ".join(f"alpha {p.alpha:g} {_pct(p.first_token_refusal)}" for p in result.points)
    head = (f"First-token screen on the {result.num_harmful} harmful selection prompts (one forward pass per "
            f"alpha, no answers generated): refusal first tokens at {rates}; target {_pct(result.target)}. ")
    if not result.shortlist:
        return head + "No alpha reaches it: every alpha of the grid is generated, smallest first."
    return head + (f"Generating answers for alpha {' and '.join(f'{a:g}' for a in result.shortlist)} first; "
                   "for the rest of the grid only if none of them meets the gate.")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
