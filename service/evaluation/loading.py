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


def is_published(path: str | Path) -> bool:
    """Whether `path` is a model published with its lock (`lock_registry.bake.save_locked`)."""
    from lock_registry.bake import APPLIED_FILE, LOCK_SUBDIR

    return (Path(path) / LOCK_SUBDIR / APPLIED_FILE).is_file()


def load_published(path: str | Path, *, device: str | None = None):
    """(model, tokenizer, LockedModel) of a published model, locked as `load_locked` gives
    it: baked weights as they are, a hook-based lock (conditional) applied on load."""
    import torch
    from transformers import AutoTokenizer

    from lock_registry.bake import load_locked

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    locked = load_locked(path, dtype="auto", device_map=device)
    return locked.model.eval(), AutoTokenizer.from_pretrained(path), locked


def load_lock(path: str | Path):
    """A lock from its directory (sha256 verified by `MetaSafetyLock.load`)."""
    from lock_registry.lock import MetaSafetyLock

    return MetaSafetyLock.load(path)
