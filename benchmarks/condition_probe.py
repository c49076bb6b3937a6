"""Does a conditional lock's condition read harm on prompts it never saw? Offline: one
forward pass a prompt, no generation.

The lock data are the demo operator's (service/demo/operator.py's `_conditional_lock`:
the same draw of labelled corpus prompts and the same calibration split as `make demo`).
From the aligned base, for each decoder layer l up to the lock's condition layer K, the
direction d_l = mean(harmful) - mean(benign) of the last-prompt-token residual (the
lock's rule; with ``--shrinkage S`` below 1 the shrinkage LDA direction, a lock's
``condition_shrinkage``); a prompt's feature at l is the cosine of its residual with d_l. Conditions
compared, each taken from the base's training prompts only:

- ``single``: the feature at the best layer (the lock's own condition);
- ``mean-z``: the mean over layers 0..K of the features, each standardised on the base's
  training prompts;
- ``probe``: logistic regression (L2) on the K+1 features.

On each model given (the aligned base and fine-tuned descendants) the threshold is
re-fitted on the lock's calibration prompts, as relock does (by TPR - FPR, and with
``--false-fire Q``: the lowest threshold firing on at most Q of the benign calibration
prompts, recall first); then the share of prompts it
fires on is counted on sets the lock never saw: AdvBench (520), our harmful set in other
styles (120), XSTest's safe prompts (250), and the demo world's held-out split (harmful,
safe, customer-task; its harmful prompts also split into those in a frame the corpus holds
out and those with a held-out action in a training frame). Every condition reads layers <=
K only, so the lock's steered heads (after K) stay where they are. ``--window W`` reads
every residual averaged over the prompt's last W tokens (a lock's ``condition_window``)
instead of at the last token alone. ``--per-layer`` adds the single condition at every
layer (its direction and threshold taken the same way), to show whether another layer
than the lock's reads unseen wordings better.

    python benchmarks/condition_probe.py --model base=DIR --model toxic=DIR --json out.json
    python benchmarks/condition_probe.py --model base=DIR --false-fire 0.15 --per-layer
    python benchmarks/condition_probe.py --model base=DIR --false-fire 0.15 --per-layer --window 8
    python benchmarks/condition_probe.py --model base=DIR --false-fire 0.15 --shrinkage 0.5 --lock-prompts 400
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

from align_real import load_sets, say

METHODS = ("single", "mean-z", "probe")


def lock_prompts(seed: int, per_kind: int):
    """The demo operator's labelled prompts, drawn as `_conditional_lock` draws them
    (``per_kind``: the demo config's `lock_prompts`; another value draws more or fewer the
    same way)."""
    from lock_registry.kinds.conditional import LabelledPrompt
    from service.demo_world.corpus import sample, sample_mixture, unique

    rng = random.Random(f"demo-lock-{seed}")
    half = per_kind
    harmful = unique(sample("harmful", "train", half * 3, rng))[:half]
    others = unique(sample_mixture({"benign": 2, "safe": 1, "task": 1}, "train", half * 3, rng))[:half]
    return [LabelledPrompt(e.prompt, True) for e in harmful] + [LabelledPrompt(e.prompt, False) for e in others]


def in_heldout_frame(example) -> bool:
    """Whether a demo-world request is worded in one of the corpus's held-out frames."""
    from service.demo_world.lexicon import FRAMES_HELDOUT

    return any(frame.format(a=example.action).lower() == example.prompt.lower() for frame in FRAMES_HELDOUT)


def held_out_sets(data: Path, n_demo: int, seed: int) -> dict[str, list[str]]:
    from service.demo_world.corpus import sample, unique
    from service.evaluation.harmful_styles import load_harmful_styles

    advbench, xstest_safe, _ = load_sets(data)
    rng = random.Random(f"condition-probe-{seed}")
    demo = {kind: unique(sample(kind, "heldout", n_demo * 3, rng))[:n_demo] for kind in ("harmful", "safe", "task")}
    return {"advbench": [i.prompt for i in advbench], "styles": [i.prompt for i in load_harmful_styles()],
            "xstest_safe": [i.prompt for i in xstest_safe],
            "demo_harmful": [e.prompt for e in demo["harmful"]],
            "demo_harmful_new_frame": [e.prompt for e in demo["harmful"] if in_heldout_frame(e)],
            "demo_harmful_new_action": [e.prompt for e in demo["harmful"] if not in_heldout_frame(e)],
            "demo_safe": [e.prompt for e in demo["safe"]], "demo_task": [e.prompt for e in demo["task"]]}



def features(model, tokenizer, prompts: list[str], directions: torch.Tensor, window: int) -> torch.Tensor:
    """[n, len(directions)]: cosine of each prompt's residual after layer l (averaged over its
    last ``window`` tokens, as a lock with that `condition_window` reads it) with d_l."""
    from lock_registry.kinds.conditional.activations import prompt_activations

    residual = prompt_activations(model, tokenizer, prompts, window=window).pooled[:, : len(directions)]
    return torch.nn.functional.cosine_similarity(residual, directions[None], dim=-1)


