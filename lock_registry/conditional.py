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
it travels beside the weights and is applied with :func:`apply_conditional_lock`.
The hooks define the last prompt token as the last real token of a prefill (the first
forward of a generation); teacher-forced scoring of whole conversations is not what
they steer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lock_registry.architectures import (
    attention_output_projections,
    decoder_layers,
    head_geometry,
)
from lock_registry.errors import LockError, LockFormatError, LockIntegrityError, LockShapeError

KIND = "conditional"
FORMAT_VERSION = 1
TENSORS_FILE = "lock.safetensors"
MANIFEST_FILE = "manifest.json"
PositionPolicy = Literal["answer_start", "answer"]
POSITION_POLICIES: tuple[str, ...] = ("answer_start", "answer")


@dataclass(frozen=True)
class LabelledPrompt:
    """A user prompt and whether it is harmful (the lock's calibration unit)."""

    text: str
    harmful: bool


@dataclass(frozen=True)
class ConditionalManifest:
    """Everything about a conditional lock except its tensors."""

    base_model_id: str
    architecture: str
    num_layers: int
    num_heads: int
    head_dim: int
    hidden_size: int
    condition_layer: int  # residual stream after this decoder layer (0-based)
    threshold: float  # calibrated on the base; recalibrate per fine-tuned model
    position: PositionPolicy
    default_alpha: float
    heads: list[dict]  # [{"layer", "head", "effect"}] in rank order
    condition_auc: float  # held-out ranking AUC of the condition on the base
    refusal_start: str
    compliance_start: str
    num_calibration: int
    created_at: str
    kind: str = KIND
    format_version: int = FORMAT_VERSION
    sha256: str = ""

    def __post_init__(self) -> None:
        if self.kind != KIND:
            raise LockFormatError(f"manifest kind is {self.kind!r}, expected {KIND!r}")
        if self.position not in POSITION_POLICIES:
            raise LockFormatError(
                f"position policy {self.position!r} is not one of {POSITION_POLICIES}"
            )


