import pytest
from torch import nn

from lock_registry.architectures import HeadGeometry, attention_output_projections, head_geometry
from lock_registry.errors import UnsupportedArchitectureError
from tests.lock_core.conftest import build_model


def test_each_family_exposes_one_o_proj_per_layer(family):
    model = build_model(family)
    projections = attention_output_projections(model)
    assert len(projections) == 2
    assert all(p is layer.self_attn.o_proj for p, layer in zip(projections, model.model.layers))
    assert head_geometry(model) == HeadGeometry(num_layers=2, num_heads=4, head_dim=16)


def test_unknown_architecture_is_named_and_escape_hatch_works():
    model = build_model("llama")
    model.config.model_type = "mystery"
    with pytest.raises(UnsupportedArchitectureError, match="mystery.*o_proj_path"):
        attention_output_projections(model)
    assert len(attention_output_projections(model, o_proj_path="self_attn.o_proj")) == 2
    with pytest.raises(UnsupportedArchitectureError, match="has no 'self_attn.out'"):
        attention_output_projections(model, o_proj_path="self_attn.out")


def test_model_without_layers_is_refused():
    with pytest.raises(UnsupportedArchitectureError, match="decoder layers"):
        attention_output_projections(nn.Linear(2, 2), o_proj_path="self_attn.o_proj")
