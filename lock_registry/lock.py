"""`MetaSafetyLock`: the lock as a typed object, saved as safetensors + a JSON manifest.

A lock directory holds exactly two files: `lock.safetensors` (the tensors) and
`manifest.json` (what the lock is, where it came from, and the sha256 of the tensors
file). Loading verifies the hash before it parses a single tensor. Never pickle.

The format is extensible by `kind`: the manifest's fields above are every lock's; a kind
(`lock_registry.kinds`, one folder each) adds typed fields (kept as extra manifest keys,
read through `kind_fields`) and its own tensors, which it checks. This module looks the
kind up by name and imports none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
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
from lock_registry.kinds import KindFields, get_kind

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
    """What a lock is. Kinds add fields (extra keys are kept, not dropped; `kind_fields`
    reads them typed). A manifest without `kind` is the paper's `head_bias`."""

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

    @property
    def kind_fields(self) -> KindFields:
        """The fields this manifest's kind adds, validated into the kind's typed model
        (LockFormatError for an unknown kind or a missing or invalid field)."""
        return get_kind(self.kind).fields_of(self)


@dataclass
class MetaSafetyLock:
    """A lock: its manifest and its named tensors (the kind's check says which)."""

    manifest: LockManifest
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kind = get_kind(self.manifest.kind)
        kind.check(self.manifest, kind.fields_of(self.manifest), self.tensors)

    @classmethod
    def build(cls, kind: str, /, **parts: object) -> MetaSafetyLock:
        """A lock of `kind` from its parts, through the kind's constructor (for head_bias:
        base_model, architecture, geometry, layers, heads, directions, sigmas, ...)."""
        builder = get_kind(kind).build
        if builder is None:
            raise LockFormatError(f"lock kind {kind!r} has no constructor from parts")
        return builder(**parts)

    @classmethod
    def head_bias(cls, **parts: object) -> MetaSafetyLock:
        """A paper-style lock: `MetaSafetyLock.build("head_bias", **parts)`."""
        return cls.build("head_bias", **parts)

    @property
    def geometry(self) -> HeadGeometry:
        return self.manifest.geometry

    @property
    def kind_fields(self) -> KindFields:
        """The manifest's kind-specific fields, typed (see `LockManifest.kind_fields`)."""
        return self.manifest.kind_fields

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

