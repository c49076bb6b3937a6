"""Load a model directory and a lock directory for evaluation."""

from __future__ import annotations

from pathlib import Path


def load_model(path: str | Path, *, device: str | None = None):
    """(model, tokenizer) from a `save_pretrained` directory, in eval mode on `device`.

    Default device: CUDA when available, else CPU; weights keep their saved dtype.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ValueError(f"{path}: not a model directory (no config.json)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="auto").to(device).eval()
    return model, tokenizer


def load_lock(path: str | Path):
    """A lock from its directory (sha256 verified by `MetaSafetyLock.load`)."""
    from lock_registry.lock import MetaSafetyLock

    return MetaSafetyLock.load(path)
