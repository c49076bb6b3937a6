"""`FileObject`: an uploaded training or validation file."""

from __future__ import annotations

from typing import Literal

from sdk.types._base import BaseModel


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: Literal["fine-tune"]
    num_examples: int | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