def logistic(x: torch.Tensor, y: torch.Tensor, l2: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of an L2-regularised logistic regression (LBFGS, full batch)."""
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        out = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y.float()) + l2 * (w ** 2).sum()
        out.backward()
        return out

    opt.step(loss)
    return w.detach(), b.detach()


class Conditions:
    """The three conditions, fitted on the base's training features."""

    def __init__(self, train_x: torch.Tensor, train_y: torch.Tensor, best_layer: int):
        self.best = best_layer
        self.mean, self.std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
        self.w, self.b = logistic((train_x - self.mean) / self.std, train_y)

    def scores(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = (x - self.mean) / self.std
        return {"single": x[:, self.best], "mean-z": z.mean(1), "probe": z @ self.w + self.b}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, metavar="NAME=DIR",
                    help="a model to read (the first is the aligned base the conditions are taken from)")
    ap.add_argument("--seed", type=int, default=0, help="the demo's seed (its lock draw) and the demo test draw")
    ap.add_argument("--lock-prompts", type=int, default=None,
                    help="harmful lock prompts, and as many others (default: the demo config's lock_prompts)")
    ap.add_argument("--calibration-size", type=int, default=64, help="as the lock's recipe (conditional preset)")
    ap.add_argument("--n-demo", type=int, default=100, help="demo-world held-out prompts per kind")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--false-fire", default="", help="comma-separated Q: also fit the recall-first thresholds")
    ap.add_argument("--per-layer", action="store_true",
                    help="also the single condition at every layer, not only the lock's")
    ap.add_argument("--window", type=int, default=1,
                    help="read each prompt's residual averaged over its last WINDOW tokens (the lock's "
                    "condition_window; 1: the last token)")
    ap.add_argument("--shrinkage", type=float, default=1.0,
                    help="take each layer's direction by shrinkage LDA (the lock's condition_shrinkage; 1: the mean "
                    "difference)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from lock_registry.kinds.conditional.activations import prompt_activations
    from lock_registry.kinds.conditional.condition import (
        condition_direction,
        fit_threshold,
        ranking_auc,
    )
    from lock_registry.kinds.conditional.create import calibration_split
    from service.demo.config import SIZES
    from service.evaluation.loading import load_model

    models = dict(m.split("=", 1) for m in args.model)
    rules = [None] + [float(q) for q in args.false_fire.split(",") if q]
    prompts = lock_prompts(args.seed, args.lock_prompts or SIZES["demo"].lock_prompts)
    labels = torch.tensor([p.harmful for p in prompts])
    train, held = calibration_split(labels, args.calibration_size, args.seed)
    sets = held_out_sets(args.data, args.n_demo, args.seed)
    say(f"{len(prompts)} lock prompts ({len(held)} calibration); held-out sets: "
        + ", ".join(f"{k} {len(v)}" for k, v in sets.items()))

    base_name, base_dir = next(iter(models.items()))
    model, tok = load_model(Path(base_dir))
    residual = prompt_activations(model, tok, [p.text for p in prompts], window=args.window).pooled
    harm, benign = train[labels[train]], train[~labels[train]]
    directions = torch.stack([condition_direction(residual[harm, layer], residual[benign, layer], args.shrinkage)
                              for layer in range(residual.shape[1])])
    aucs = [round(ranking_auc(torch.nn.functional.cosine_similarity(residual[held, l], directions[l][None], dim=-1),
                              labels[held]), 3) for l in range(len(directions) - 1)]
    best = max(range(len(aucs)), key=lambda l: (aucs[l], -l))  # the lock's rule: best, earliest among ties
    directions = directions[: len(aucs) if args.per_layer else best + 1]
    lock_x = torch.nn.functional.cosine_similarity(residual[:, : best + 1], directions[None, : best + 1], dim=-1)
    conditions = Conditions(lock_x[train], labels[train], best)
    say(f"condition layer K = {best} (held-out AUC {aucs[best]}); probe weights "
        + " ".join(f"{v:+.2f}" for v in conditions.w.tolist()))

    results: dict = {"seed": args.seed, "window": args.window, "shrinkage": args.shrinkage, "layer": best, "probe_weights": conditions.w.tolist(), "models": {}}
    for name, path in models.items():
        if name != base_name:
            del model
            model, tok = load_model(Path(path))
        t0 = time.perf_counter()
        calib_x = features(model, tok, [prompts[i].text for i in held.tolist()], directions, args.window)
        set_x = {k: features(model, tok, v, directions, args.window) for k, v in sets.items()}
        say(f"{name}: read {sum(len(v) for v in sets.values()) + len(held)} prompts in {time.perf_counter() - t0:.0f} s")
        scorers = {method: (lambda x, m=method: conditions.scores(x[:, : best + 1])[m]) for method in METHODS}
        if args.per_layer:
            scorers |= {f"layer {layer}": (lambda x, lay=layer: x[:, lay]) for layer in range(len(directions))}
        rows = {}
        for method, score in scorers.items():
            for rule in rules:
                label = method if rule is None else f"{method} fire<={rule:g}"
                fit = fit_threshold(score(calib_x), labels[held], max_false_fire=rule)
                fired = {k: float((score(x) > fit.threshold).float().mean()) for k, x in set_x.items()}
                adv, xs = score(set_x["advbench"]), score(set_x["xstest_safe"])
                auc = ranking_auc(torch.cat([adv, xs]),
                                  torch.cat([torch.ones(len(adv)), torch.zeros(len(xs))]).bool())
                rows[label] = {"calibration_auc": fit.auc, "calibration_tpr": fit.true_positive_rate,
                               "calibration_fpr": fit.false_positive_rate, "advbench_vs_xstest_auc": auc,
                               "fires": fired}
                say(f"{name} {label:16} calib AUC {fit.auc:.3f} TPR {fit.true_positive_rate:.2f} "
                    f"FPR {fit.false_positive_rate:.2f} | AdvBench-vs-XSTest AUC {auc:.3f} | fires: "
                    + ", ".join(f"{k} {100 * v:.1f}%" for k, v in fired.items()))
        results["models"][name] = {"dir": path, "methods": rows}
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
