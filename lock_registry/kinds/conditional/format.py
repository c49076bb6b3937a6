"""The conditional lock's format: manifest fields, tensors, calibration set, constructor.

Tensors (all covered by the manifest's sha256): ``layers`` and ``heads`` (int64 [N]: the
behaviour heads, all after the condition layer), ``directions`` (float32 [N, head_dim])
and ``sigmas`` (float32 [N]) as in the head_bias kind, ``condition_direction`` (float32
[hidden_size]: the harmfulness direction) and ``calibration`` (uint8: the labelled
calibration prompts as UTF-8 JSON); a lock whose ``condition_shrinkage`` is below 1 also
carries ``condition_mean_difference`` (float32 [hidden_size]: the base's unit mean
difference at the condition layer, what transfer checks re-measure), and a lock fitted to
a fine-tuned model may carry ``veto_direction`` (float32 [hidden_size]: its task veto,
``veto.py``). Manifest fields: ``ConditionalFields``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from pydantic import field_validator

from lock_registry.architectures import HeadGeometry
from lock_registry.errors import LockError, LockFormatError
from lock_registry.kinds import KindFields
from lock_registry.kinds.conditional.condition import (
    check_max_false_fire,
    check_shrinkage,
    check_window,
)
from lock_registry.lock import BaseModelRef, HeadEntry, LockManifest, MetaSafetyLock

KIND = "conditional"
PositionPolicy = Literal["answer_start", "answer"]
POSITION_POLICIES: tuple[str, ...] = ("answer_start", "answer")
TENSOR_NAMES = {"layers", "heads", "directions", "sigmas", "condition_direction", "calibration"}
VETO_TENSOR = "veto_direction"  # optional: present exactly when the manifest has a veto_layer
MEAN_DIFFERENCE_TENSOR = "condition_mean_difference"  # present exactly when condition_shrinkage < 1


def check_position(position: Any) -> None:
    """A steering position is one of `POSITION_POLICIES`."""
    if position not in POSITION_POLICIES:
        raise LockError(f"position {position!r} is not one of {', '.join(POSITION_POLICIES)}")


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


def _checked(check: Callable[[Any], None], value: Any) -> Any:
    """``value`` once ``check`` passes; its LockError raised as a ValueError, which pydantic
    reports as the field's problem."""
    try:
        check(value)
    except LockError as e:
        raise ValueError(str(e)) from None
    return value


class ConditionalFields(KindFields):
    """The manifest fields of a conditional lock (validated on load)."""

    condition_layer: int  # decoder layer whose residual the condition reads
    condition_window: int = 1  # ... averaged over the prompt's last this many tokens (1: the last)
    condition_shrinkage: float = 1.0  # direction estimator: 1 = mean difference, < 1 = shrinkage LDA
    threshold: float  # the condition fires above this cosine
    max_false_fire: float | None = None  # threshold rule: None = best TPR - FPR; q = recall first
    position: PositionPolicy  # which positions are steered
    hidden_size: int  # length of the condition direction
    condition_auc: float | None = None  # held-out AUC of the condition at creation
    head_effects: list[float] | None = None  # per head: effect on the refusal margin
    refusal_start: str | None = None  # first token of a refusal (the margin's plus side)
    compliance_start: str | None = None  # ... of a compliance (its minus side)
    num_calibration: int | None = None  # labelled prompts carried in the lock
    threshold_fit: dict[str, Any] | None = None  # how `threshold` was re-fitted to a model
    veto_layer: int | None = None  # task veto (veto.py): layer whose residual it reads
    veto_threshold: float | None = None  # ... the condition is vetoed at or below this cosine
    veto_fit: dict[str, Any] | None = None  # how the veto was fitted to a model

    @field_validator("position", mode="before")
    @classmethod
    def _known_position(cls, value: Any) -> Any:
        return _checked(check_position, value)

    @field_validator("condition_window")
    @classmethod
    def _a_window(cls, value: int) -> int:
        return _checked(check_window, value)

    @field_validator("condition_shrinkage", mode="before")
    @classmethod
    def _a_shrinkage(cls, value: Any) -> Any:
        return _checked(check_shrinkage, value)

    @field_validator("max_false_fire")
    @classmethod
    def _a_share(cls, value: float | None) -> float | None:
        return _checked(check_max_false_fire, value)

    @property
    def condition_threshold(self) -> float | None:
        return self.threshold


def encode_calibration(prompts: Sequence[LabelledPrompt]) -> torch.Tensor:
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
    return _copy(lock, {**fields, "threshold": float(threshold)})


def with_position(lock: MetaSafetyLock, position: str) -> MetaSafetyLock:
    """A copy of ``lock`` that steers at ``position`` (one of ``POSITION_POLICIES``) once its
    condition fires; its tensors are unchanged, its manifest (and so its sha256) is not."""
    check_position(position)
    return _copy(lock, {"position": position})


def with_veto(lock: MetaSafetyLock, layer: int, direction: torch.Tensor, threshold: float,
              **fields: Any) -> MetaSafetyLock:
    """A copy of ``lock`` with a task veto: its condition counts as fired only where the
    cosine of the residual after ``layer`` with ``direction`` exceeds ``threshold``
    (``fields``: further manifest fields, e.g. how the veto was fitted). The tensors
    change, so the sha256 does too."""
    if not math.isfinite(threshold):
        raise LockError(f"veto threshold must be finite, got {threshold}")
    return _copy(lock, {**fields, "veto_layer": int(layer), "veto_threshold": float(threshold)},
                 {VETO_TENSOR: direction.float().contiguous()})


