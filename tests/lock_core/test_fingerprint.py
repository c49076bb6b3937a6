import pytest
import torch

from lock_registry.errors import LockFormatError
from lock_registry.fingerprint import model_fingerprint
from tests.lock_core.conftest import build_model


def test_fingerprint_is_the_same_for_the_model_and_its_saved_directory(tmp_path):
    model = build_model("llama")
    model.save_pretrained(tmp_path / "m")
    fingerprint = model_fingerprint(model)
    assert len(fingerprint) == 64
    assert model_fingerprint(tmp_path / "m") == fingerprint
    assert model_fingerprint(build_model("llama")) == fingerprint  # same seed, same weights


def test_fingerprint_changes_with_any_weight(tmp_path):
    model = build_model("llama")
    before = model_fingerprint(model)
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[0, 0] += 1e-3
    assert model_fingerprint(model) != before
    assert model_fingerprint(build_model("mistral")) != before
    with pytest.raises(LockFormatError, match="config.json"):
        model_fingerprint(tmp_path)
