"""`MetaSafetyLock`: the lock as a typed object, saved as safetensors + a JSON manifest.

A lock directory holds exactly two files: `lock.safetensors` (the tensors) and
`manifest.json` (what the lock is, where it came from, and the sha256 of the tensors
file). Loading verifies the hash before it parses a single tensor. Never pickle.

The format is extensible by `kind`: each kind registers a check of its tensors
(`register_kind`); `head_bias` (the paper's lock) is built in.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from lock_registry.architectures import HeadGeometry
from lock_registry.errors import LockFormatError, LockIntegrityError

FORMAT_VERSION = 1
TENSORS_FILE = "lock.safetensors"
MANIFEST_FILE = "manifest.json"
DEFAULT_ALPHA = 6.0  # the paper's intervention strength


def library_version() -> str:
    """The installed `safetylock` version, stamped into every manifest."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("safetylock")
    except PackageNotFoundError:
        return "0+unknown"


def utc_now() -> str:
    """Current time as an ISO-8601 UTC string (seconds)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class BaseModelRef(BaseModel):
    """The base model a lock was taken from: its id and a revision fingerprint."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, description="hub id or local path name of the base model")
    fingerprint: str = Field(description="model_fingerprint() of the base, '' if unknown")


class HeadEntry(BaseModel):
    """One chosen attention head and its held-out probe accuracy (None when imported)."""

    model_config = ConfigDict(extra="forbid")
    layer: int = Field(ge=0)
    head: int = Field(ge=0)
    probe_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)


class LockManifest(BaseModel):
    """What a lock is. Other kinds may add fields (extra keys are kept, not dropped)."""

    model_config = ConfigDict(extra="allow")
    format_version: int = FORMAT_VERSION
    kind: str = "head_bias"
    base_model: BaseModelRef
    architecture: str = Field(description="transformers model_type, e.g. 'llama'")
    num_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    last_tokens: int = Field(ge=0, description="K: activations read at the last K tokens")
    num_selected: int = Field(ge=0, description="N: number of heads in the lock")
    heads: list[HeadEntry]
    data_fingerprint: str = Field(description="sha256 of the data the lock was taken from")
    default_alpha: float = DEFAULT_ALPHA
    created_at: str = Field(default_factory=utc_now)
    library_version: str = Field(default_factory=library_version)
    creator: str = ""
    parent: str | None = Field(default=None, description="null or 'id@vN' this lock derives from")
    sha256: str = Field(default="", description="hex sha256 of lock.safetensors")

    @property
    def geometry(self) -> HeadGeometry:
        return HeadGeometry(self.num_layers, self.num_heads, self.head_dim)


TensorCheck = Callable[[LockManifest, Mapping[str, torch.Tensor]], None]
_KIND_CHECKS: dict[str, TensorCheck] = {}


def register_kind(kind: str, check: TensorCheck) -> None:
    """Admit a lock kind: `check(manifest, tensors)` raises LockFormatError when they disagree."""
    _KIND_CHECKS[kind] = check


def known_kinds() -> list[str]:
    return sorted(_KIND_CHECKS)