def _copy(lock: MetaSafetyLock, fields: dict[str, Any], tensors: Mapping[str, torch.Tensor] | None = None
          ) -> MetaSafetyLock:
    """A copy of ``lock`` with ``fields`` set in its manifest and ``tensors`` added or
    replaced, its sha256 stamped anew (the tensors' hash: unchanged where they are)."""
    manifest = lock.manifest.model_copy(deep=True, update=fields)
    copy = MetaSafetyLock(manifest, {**lock.tensors, **(tensors or {})})
    copy.to_files()
    return copy


def check_conditional(
    manifest: LockManifest, fields: ConditionalFields, tensors: Mapping[str, torch.Tensor]
) -> None:
    vetoed = fields.veto_layer is not None
    shrunk = fields.condition_shrinkage < 1
    expected = TENSOR_NAMES | ({VETO_TENSOR} if vetoed else set()) | ({MEAN_DIFFERENCE_TENSOR} if shrunk else set())
    if set(tensors) != expected:
        raise LockFormatError(
            f"conditional lock {'with' if vetoed else 'without'} a veto_layer"
            f"{f' and with condition_shrinkage {fields.condition_shrinkage}' if shrunk else ''} "
            f"needs tensors {sorted(expected)}, got {sorted(tensors)}"
        )
    if vetoed != (fields.veto_threshold is not None):
        raise LockFormatError("veto_layer and veto_threshold come together")
    if not math.isfinite(fields.threshold):
        raise LockFormatError("threshold must be finite")
    n, dim, layer = manifest.num_selected, manifest.head_dim, fields.condition_layer
    shapes = {
        "layers": ((n,), torch.int64),
        "heads": ((n,), torch.int64),
        "directions": ((n, dim), torch.float32),
        "sigmas": ((n,), torch.float32),
        "condition_direction": ((fields.hidden_size,), torch.float32),
        **({VETO_TENSOR: ((fields.hidden_size,), torch.float32)} if vetoed else {}),
        **({MEAN_DIFFERENCE_TENSOR: ((fields.hidden_size,), torch.float32)} if shrunk else {}),
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
    if vetoed:
        first = min(lay for lay, _ in pairs) if pairs else manifest.num_layers
        if not 0 <= fields.veto_layer < first or not math.isfinite(fields.veto_threshold):
            raise LockFormatError(
                f"veto layer {fields.veto_layer} must lie before the first steered layer {first}, "
                "and its threshold must be finite"
            )
    finite = [tensors[k] for k in ("directions", "sigmas", "condition_direction")]
    finite += [tensors[VETO_TENSOR]] if vetoed else []
    finite += [tensors[MEAN_DIFFERENCE_TENSOR]] if shrunk else []
    if not all(torch.isfinite(t).all() for t in finite) or (tensors["sigmas"] < 0).any():
        raise LockFormatError("directions, sigmas and the condition must be finite, sigmas >= 0")
    if tensors["calibration"].dtype != torch.uint8:
        raise LockFormatError("calibration must be uint8 UTF-8 JSON")


def conditional_lock(
    *,
    base_model: BaseModelRef,
    architecture: str,
    geometry: HeadGeometry,
    hidden_size: int,
    layers: torch.Tensor,
    heads: torch.Tensor,
    directions: torch.Tensor,
    sigmas: torch.Tensor,
    condition_layer: int,
    condition_direction: torch.Tensor,
    threshold: float,
    position: PositionPolicy,
    calibration: Sequence[LabelledPrompt],
    data_fingerprint: str,
    default_alpha: float,
    creator: str = "",
    parent: str | None = None,
    condition_mean_difference: torch.Tensor | None = None,
    **extra: Any,
) -> MetaSafetyLock:
    """Build a conditional lock from its parts (``extra``: further manifest fields, e.g.
    ``condition_auc``, in the order they are to appear; ``condition_mean_difference`` is
    needed exactly when ``condition_shrinkage`` is below 1); stamps the sha256."""
    manifest = LockManifest(
        kind=KIND,
        base_model=base_model,
        architecture=architecture,
        num_layers=geometry.num_layers,
        num_heads=geometry.num_heads,
        head_dim=geometry.head_dim,
        last_tokens=1,
        num_selected=int(layers.numel()),
        heads=[
            HeadEntry(layer=int(lay), head=int(h))
            for lay, h in zip(layers.tolist(), heads.tolist(), strict=True)
        ],
        data_fingerprint=data_fingerprint,
        default_alpha=default_alpha,
        creator=creator,
        parent=parent,
        hidden_size=hidden_size,
        condition_layer=condition_layer,
        threshold=threshold,
        position=position,
        **extra,
    )
    lock = MetaSafetyLock(
        manifest,
        {
            "layers": layers.to(torch.int64),
            "heads": heads.to(torch.int64),
            "directions": directions.float().contiguous(),
            "sigmas": sigmas.float().contiguous(),
            "condition_direction": condition_direction.float().contiguous(),
            "calibration": encode_calibration(calibration),
            **({} if condition_mean_difference is None
               else {MEAN_DIFFERENCE_TENSOR: condition_mean_difference.float().contiguous()}),
        },
    )
    lock.to_files()  # stamps the sha256
    return lock
