"""Take a conditional lock from an aligned base model and labelled prompts.

``ConditionalRecipe`` is a named preset of ``lock create`` (the built-in one is
"conditional"); ``create_conditional_lock`` takes the lock with a recipe's options as
keywords; ``create_from_recipe`` is what ``lock_registry.create.create_lock`` calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from lock_registry.architectures import HeadGeometry, attention_output_projections, model_type
from lock_registry.errors import LockError
from lock_registry.kinds.conditional.activations import (
    _encode,
    _first_token_id,
    _geometry,
    format_prompts,
    prompt_activations,
)
from lock_registry.kinds.conditional.condition import (
    check_max_false_fire,
    check_shrinkage,
    check_window,
    condition_direction,
    condition_scores,
    fit_threshold,
    ranking_auc,
)
from lock_registry.kinds.conditional.format import (
    KIND,
    LabelledPrompt,
    PositionPolicy,
    check_position,
    conditional_lock,
    labelled_from,
)
from lock_registry.lock import BaseModelRef, MetaSafetyLock


@dataclass(frozen=True)
class ConditionalRecipe:
    """How a conditional lock is taken: a named preset of ``lock create`` (see create.py).

    Its fields are the keyword options of :func:`create_conditional_lock` and their
    defaults; ``condition_layer`` None picks the layer with the best held-out AUC.
    """

    name: str
    kind: ClassVar[str] = KIND
    num_heads: int = 16
    condition_layer: int | None = None
    condition_window: int = 1
    condition_shrinkage: float = 1.0
    position: PositionPolicy = "answer_start"
    calibration_size: int = 64
    max_false_fire: float | None = None
    default_alpha: float = 8.0
    refusal_start: str = "I"
    compliance_start: str = "Sure"
    seed: int = 0

    def __post_init__(self) -> None:
        check_position(self.position)
        check_window(self.condition_window)
        check_shrinkage(self.condition_shrinkage)

    def options(self) -> dict[str, Any]:
        """The recipe as keyword arguments of :func:`create_conditional_lock`."""
        return {k: v for k, v in asdict(self).items() if k != "name"}


_DEFAULTS = ConditionalRecipe(name="defaults")
CONDITIONAL = ConditionalRecipe(name="conditional")  # the built-in preset


def calibration_split(labels: torch.Tensor, holdout: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The lock's stratified calibration split: (train indices, held-out indices), ``holdout``
    held out, drawn by ``seed`` as `create_conditional_lock` draws it."""
    gen = torch.Generator().manual_seed(seed)
    train, held = [], []
    for value in (True, False):
        idx = torch.nonzero(labels == value).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        k = min(len(idx) - 2, max(2, round(holdout * len(idx) / len(labels))))
        if k < 2:
            raise LockError("need at least 4 harmful and 4 benign prompts")
        held.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train), torch.cat(held)



def _head_effects(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    displacement: torch.Tensor,
    layers_from: int,
    *,
    refusal_start: str,
    compliance_start: str,
    batch_size: int = 16,
) -> torch.Tensor:
    """First-order effect of each head's displacement on the refusal margin.

    ``displacement`` is [num_layers, num_heads, head_dim] (sigma * direction). The effect
    of head h is the gradient of logit(refusal start) - logit(compliance start) at the
    last prompt token with respect to head h's output there, dotted with its
    displacement, averaged over ``prompts``. Heads in layers before ``layers_from`` get
    -inf (they run before the condition is known).
    """
    num_layers, num_heads, head_dim, _ = _geometry(model)
    device = next(model.parameters()).device
    refuse_id = _first_token_id(tokenizer, refusal_start)
    comply_id = _first_token_id(tokenizer, compliance_start)
    projections = attention_output_projections(model)
    texts = format_prompts(tokenizer, prompts)
    total = torch.zeros(num_layers, num_heads)
    deltas: dict[int, torch.Tensor] = {}

    def hook(index: int):
        def add(_module, args):
            x = args[0].clone()
            x[:, -1] = x[:, -1] + deltas[index].to(x.dtype)
            return (x,) + tuple(args[1:])

        return add

    handles = [
        proj.register_forward_pre_hook(hook(i))
        for i, proj in enumerate(projections)
        if i >= layers_from
    ]
    try:
        for start in range(0, len(texts), batch_size):
            enc = _encode(tokenizer, texts[start : start + batch_size], device)
            rows = enc["input_ids"].shape[0]
            for i in range(layers_from, num_layers):
                deltas[i] = torch.zeros(rows, num_heads * head_dim, device=device, requires_grad=True)
            logits = model(**enc, use_cache=False).logits[:, -1].float()
            (logits[:, refuse_id] - logits[:, comply_id]).sum().backward()
            for i in range(layers_from, num_layers):
                grad = deltas[i].grad.float().cpu().reshape(rows, num_heads, head_dim)
                total[i] += (grad * displacement[i][None]).sum(dim=(0, 2))
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
    effects = total / len(texts)
    effects[:layers_from] = float("-inf")
    return effects


