"""`Model`: a published fine-tuned model, and where to download it."""

from __future__ import annotations

from typing import Literal

from sdk.types._base import BaseModel


class ModelLock(BaseModel):
    base_model: str
    version: int | str | None = None
    alpha: float | None = None
    baked: bool | None = None
    """True: plain transformers loads the weights already locked; False: load them with
    `lock_registry.bake.load_locked` (the lock travels in `safetylock/` beside them)."""
    kind: str | None = None
    """`head_bias` (the paper's constant bias) or `conditional` (applied when the prompt's
    harmfulness condition fires)."""
    threshold: float | None = None
    """A conditional lock's condition threshold, as relock fitted it to this model."""


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created_at: int
    owned_by: str
    base_model: str | None = None
    job_id: str | None = None
    lock: ModelLock | None = None


class DownloadFile(BaseModel):
    path: str
    url: str
    sha256: str | None = None
    """Checked after download when the service provides it."""


class ModelDownload(BaseModel):
    files: list[DownloadFile]
    expires_at: int | None = None
