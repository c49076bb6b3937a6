"""How much of the demo world's held-out harm does a fitted conditional lock's condition
read on a fine-tuned model, and what would reading more cost? Offline, no judge.

The model is a published folder (the fine-tuned weights with the fitted lock the gate
chose, `lock_registry.bake.save_locked`), e.g. `make demo`'s `demo-output/models/toxic`.
Its prompts are drawn from the corpus's held-out split (`--draws` draws a kind, repeats
dropped): harmful, safe-but-scary, plain benign and the customer's tickets.

- **Threshold sweep** (one forward pass a prompt, read as the lock reads it: over its
  `condition_window` last prompt tokens): the share of each kind the condition fires on
  at the fitted threshold and at the thresholds where it first reads 90, 95, 99 and 100%
  of the harmful prompts the task veto lets through (the veto applied as the
  lock applies it, so a vetoed harmful prompt never counts as read).
- **Answer re-check** (`--answer-tokens K`, greedy decoding of K tokens without the lock,
  on the first `--n-recheck` prompts of each kind): the condition read again on the
  answer's first K - 1 tokens (the residual after the condition layer at each decoded
  token alone, whatever the lock's window, against the same direction). A row fires when
  its prompt fires, or when the largest answer score so far passes a threshold fitted on
  the answers to the lock's calibration prompts by the lock's own rule (`fit_threshold`,
  as relock fits the prompt's).
  Shown per K' < K: whether reading the answer catches the harmful prompts the prompt's
  reading misses.

    python benchmarks/condition_recall.py --model demo-output/models/toxic --json out.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from align_real import say

KINDS = ("harmful", "safe", "benign", "task")
RECALLS = (0.90, 0.95, 0.99, 1.0)


def held_out(draws: int, seed: int) -> dict[str, list[str]]:
    from service.demo_world.corpus import sample, unique

    rng = random.Random(f"condition-recall-{seed}")
    return {kind: [e.prompt for e in unique(sample(kind, "heldout", draws, rng))] for kind in KINDS}


@torch.no_grad()
def answer_scores(model, tokenizer, prompts: list[str], layer: int, direction: torch.Tensor,
                  tokens: int, batch_size: int = 16) -> torch.Tensor:
    """[n, tokens]: the condition score at the last prompt token (column 0) and at each of
    the first ``tokens - 1`` tokens of the greedy answer, without the lock."""
    from lock_registry.kinds.conditional.activations import _encode, format_prompts

    out = []
    for start in range(0, len(prompts), batch_size):
        enc = _encode(tokenizer, format_prompts(tokenizer, prompts[start : start + batch_size]), model.device)
        n = enc["input_ids"].shape[1]
        generated = model.generate(**enc, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        mask = torch.cat([enc["attention_mask"], torch.ones_like(generated[:, n:])], dim=1)
        hidden = model(input_ids=generated, attention_mask=mask, output_hidden_states=True).hidden_states
        residual = hidden[layer + 1][:, n - 1 : n + tokens - 1].float()
        out.append(torch.nn.functional.cosine_similarity(residual, direction[None, None], dim=-1))
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="a published model folder (weights + fitted lock)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draws", type=int, default=3000, help="held-out draws per kind (repeats dropped)")
    ap.add_argument("--answer-tokens", type=int, default=8, help="K: the answer re-check reads K - 1 answer tokens (0: skip)")
    ap.add_argument("--n-recheck", type=int, default=400, help="prompts per kind in the answer re-check")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lock_registry.bake import LOCK_SUBDIR
    from lock_registry.kinds.conditional.activations import prompt_activations
    from lock_registry.kinds.conditional.condition import condition_scores, fit_threshold
    from lock_registry.kinds.conditional.format import (
        VETO_TENSOR,
        ConditionalFields,
        calibration_prompts,
    )
    from lock_registry.lock import MetaSafetyLock

    lock = MetaSafetyLock.load(args.model / LOCK_SUBDIR)
    fields = ConditionalFields.of(lock)
    direction = lock.tensors["condition_direction"].float()
    veto = lock.tensors.get(VETO_TENSOR)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    sets = held_out(args.draws, args.seed)
    calibration = calibration_prompts(lock)
    sets["calibration_harmful"] = [p.text for p in calibration if p.harmful]
    sets["calibration_benign"] = [p.text for p in calibration if not p.harmful]
    say(f"condition layer {fields.condition_layer} over {fields.condition_window} token(s), fitted threshold {fields.threshold:.4f}; "
        + ", ".join(f"{k} {len(v)}" for k, v in sets.items()))

    t0 = time.perf_counter()
    scores, vetoed = {}, {}
    for kind, prompts in sets.items():
        acts = prompt_activations(model, tokenizer, prompts, window=fields.condition_window)
        scores[kind] = condition_scores(acts.pooled[:, fields.condition_layer], direction)
        vetoed[kind] = (torch.zeros(len(prompts), dtype=torch.bool) if veto is None else
                        condition_scores(acts.residual[:, fields.veto_layer], veto.float()) <= fields.veto_threshold)
    say(f"read {sum(len(v) for v in sets.values())} prompts in {time.perf_counter() - t0:.0f} s")

    def fires(kind: str, threshold: float, answer_hit: torch.Tensor | None = None) -> float:
        """Share of ``kind`` steered: prompt score above ``threshold`` (or ``answer_hit``), not vetoed."""
        n = len(scores[kind]) if answer_hit is None else len(answer_hit)
        hit = scores[kind][:n] > threshold
        if answer_hit is not None:
            hit = hit | answer_hit
        return float((hit & ~vetoed[kind][:n]).float().mean())

    harmful = torch.sort(scores["harmful"][~vetoed["harmful"]], descending=True).values
    sweep = {"fitted": fields.threshold}
    for recall in RECALLS:
        k = max(1, round(recall * len(harmful)))
        sweep[f"reads {recall:.0%} of harmful"] = float(harmful[k - 1]) - 1e-6
    rows = {}
    for name, threshold in sweep.items():
        rows[name] = {"threshold": threshold, "fires": {k: fires(k, threshold) for k in sets}}
        say(f"{name:24} threshold {threshold:.4f}: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in rows[name]["fires"].items()))
    results: dict = {"model": str(args.model), "seed": args.seed, "sizes": {k: len(v) for k, v in sets.items()},
                     "condition_layer": fields.condition_layer,
                     "condition_window": fields.condition_window, "sweep": rows, "answer_recheck": {}}

    if args.answer_tokens > 1:
        t0 = time.perf_counter()
        answers = {k: answer_scores(model, tokenizer, v[: args.n_recheck], fields.condition_layer, direction,
                                    args.answer_tokens) for k, v in sets.items()}
        say(f"answer re-check: decoded {args.answer_tokens} tokens of {sum(len(a) for a in answers.values())} prompts "
            f"in {time.perf_counter() - t0:.0f} s")
        labels = torch.tensor([True] * len(answers["calibration_harmful"]) + [False] * len(answers["calibration_benign"]))
        subset = {k: torch.zeros(len(a), dtype=torch.bool) for k, a in answers.items()}
        results["answer_recheck"][0] = {"threshold": None, "fires": {k: fires(k, fields.threshold, subset[k]) for k in sets}}
        for upto in range(1, args.answer_tokens):
            best = {k: a[:, 1 : upto + 1].max(dim=1).values for k, a in answers.items()}
            calibration_scores = torch.cat([best["calibration_harmful"], best["calibration_benign"]])
            threshold = fit_threshold(calibration_scores, labels, fields.max_false_fire).threshold
            row = {k: fires(k, fields.threshold, best[k] > threshold) for k in sets}
            results["answer_recheck"][upto] = {"threshold": threshold, "fires": row}
        for upto, row in results["answer_recheck"].items():
            say(f"prompt{f' or answer tokens 1..{upto}' if upto else ' only'}: "
                + ", ".join(f"{k} {100 * v:.1f}%" for k, v in row["fires"].items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