@dataclass
class MetaSafetyLock:
    """A lock: its manifest and its named tensors (see the kind's check for which)."""

    manifest: LockManifest
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check = _KIND_CHECKS.get(self.manifest.kind)
        if check is None:
            raise LockFormatError(
                f"unknown lock kind {self.manifest.kind!r} (known: {known_kinds()})"
            )
        check(self.manifest, self.tensors)

    # -- the head_bias kind -------------------------------------------------------------
    @classmethod
    def head_bias(
        cls,
        *,
        base_model: BaseModelRef,
        architecture: str,
        geometry: HeadGeometry,
        layers: torch.Tensor,
        heads: torch.Tensor,
        directions: torch.Tensor,
        sigmas: torch.Tensor,
        last_tokens: int,
        data_fingerprint: str,
        probe_accuracies: list[float | None] | None = None,
        default_alpha: float = DEFAULT_ALPHA,
        creator: str = "",
        parent: str | None = None,
        **extra: object,
    ) -> MetaSafetyLock:
        """Build a paper-style lock: per head a unit direction and the sigma of projections."""
        n = int(layers.numel())
        accuracies = probe_accuracies if probe_accuracies is not None else [None] * n
        entries = [
            HeadEntry(layer=int(layer), head=int(head), probe_accuracy=acc)
            for layer, head, acc in zip(layers.tolist(), heads.tolist(), accuracies, strict=True)
        ]
        manifest = LockManifest(
            kind="head_bias",
            base_model=base_model,
            architecture=architecture,
            num_layers=geometry.num_layers,
            num_heads=geometry.num_heads,
            head_dim=geometry.head_dim,
            last_tokens=last_tokens,
            num_selected=n,
            heads=entries,
            data_fingerprint=data_fingerprint,
            default_alpha=default_alpha,
            creator=creator,
            parent=parent,
            **extra,
        )
        tensors = {
            "layers": layers.to(torch.int64).contiguous(),
            "heads": heads.to(torch.int64).contiguous(),
            "directions": directions.to(torch.float32).contiguous(),
            "sigmas": sigmas.to(torch.float32).contiguous(),
        }
        lock = cls(manifest, tensors)
        lock.to_files()  # stamps sha256 into the manifest
        return lock

    @property
    def geometry(self) -> HeadGeometry:
        return self.manifest.geometry

    @property
    def head_list(self) -> list[tuple[int, int]]:
        """The chosen heads as (layer, head) pairs, in stored order."""
        return [(entry.layer, entry.head) for entry in self.manifest.heads]

    # -- serialisation ------------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        """The two files of a lock directory as bytes; stamps the tensors' sha256.

        The same tensors always give the same bytes, so the same sha256: the metadata holds
        one key, since safetensors writes a metadata map in an arbitrary order (the kind is
        the manifest's).
        """
        data = save_safetensors(self.tensors, metadata={"format": "pt"})
        self.manifest.sha256 = hashlib.sha256(data).hexdigest()
        manifest = json.dumps(self.manifest.model_dump(mode="json"), indent=2) + "\n"
        return {TENSORS_FILE: data, MANIFEST_FILE: manifest.encode()}

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], source: str = "<memory>") -> MetaSafetyLock:
        """Parse and verify the two files of a lock directory (`source` names them in errors)."""
        for name in (MANIFEST_FILE, TENSORS_FILE):
            if name not in files:
                raise LockFormatError(f"{source}: missing {name}")
        try:
            raw = json.loads(files[MANIFEST_FILE])
            manifest = LockManifest.model_validate(raw)
        except (ValueError, ValidationError) as exc:
            raise LockFormatError(f"{source}/{MANIFEST_FILE}: invalid manifest: {exc}") from exc
        if manifest.format_version != FORMAT_VERSION:
            raise LockFormatError(
                f"{source}: format_version {manifest.format_version} is not supported "
                f"(this library reads {FORMAT_VERSION})"
            )
        data = files[TENSORS_FILE]
        actual = hashlib.sha256(data).hexdigest()
        if actual != manifest.sha256:
            raise LockIntegrityError(
                f"{source}/{TENSORS_FILE}: sha256 {actual} does not match the manifest's "
                f"{manifest.sha256 or '(empty)'}; the lock was altered or corrupted"
            )
        try:
            tensors = load_safetensors(data)
        except (SafetensorError, ValueError) as exc:
            raise LockFormatError(f"{source}/{TENSORS_FILE}: unreadable tensors: {exc}") from exc
        return cls(manifest, dict(tensors))

    def save(self, directory: str | Path) -> Path:
        """Write `lock.safetensors` and then `manifest.json` into `directory` (created)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        files = self.to_files()
        for name in (TENSORS_FILE, MANIFEST_FILE):  # manifest last: it vouches for the tensors
            tmp = out / f".{name}.tmp"
            tmp.write_bytes(files[name])
            tmp.replace(out / name)
        return out

    @classmethod
    def load(cls, directory: str | Path) -> MetaSafetyLock:
        """Read a lock directory, verifying the tensors' sha256 against the manifest."""
        src = Path(directory)
        if not src.is_dir():
            raise LockFormatError(f"{src}: not a lock directory")
        files = {}
        for name in (MANIFEST_FILE, TENSORS_FILE):
            path = src / name
            if not path.is_file():
                raise LockFormatError(f"{src}: missing {name}")
            files[name] = path.read_bytes()
        return cls.from_files(files, source=str(src))


def _check_head_bias(manifest: LockManifest, tensors: Mapping[str, torch.Tensor]) -> None:
    expected = {"layers", "heads", "directions", "sigmas"}
    if set(tensors) != expected:
        raise LockFormatError(
            f"head_bias lock needs tensors {sorted(expected)}, got {sorted(tensors)}"
        )
    n, dim = manifest.num_selected, manifest.head_dim
    layers, heads = tensors["layers"], tensors["heads"]
    directions, sigmas = tensors["directions"], tensors["sigmas"]
    shapes = {
        "layers": (layers, (n,), torch.int64),
        "heads": (heads, (n,), torch.int64),
        "directions": (directions, (n, dim), torch.float32),
        "sigmas": (sigmas, (n,), torch.float32),
    }
    for name, (tensor, shape, dtype) in shapes.items():
        if tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise LockFormatError(
                f"tensor {name!r} is {tuple(tensor.shape)} {tensor.dtype}, expected {shape} {dtype}"
            )
    if len(manifest.heads) != n:
        raise LockFormatError(f"manifest lists {len(manifest.heads)} heads but num_selected is {n}")
    pairs = list(zip(layers.tolist(), heads.tolist(), strict=True))
    if pairs != [(e.layer, e.head) for e in manifest.heads]:
        raise LockFormatError("manifest heads disagree with the layers/heads tensors")
    if len(set(pairs)) != n:
        raise LockFormatError("a (layer, head) appears twice in the lock")
    for layer, head in pairs:
        if not (0 <= layer < manifest.num_layers and 0 <= head < manifest.num_heads):
            raise LockFormatError(
                f"head ({layer}, {head}) outside {manifest.num_layers} layers x "
                f"{manifest.num_heads} heads"
            )
    if not (torch.isfinite(directions).all() and torch.isfinite(sigmas).all()):
        raise LockFormatError("directions and sigmas must be finite")
    if (sigmas < 0).any():
        raise LockFormatError("sigmas must be non-negative")
    if not math.isfinite(manifest.default_alpha):
        raise LockFormatError("default_alpha must be finite")


register_kind("head_bias", _check_head_bias)

# Lock kinds defined in their own modules register themselves on import.
import lock_registry.conditional  # noqa: F401  (kind "conditional")
