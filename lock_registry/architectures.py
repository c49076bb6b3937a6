"""Where a decoder's attention output projections live, and the head geometry.

The input of each layer's attention output projection is the concatenation of the
per-head outputs, shape `[batch, seq, num_heads * head_dim]`: capture reads it with
forward pre-hooks and apply adds the lock as that projection's output bias.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lock_registry.errors import LockShapeError, UnsupportedArchitectureError

# model_type -> path of the attention output projection inside one decoder layer.
O_PROJ_PATHS: dict[str, str] = {
    "llama": "self_attn.o_proj",
    "mistral": "self_attn.o_proj",
    "mixtral": "self_attn.o_proj",
    "qwen2": "self_attn.o_proj",
    "qwen3": "self_attn.o_proj",
    "gemma": "self_attn.o_proj",
    "gemma2": "self_attn.o_proj",
    "phi3": "self_attn.o_proj",
}


@dataclass(frozen=True)
class HeadGeometry:
    """Attention head layout of a decoder: the shape a lock must fit."""

    num_layers: int
    num_heads: int
    head_dim: int

    @property
    def width(self) -> int:
        """Width of one o_proj input: `num_heads * head_dim`."""
        return self.num_heads * self.head_dim


def model_type(model: nn.Module) -> str:
    """The transformers `model_type` of `model` ("llama", ...), or its class name."""
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) or type(model).__name__


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder layers (`model.model.layers` for the supported families)."""
    for candidate in (getattr(model, "model", None), model):
        layers = getattr(candidate, "layers", None)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return layers
    raise UnsupportedArchitectureError(
        f"cannot find the decoder layers of {type(model).__name__}: expected `model.layers`"
    )


def attention_output_projections(
    model: nn.Module, o_proj_path: str | None = None
) -> list[nn.Linear]:
    """One attention output projection per decoder layer, in layer order.

    `o_proj_path` is the escape hatch for families not in `O_PROJ_PATHS`: the dotted path of
    the projection inside one decoder layer (e.g. "self_attn.o_proj").
    """
    kind = model_type(model)
    path = o_proj_path or O_PROJ_PATHS.get(kind)
    if path is None:
        raise UnsupportedArchitectureError(
            f"unknown architecture {kind!r}: pass o_proj_path (known: {sorted(O_PROJ_PATHS)})"
        )
    projections = []
    for index, layer in enumerate(decoder_layers(model)):
        try:
            module = layer.get_submodule(path)
        except AttributeError as exc:
            raise UnsupportedArchitectureError(
                f"layer {index} of {kind!r} has no {path!r}"
            ) from exc
        if not isinstance(module, nn.Linear):
            raise UnsupportedArchitectureError(
                f"layer {index} {path!r} is a {type(module).__name__}, not nn.Linear"
            )
        projections.append(module)
    return projections


def head_geometry(model: nn.Module, o_proj_path: str | None = None) -> HeadGeometry:
    """Layers, heads and head width of `model`, checked against its o_proj shapes."""
    config = model.config
    num_heads = int(config.num_attention_heads)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // num_heads
    projections = attention_output_projections(model, o_proj_path)
    geometry = HeadGeometry(len(projections), num_heads, int(head_dim))
    for index, proj in enumerate(projections):
        if proj.in_features != geometry.width:
            raise LockShapeError(
                f"layer {index} o_proj takes {proj.in_features} inputs, expected "
                f"num_heads * head_dim = {num_heads} * {head_dim} = {geometry.width}"
            )
    return geometry