def create_conditional_lock(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[LabelledPrompt],
    *,
    base_model_id: str,
    num_heads: int = _DEFAULTS.num_heads,
    condition_layer: int | None = _DEFAULTS.condition_layer,
    condition_window: int = _DEFAULTS.condition_window,
    condition_shrinkage: float = _DEFAULTS.condition_shrinkage,
    position: PositionPolicy = _DEFAULTS.position,
    default_alpha: float = _DEFAULTS.default_alpha,
    calibration_size: int = _DEFAULTS.calibration_size,
    max_false_fire: float | None = _DEFAULTS.max_false_fire,
    refusal_start: str = _DEFAULTS.refusal_start,
    compliance_start: str = _DEFAULTS.compliance_start,
    base_fingerprint: str = "",
    seed: int = _DEFAULTS.seed,
    creator: str = "",
    progress: Callable[[str], None] | None = None,
) -> MetaSafetyLock:
    """Take a conditional lock from an aligned base model and labelled prompts.

    Condition direction: mean(harmful) - mean(benign) of the residual after each layer,
    averaged over the last ``condition_window`` prompt tokens (1: the last one), or with
    ``condition_shrinkage`` below 1 the shrinkage LDA direction (``condition_direction``;
    the lock then also carries the mean difference, which transfer checks re-measure); the
    layer with the best held-out AUC is kept (earliest among ties, at most the
    second-to-last layer). Behaviour: per head, mean(harmful) - mean(benign) of its output at the last
    prompt token (the base's "about to refuse" state), unit norm, sigma = std of
    projections; heads after the condition layer ranked by their causal effect on the
    refusal-vs-compliance first-token margin of benign prompts.
    ``calibration_size`` prompts are held out, carried in the lock, and used to set the
    base threshold (so it must leave at least 4 prompts to take the lock from). The
    threshold maximises TPR - FPR on them, or with ``max_false_fire`` it is the lowest that
    fires on at most that share of their benign prompts (recall first: harmful prompts
    unlike the lock's score lower); the lock records the rule, and every re-fit to a
    fine-tuned model follows it.
    """
    check_position(position)
    check_window(condition_window)
    check_shrinkage(condition_shrinkage)
    if num_heads < 1:
        raise LockError(f"num_heads must be at least 1, got {num_heads}")
    check_max_false_fire(max_false_fire)
    n_harmful = sum(p.harmful for p in prompts)
    if n_harmful < 4 or len(prompts) - n_harmful < 4:
        raise LockError(
            "a conditional lock needs at least 4 harmful and 4 benign prompts, got "
            f"{n_harmful} harmful and {len(prompts) - n_harmful} benign"
        )
    if not 4 <= calibration_size <= len(prompts) - 4:
        raise LockError(
            f"calibration_size must be in 4..{len(prompts) - 4} for {len(prompts)} prompts "
            f"(the rest take the lock), got {calibration_size}"
        )
    say = progress or (lambda _msg: None)
    num_layers, heads_per_layer, head_dim, hidden = _geometry(model)
    if num_layers < 2:
        raise LockError("a conditional lock needs at least 2 decoder layers")
    if condition_layer is not None and not 0 <= condition_layer < num_layers - 1:
        raise LockError(f"condition layer {condition_layer} not in [0, {num_layers - 2}]")
    labels = torch.tensor([p.harmful for p in prompts])
    train, held = calibration_split(labels, calibration_size, seed)
    say(f"reading activations of {len(prompts)} prompts")
    acts = prompt_activations(
        model, tokenizer, [p.text for p in prompts],
        refusal_start=refusal_start, compliance_start=compliance_start, window=condition_window,
    )
    harm_train, benign_train = train[labels[train]], train[~labels[train]]

    candidates = range(num_layers - 1) if condition_layer is None else [condition_layer]
    best: tuple[float, int, torch.Tensor] | None = None
    for layer in candidates:
        res = acts.pooled[:, layer]
        direction = condition_direction(res[harm_train], res[benign_train], condition_shrinkage)
        auc = round(ranking_auc(condition_scores(res[held], direction), labels[held]), 3)
        if best is None or auc > best[0]:
            best = (auc, layer, direction)
    auc, cond_layer, cond_dir = best
    say(f"condition: layer {cond_layer}, held-out AUC {auc:.3f}")

    shift = acts.heads[harm_train].mean(0) - acts.heads[benign_train].mean(0)  # [L, H, D]
    directions = shift / shift.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    projections = torch.einsum("nlhd,lhd->nlh", acts.heads[train], directions)
    sigmas = projections.std(dim=0)
    say("ranking heads by causal effect on the refusal margin")
    effects = _head_effects(
        model, tokenizer, [prompts[i].text for i in benign_train.tolist()],
        sigmas[..., None] * directions, cond_layer + 1,
        refusal_start=refusal_start, compliance_start=compliance_start,
    )
    available = (num_layers - cond_layer - 1) * heads_per_layer
    order = torch.argsort(effects.flatten(), descending=True)[: min(num_heads, available)]
    chosen = torch.stack([order // heads_per_layer, order % heads_per_layer], dim=1)

    fit = fit_threshold(
        condition_scores(acts.pooled[held, cond_layer], cond_dir), labels[held], max_false_fire
    )
    layers, heads = chosen[:, 0].contiguous(), chosen[:, 1].contiguous()
    reading = acts.pooled[:, cond_layer]
    mean_difference = (condition_direction(reading[harm_train], reading[benign_train])
                       if condition_shrinkage < 1 else None)  # carried for transfer checks
    return conditional_lock(
        base_model=BaseModelRef(id=base_model_id, fingerprint=base_fingerprint),
        architecture=model_type(model),
        geometry=HeadGeometry(num_layers, heads_per_layer, head_dim),
        hidden_size=hidden,
        layers=layers,
        heads=heads,
        directions=directions[layers, heads],
        sigmas=sigmas[layers, heads],
        condition_layer=cond_layer,
        condition_direction=cond_dir,
        condition_window=condition_window,
        condition_shrinkage=float(condition_shrinkage),
        condition_mean_difference=mean_difference,
        threshold=fit.threshold,
        position=position,
        calibration=[prompts[i] for i in held.tolist()],
        data_fingerprint=_prompts_fingerprint(prompts),
        default_alpha=default_alpha,
        creator=creator,
        condition_auc=auc,
        max_false_fire=max_false_fire,
        head_effects=[float(effects[lay, h]) for lay, h in chosen.tolist()],
        refusal_start=refusal_start,
        compliance_start=compliance_start,
        num_calibration=len(held),
    )


def _prompts_fingerprint(prompts: Sequence[LabelledPrompt]) -> str:
    canonical = json.dumps([asdict(p) for p in prompts], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def create_from_recipe(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[LabelledPrompt],
    *,
    recipe: ConditionalRecipe,
    base_model_id: str,
    **options: Any,
) -> MetaSafetyLock:
    """``create_conditional_lock`` with ``recipe``'s options, ``options`` overriding them
    (what ``lock_registry.create.create_lock(..., preset=recipe.name)`` calls)."""
    wrong = next((p for p in prompts if not isinstance(p, LabelledPrompt)), None)
    if wrong is not None:
        raise LockError(
            f"preset {recipe.name!r} makes a conditional lock, from labelled prompts "
            f"(LabelledPrompt), not {type(wrong).__name__}"
        )
    return create_conditional_lock(
        model, tokenizer, prompts, base_model_id=base_model_id, **{**recipe.options(), **options}
    )


def read_prompts(pairs: Path, benign: Path | None, limit: int | None) -> list[LabelledPrompt]:
    """`lock create`'s data for this kind: the pairs' questions as harmful prompts and the
    benign prompts file (a JSON list of strings) as the condition's negatives."""
    from lock_registry.pairs import load_pairs, load_prompt_list

    if benign is None:
        raise LockError("a conditional lock needs benign prompts besides the harmful pairs: "
                        "give --benign FILE (a JSON list of strings)")
    harmful = list(dict.fromkeys(p.question for p in load_pairs(pairs, limit=limit)))
    return labelled_from(harmful, load_prompt_list(benign))
