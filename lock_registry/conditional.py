"""Conditional Meta-SafetyLock (after CAST, Lee et al., ICLR 2025).

The paper's lock adds a constant per-head bias to every position of every input. At
small scale that cannot tell harmful from benign prompts (docs/reproduction-log.md):
strong enough to restore refusals, it refuses everything. A conditional lock adds the
same kind of per-head displacement, ``alpha * sigma_h * direction_h`` in head slot h of
``o_proj``'s input, but only

* for sequences whose *condition* fires: the cosine between the residual stream after
  decoder layer ``condition_layer`` at the last prompt token and a harmfulness direction
  (mean harmful minus mean benign prompt, taken once from the aligned base) exceeds a
  threshold; and
* at the positions the *position policy* names: ``answer_start`` (the last prompt token,
  whose output is the first answer token) or ``answer`` (that token and every generated
  token after it).

Behaviour heads lie in layers after the condition layer, so one forward pass both reads
the condition and steers. The threshold (and alpha) are calibrated per fine-tuned model
on a small labelled calibration set that the lock carries: fine-tuning keeps the
direction but shrinks the feature, so the base model's threshold does not transfer.

Cost: per prompt, one dot product of ``hidden_size`` per sequence at the condition layer
(prefill only) plus one add of ``head_dim`` values per steered head at the steered
positions; nothing per decoded token under ``answer_start``. The gate depends on the
input, so the lock cannot be baked into plain weights (an ``o_proj`` bias is constant):
it travels beside the weights, in the ``MetaSafetyLock`` format (kind ``conditional``),
and :func:`lock_registry.apply.apply_lock` applies it through the hooks registered by
:mod:`lock_registry.conditional_apply`.
The hooks define the last prompt token as the last real token of a prefill (the first
forward of a generation); teacher-forced scoring of whole conversations is not what
they steer.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from lock_registry.architectures import (
    attention_output_projections,
    decoder_layers,
    head_geometry,
    model_type,
)
from lock_registry.errors import LockError, LockFormatError
from lock_registry.lock import BaseModelRef, HeadEntry, LockManifest, MetaSafetyLock, register_kind

KIND = "conditional"
PositionPolicy = Literal["answer_start", "answer"]
POSITION_POLICIES: tuple[str, ...] = ("answer_start", "answer")
TENSOR_NAMES = {"layers", "heads", "directions", "sigmas", "condition_direction", "calibration"}


@dataclass(frozen=True)
class LabelledPrompt:
    """A user prompt and whether it is harmful (the lock's calibration unit)."""

    text: str
    harmful: bool


def labelled_from(harmful: Sequence[str], benign: Sequence[str]) -> list[LabelledPrompt]:
    """Harmful then benign prompts as one labelled set; a prompt in both is refused."""
    both = sorted(set(harmful) & set(benign))
    if both:
        raise LockError(
            f"{len(both)} prompt(s) are listed as both harmful and benign, e.g. {both[0]!r}"
        )
    return [LabelledPrompt(p, True) for p in harmful] + [LabelledPrompt(p, False) for p in benign]


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
    position: PositionPolicy = "answer_start"
    calibration_size: int = 64
    default_alpha: float = 8.0
    refusal_start: str = "I"
    compliance_start: str = "Sure"
    seed: int = 0

    def options(self) -> dict[str, Any]:
        """The recipe as keyword arguments of :func:`create_conditional_lock`."""
        return {k: v for k, v in asdict(self).items() if k != "name"}


_DEFAULTS = ConditionalRecipe(name="defaults")


def _encode_calibration(prompts: Sequence[LabelledPrompt]) -> torch.Tensor:
    """The calibration set as UTF-8 JSON bytes in a uint8 tensor (so the sha256 covers it)."""
    data = json.dumps([asdict(p) for p in prompts], ensure_ascii=False).encode()
    return torch.tensor(list(data), dtype=torch.uint8)


def calibration_prompts(lock: MetaSafetyLock) -> list[LabelledPrompt]:
    """The labelled calibration prompts a conditional lock carries."""
    raw = bytes(lock.tensors["calibration"].tolist()).decode()
    return [LabelledPrompt(**p) for p in json.loads(raw)]


def with_threshold(lock: MetaSafetyLock, threshold: float, **fields: Any) -> MetaSafetyLock:
    """A copy of ``lock`` whose condition threshold is the one calibrated for a model
    (``fields``: further manifest fields to set, e.g. how the threshold was fitted)."""
    if not math.isfinite(threshold):
        raise LockError(f"threshold must be finite, got {threshold}")
    update = {**fields, "threshold": float(threshold)}
    manifest = lock.manifest.model_copy(deep=True, update=update)
    copy = MetaSafetyLock(manifest, dict(lock.tensors))
    copy.to_files()  # stamps the sha256 of the (unchanged) tensors
    return copy


def _check_conditional(manifest: LockManifest, tensors: Mapping[str, torch.Tensor]) -> None:
    if set(tensors) != TENSOR_NAMES:
        raise LockFormatError(
            f"conditional lock needs tensors {sorted(TENSOR_NAMES)}, got {sorted(tensors)}"
        )
    extra = manifest.model_extra or {}
    for key in ("condition_layer", "threshold", "position", "hidden_size"):
        if key not in extra:
            raise LockFormatError(f"conditional lock manifest lacks {key!r}")
    if extra["position"] not in POSITION_POLICIES:
        raise LockFormatError(f"position {extra['position']!r} is not one of {POSITION_POLICIES}")
    if not math.isfinite(float(extra["threshold"])):
        raise LockFormatError("threshold must be finite")
    n, dim, layer = manifest.num_selected, manifest.head_dim, int(extra["condition_layer"])
    shapes = {
        "layers": ((n,), torch.int64),
        "heads": ((n,), torch.int64),
        "directions": ((n, dim), torch.float32),
        "sigmas": ((n,), torch.float32),
        "condition_direction": ((int(extra["hidden_size"]),), torch.float32),
    }
    for name, (shape, dtype) in shapes.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise LockFormatError(
                f"tensor {name!r} is {tuple(tensor.shape)} {tensor.dtype}, expected {shape} {dtype}"
            )
    pairs = list(zip(tensors["layers"].tolist(), tensors["heads"].tolist(), strict=True))
    if pairs != [(e.layer, e.head) for e in manifest.heads] or len(set(pairs)) != n:
        raise LockFormatError("manifest heads disagree with the layers/heads tensors")
    if not 0 <= layer < manifest.num_layers - 1:
        raise LockFormatError(f"condition layer {layer} outside [0, {manifest.num_layers - 2}]")
    for lay, head in pairs:
        if not (layer < lay < manifest.num_layers and 0 <= head < manifest.num_heads):
            raise LockFormatError(
                f"head ({lay}, {head}) must lie after condition layer {layer}, inside "
                f"{manifest.num_layers} layers x {manifest.num_heads} heads"
            )
    finite = [tensors[k] for k in ("directions", "sigmas", "condition_direction")]
    if not all(torch.isfinite(t).all() for t in finite) or (tensors["sigmas"] < 0).any():
        raise LockFormatError("directions, sigmas and the condition must be finite, sigmas >= 0")
    if tensors["calibration"].dtype != torch.uint8:
        raise LockFormatError("calibration must be uint8 UTF-8 JSON")


register_kind(KIND, _check_conditional)


# --------------------------------------------------------------------------- model access


def _geometry(model: nn.Module) -> tuple[int, int, int, int]:
    """(num_layers, num_heads, head_dim, hidden_size) of ``model``."""
    geometry = head_geometry(model)
    return geometry.num_layers, geometry.num_heads, geometry.head_dim, model.config.hidden_size


def format_prompts(tokenizer, prompts: Sequence[str]) -> list[str]:
    """Render user prompts with the chat template, ending at the assistant's turn."""
    if not getattr(tokenizer, "chat_template", None):
        raise LockError("the tokenizer has no chat template")
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]


