"""`model_fingerprint`: a revision id of a model from its shape config and its weights.

The same weights give the same fingerprint whether they are a loaded model or a saved
directory of `*.safetensors` files (tied weights count once, as they are saved once).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from lock_registry.errors import LockFormatError

# Config keys that define the architecture; paths, dtypes and versions are left out.
SHAPE_KEYS = (
    "model_type",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_size",
    "head_dim",
    "intermediate_size",
    "vocab_size",
)


def _config_digest(config: dict) -> bytes:
    shape = {key: config.get(key) for key in SHAPE_KEYS if config.get(key) is not None}
    return json.dumps(shape, sort_keys=True).encode()


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


def _digest(config: dict, tensors: list[tuple[str, torch.Tensor]]) -> str:
    h = hashlib.sha256(_config_digest(config))
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        h.update(f"\n{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        h.update(_tensor_bytes(tensor))
    return h.hexdigest()


def _model_tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    params = list(model.named_parameters())  # shared (tied) parameters appear once
    persistent = set(model.state_dict(keep_vars=True))
    buffers = [(name, buf) for name, buf in model.named_buffers() if name in persistent]
    return params + buffers


def _dir_fingerprint(directory: Path) -> str:
    config_path = directory / "config.json"
    files = sorted(directory.glob("*.safetensors"))
    if not config_path.is_file() or not files:
        raise LockFormatError(f"{directory}: needs config.json and *.safetensors weights")
    config = json.loads(config_path.read_text())
    h = hashlib.sha256(_config_digest(config))
    names: list[tuple[str, Path]] = []
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            names.extend((name, path) for name in handle.keys())  # noqa: SIM118 (not a dict)
    for name, path in sorted(names):
        with safe_open(str(path), framework="pt") as handle:
            tensor = handle.get_tensor(name)
        h.update(f"\n{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        h.update(_tensor_bytes(tensor))
    return h.hexdigest()


def model_fingerprint(model_or_dir: nn.Module | str | Path) -> str:
    """Hex sha256 over the architecture config and every weight (names, dtypes, shapes, bytes)."""
    if isinstance(model_or_dir, (str, Path)):
        return _dir_fingerprint(Path(model_or_dir))
    config = model_or_dir.config.to_dict() if hasattr(model_or_dir, "config") else {}
    with torch.no_grad():
        h = _digest(config, _model_tensors(model_or_dir))
    return h