@dataclass
class ConditionalLock:
    """Condition direction + per-head behaviour directions + carried calibration set."""

    manifest: ConditionalManifest
    head_index: torch.Tensor  # int64 [N, 2]: (layer, head)
    directions: torch.Tensor  # float32 [N, head_dim], unit norm
    sigmas: torch.Tensor  # float32 [N]
    condition_direction: torch.Tensor  # float32 [hidden_size], unit norm
    calibration: list[LabelledPrompt] = field(default_factory=list)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``lock.safetensors`` (tensors + calibration set) and ``manifest.json``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tensors_path = out / TENSORS_FILE
        calibration = json.dumps([asdict(p) for p in self.calibration])
        save_file(
            {
                "head_index": self.head_index.to(torch.int64).contiguous(),
                "directions": self.directions.float().contiguous(),
                "sigmas": self.sigmas.float().contiguous(),
                "condition_direction": self.condition_direction.float().contiguous(),
            },
            str(tensors_path),
            metadata={"kind": KIND, "calibration": calibration},
        )
        digest = _sha256(tensors_path)
        manifest = ConditionalManifest(**{**asdict(self.manifest), "sha256": digest})
        (out / MANIFEST_FILE).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
        self.manifest = manifest
        return out

    @classmethod
    def load(cls, lock_dir: str | Path) -> ConditionalLock:
        """Load and verify a saved lock; a hash mismatch or a wrong kind is refused."""
        root = Path(lock_dir)
        manifest_path, tensors_path = root / MANIFEST_FILE, root / TENSORS_FILE
        for path in (manifest_path, tensors_path):
            if not path.is_file():
                raise LockFormatError(f"{path} is missing: not a conditional lock dir")
        try:
            raw = json.loads(manifest_path.read_text())
            manifest = ConditionalManifest(**raw)
        except (json.JSONDecodeError, TypeError) as exc:
            raise LockFormatError(f"{manifest_path} is not a valid manifest: {exc}") from exc
        digest = _sha256(tensors_path)
        if digest != manifest.sha256:
            raise LockIntegrityError(
                f"{tensors_path} sha256 {digest} does not match the manifest's "
                f"{manifest.sha256}: the lock was modified, refusing it"
            )
        tensors = load_file(str(tensors_path))
        from safetensors import safe_open

        with safe_open(str(tensors_path), framework="pt") as handle:
            calibration = json.loads((handle.metadata() or {}).get("calibration", "[]"))
        lock = cls(
            manifest=manifest,
            head_index=tensors["head_index"],
            directions=tensors["directions"],
            sigmas=tensors["sigmas"],
            condition_direction=tensors["condition_direction"],
            calibration=[LabelledPrompt(**p) for p in calibration],
        )
        lock.check_consistent()
        return lock

    def check_consistent(self) -> None:
        """Refuse tensors whose shapes disagree with the manifest."""
        m, n = self.manifest, len(self.manifest.heads)
        expected = {
            "head_index": (self.head_index.shape, (n, 2)),
            "directions": (self.directions.shape, (n, m.head_dim)),
            "sigmas": (self.sigmas.shape, (n,)),
            "condition_direction": (self.condition_direction.shape, (m.hidden_size,)),
        }
        for name, (got, want) in expected.items():
            if tuple(got) != want:
                raise LockShapeError(f"{name} has shape {tuple(got)}, manifest says {want}")
        if n and int(self.head_index[:, 0].min()) <= m.condition_layer:
            raise LockShapeError(
                f"behaviour heads must lie after condition layer {m.condition_layer}"
            )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    num_heads: int = 16,
    condition_layer: int | None = None,
    position: PositionPolicy = "answer_start",
    default_alpha: float = 8.0,
    calibration_size: int = 64,
    refusal_start: str = "I",
    compliance_start: str = "Sure",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ConditionalLock:
    """Take a conditional lock from an aligned base model and labelled prompts.

    Condition direction: mean(harmful) - mean(benign) of the residual after each layer
    at the last prompt token; the layer with the best held-out AUC is kept (earliest
    among ties, at most the second-to-last layer). Behaviour: per head, mean(harmful) -
    mean(benign) of its output at that token (the base's "about to refuse" state), unit
    norm, sigma = std of projections; heads after the condition layer ranked by their
    causal effect on the refusal-vs-compliance first-token margin of benign prompts.
    ``calibration_size`` prompts are held out, carried in the lock, and used to set the
    base threshold.
    """
    if position not in POSITION_POLICIES:
        raise LockError(f"position {position!r} is not one of {POSITION_POLICIES}")
    say = progress or (lambda _msg: None)
    num_layers, heads_per_layer, head_dim, hidden = _geometry(model)
    if num_layers < 2:
        raise LockError("a conditional lock needs at least 2 decoder layers")
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
        if not 0 <= layer < num_layers - 1:
            raise LockError(f"condition layer {layer} not in [0, {num_layers - 2}]")
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
    manifest = ConditionalManifest(
        base_model_id=base_model_id,
        architecture=type(model).__name__,
        num_layers=num_layers,
        num_heads=heads_per_layer,
        head_dim=head_dim,
        hidden_size=hidden,
        condition_layer=cond_layer,
        threshold=fit.threshold,
        position=position,
        default_alpha=default_alpha,
        heads=[
            {"layer": int(l), "head": int(h), "effect": float(effects[l, h])}
            for l, h in chosen.tolist()
        ],
        condition_auc=auc,
        refusal_start=refusal_start,
        compliance_start=compliance_start,
        num_calibration=len(held),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return ConditionalLock(
        manifest=manifest,
        head_index=chosen.to(torch.int64),
        directions=directions[chosen[:, 0], chosen[:, 1]].contiguous(),
        sigmas=sigmas[chosen[:, 0], chosen[:, 1]].contiguous(),
        condition_direction=cond_dir.contiguous(),
        calibration=[prompts[i] for i in held.tolist()],
    )