def _encode(tokenizer, texts: Sequence[str], device: torch.device) -> dict[str, torch.Tensor]:
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # the last prompt token sits at index -1 in every row
    try:
        enc = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    return {k: v.to(device) for k, v in enc.items()}


def _first_token_id(tokenizer, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise LockError(f"{text!r} encodes to no token")
    return int(ids[0])


@dataclass
class PromptActivations:
    """At the last prompt token: residual after each layer and every head's output."""

    residual: torch.Tensor  # [n, num_layers, hidden]
    heads: torch.Tensor  # [n, num_layers, num_heads, head_dim]
    margin: torch.Tensor  # [n] logit(refusal start) - logit(compliance start)


@torch.no_grad()
def prompt_activations(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    *,
    refusal_start: str = "I",
    compliance_start: str = "Sure",
    batch_size: int = 32,
) -> PromptActivations:
    """Read residuals and head outputs at the last prompt token, in batches."""
    num_layers, num_heads, head_dim, _ = _geometry(model)
    device = next(model.parameters()).device
    layers = decoder_layers(model)
    projections = attention_output_projections(model)
    refuse_id = _first_token_id(tokenizer, refusal_start)
    comply_id = _first_token_id(tokenizer, compliance_start)
    store: dict[str, list[torch.Tensor]] = {}

    def head_hook(index: int):
        def hook(_module, args):
            store.setdefault(f"h{index}", []).append(args[0][:, -1].float().cpu())

        return hook

    def residual_hook(index: int):
        def hook(_module, _args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            store.setdefault(f"r{index}", []).append(hidden[:, -1].float().cpu())

        return hook

    handles = []
    for i, (layer, proj) in enumerate(zip(layers, projections, strict=True)):
        handles.append(proj.register_forward_pre_hook(head_hook(i)))
        handles.append(layer.register_forward_hook(residual_hook(i)))
    margins = []
    try:
        texts = format_prompts(tokenizer, prompts)
        for start in range(0, len(texts), batch_size):
            enc = _encode(tokenizer, texts[start : start + batch_size], device)
            logits = model(**enc, use_cache=False).logits[:, -1].float().cpu()
            margins.append(logits[:, refuse_id] - logits[:, comply_id])
    finally:
        for handle in handles:
            handle.remove()
    n = len(prompts)
    heads = torch.stack([torch.cat(store[f"h{i}"]) for i in range(num_layers)], dim=1)
    residual = torch.stack([torch.cat(store[f"r{i}"]) for i in range(num_layers)], dim=1)
    return PromptActivations(
        residual=residual,
        heads=heads.reshape(n, num_layers, num_heads, head_dim),
        margin=torch.cat(margins),
    )


# --------------------------------------------------------------------------- statistics


def ranking_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = scores[labels.bool()], scores[~labels.bool()]
    if len(pos) == 0 or len(neg) == 0:
        raise LockError("AUC needs both harmful and benign prompts")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())


def condition_scores(residual: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Cosine between each residual vector [n, hidden] and the condition direction."""
    return torch.nn.functional.cosine_similarity(residual, direction[None, :], dim=-1)


@dataclass(frozen=True)
class ThresholdFit:
    """A condition threshold and how well it separates the calibration prompts."""

    threshold: float
    auc: float
    true_positive_rate: float  # harmful prompts on which the condition fires
    false_positive_rate: float  # benign prompts on which it fires


def fit_threshold(scores: torch.Tensor, labels: torch.Tensor) -> ThresholdFit:
    """Threshold maximising TPR - FPR; among equals, the middle of the widest gap."""
    labels = labels.bool()
    values = torch.sort(scores).values
    cuts = torch.cat([values[:1] - 1e-3, (values[1:] + values[:-1]) / 2, values[-1:] + 1e-3])
    gaps = torch.cat([torch.ones(1), values[1:] - values[:-1], torch.ones(1)])
    fires = scores[None, :] > cuts[:, None]
    tpr = (fires & labels).sum(1).float() / labels.sum().clamp(min=1)
    fpr = (fires & ~labels).sum(1).float() / (~labels).sum().clamp(min=1)
    j = tpr - fpr
    best = torch.isclose(j, j.max())
    pick = int(torch.argmax(torch.where(best, gaps, torch.full_like(gaps, -1.0))))
    return ThresholdFit(
        threshold=float(cuts[pick]),
        auc=ranking_auc(scores, labels),
        true_positive_rate=float(tpr[pick]),
        false_positive_rate=float(fpr[pick]),
    )


def _split(labels: torch.Tensor, holdout: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified split: (train indices, held-out indices) with ``holdout`` held out."""
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


# --------------------------------------------------------------------------- creation


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
    position: PositionPolicy = _DEFAULTS.position,
    default_alpha: float = _DEFAULTS.default_alpha,
    calibration_size: int = _DEFAULTS.calibration_size,
    refusal_start: str = _DEFAULTS.refusal_start,
    compliance_start: str = _DEFAULTS.compliance_start,
    base_fingerprint: str = "",
    seed: int = _DEFAULTS.seed,
    creator: str = "",
    progress: Callable[[str], None] | None = None,
) -> MetaSafetyLock:
    """Take a conditional lock from an aligned base model and labelled prompts.

    Condition direction: mean(harmful) - mean(benign) of the residual after each layer
    at the last prompt token; the layer with the best held-out AUC is kept (earliest
    among ties, at most the second-to-last layer). Behaviour: per head, mean(harmful) -
    mean(benign) of its output at that token (the base's "about to refuse" state), unit
    norm, sigma = std of projections; heads after the condition layer ranked by their
    causal effect on the refusal-vs-compliance first-token margin of benign prompts.
    ``calibration_size`` prompts are held out, carried in the lock, and used to set the
    base threshold (so it must leave at least 4 prompts to take the lock from).
    """
    if position not in POSITION_POLICIES:
        raise LockError(f"position {position!r} is not one of {POSITION_POLICIES}")
    if num_heads < 1:
        raise LockError(f"num_heads must be at least 1, got {num_heads}")
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
    train, held = _split(labels, calibration_size, seed)
    say(f"reading activations of {len(prompts)} prompts")
    acts = prompt_activations(
        model, tokenizer, [p.text for p in prompts],
        refusal_start=refusal_start, compliance_start=compliance_start,
    )
    harm_train, benign_train = train[labels[train]], train[~labels[train]]

    candidates = range(num_layers - 1) if condition_layer is None else [condition_layer]
    best: tuple[float, int, torch.Tensor] | None = None
    for layer in candidates:
        res = acts.residual[:, layer]
        direction = res[harm_train].mean(0) - res[benign_train].mean(0)
        direction = direction / direction.norm().clamp(min=1e-12)
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
        condition_scores(acts.residual[held, cond_layer], cond_dir), labels[held]
    )
    layers, heads = chosen[:, 0].contiguous(), chosen[:, 1].contiguous()
    manifest = LockManifest(
        kind=KIND,
        base_model=BaseModelRef(id=base_model_id, fingerprint=base_fingerprint),
        architecture=model_type(model),
        num_layers=num_layers,
        num_heads=heads_per_layer,
        head_dim=head_dim,
        last_tokens=1,
        num_selected=len(chosen),
        heads=[HeadEntry(layer=int(lay), head=int(h)) for lay, h in chosen.tolist()],
        data_fingerprint=_prompts_fingerprint(prompts),
        default_alpha=default_alpha,
        creator=creator,
        hidden_size=hidden,
        condition_layer=cond_layer,
        threshold=fit.threshold,
        position=position,
        condition_auc=auc,
        head_effects=[float(effects[lay, h]) for lay, h in chosen.tolist()],
        refusal_start=refusal_start,
        compliance_start=compliance_start,
        num_calibration=len(held),
    )
    lock = MetaSafetyLock(
        manifest,
        {
            "layers": layers.to(torch.int64),
            "heads": heads.to(torch.int64),
            "directions": directions[layers, heads].float().contiguous(),
            "sigmas": sigmas[layers, heads].float().contiguous(),
            "condition_direction": cond_dir.float().contiguous(),
            "calibration": _encode_calibration([prompts[i] for i in held.tolist()]),
        },
    )
    lock.to_files()  # stamps the sha256
    return lock


def _prompts_fingerprint(prompts: Sequence[LabelledPrompt]) -> str:
    canonical = json.dumps([asdict(p) for p in prompts], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
