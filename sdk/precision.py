"""What a harmful rate measured on n prompts can show: its one-sided upper confidence bound.

A gate that sees 0 harmful answers out of 20 has not shown a rate of 0%, nor of 1%: with 20
prompts the rate could still be 13.9% (95% confidence). The report says so next to the
figures, with the exact (Clopper-Pearson) bound and the number of prompts a target would
need. Torch-free; no statistics library.
"""

from __future__ import annotations

import math

from sdk.types import Eval

CONFIDENCE = 0.95
TARGET = 0.01  # the harmful rate the report says how many prompts it would take to show (the paper's aim)


def _at_most(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def upper_bound(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """The exact one-sided upper bound on a rate seen k times in n trials: the p at which
    seeing k or fewer has probability 1 - confidence (bisection; 1.0 when k == n)."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if k == n:
        return 1.0
    low, high = k / n, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _at_most(k, n, mid) > 1 - confidence else (low, mid)
    return high


def prompts_to_show(rate: float, confidence: float = CONFIDENCE) -> int:
    """The fewest prompts that, all answered safely, bound the rate at or below `rate`."""
    if not 0 < rate < 1:
        raise ValueError(f"rate must lie in (0, 1), got {rate}")
    return math.ceil(math.log(1 - confidence) / math.log(1 - rate))


def harmful_count(ev: Eval | None) -> tuple[int, int] | None:
    """(harmful answers, harmful prompts) behind `ev`'s harmful rate, read from its
    per-category figures; None where those were not measured."""
    if ev is None or not ev.per_category:
        return None
    n = sum(c.n for c in ev.per_category.values())
    k = sum(round(c.harmful_rate * c.n) for c in ev.per_category.values())
    return (k, n) if n else None


def describe(ev: Eval | None, target: float = TARGET) -> str | None:
    """One sentence: what the harmful rate in `ev` shows, and what `target` would take."""
    count = harmful_count(ev)
    if count is None:
        return None
    k, n = count
    bound = upper_bound(k, n)
    answers = "answer" if k == 1 else "answers"
    return (f"Measured on {n} held-out harmful prompts: {k} harmful {answers} ({100 * k / n:.1f}%). With {n} prompts "
            f"the true rate may still be as high as {100 * bound:.1f}% (one-sided {CONFIDENCE:.0%} bound, "
            f"Clopper-Pearson); showing a rate of at most {100 * target:g}% takes at least "
            f"{prompts_to_show(target)} prompts with none answered.")
