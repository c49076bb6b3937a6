import pytest
import torch

from lock_registry.create import create_lock
from lock_registry.errors import LockError
from lock_registry.fingerprint import model_fingerprint
from lock_registry.lock import MetaSafetyLock
from lock_registry.pairs import pairs_fingerprint
from tests.lock_core.conftest import build_model


def test_create_lock_on_each_family(family, tokenizer, pairs, tmp_path):
    model = build_model(family)
    stages = []
    lock = create_lock(
        model,
        tokenizer,
        pairs,
        base_model_id=f"tiny-{family}",
        num_heads=5,
        last_tokens=3,
        progress=lambda stage, done, total: stages.append(stage),
    )
    manifest = lock.manifest
    assert manifest.architecture == family
    assert (manifest.num_layers, manifest.num_heads, manifest.head_dim) == (2, 4, 16)
    assert manifest.num_selected == 5 and manifest.last_tokens == 3
    assert manifest.base_model.fingerprint == model_fingerprint(model)
    assert manifest.data_fingerprint == pairs_fingerprint(pairs)
    assert all(0.0 <= h.probe_accuracy <= 1.0 for h in manifest.heads)
    assert len(set(lock.head_list)) == 5
    torch.testing.assert_close(lock.tensors["directions"].norm(dim=1), torch.ones(5))
    assert (lock.tensors["sigmas"] > 0).all()
    assert {"capture", "probe", "fingerprint"} <= set(stages)
    lock.save(tmp_path / "lock")
    assert MetaSafetyLock.load(tmp_path / "lock").manifest == manifest


def test_create_lock_refuses_bad_arguments(tokenizer, pairs):
    model = build_model("llama")
    with pytest.raises(LockError, match="unknown preset 'nope'"):
        create_lock(model, tokenizer, pairs, base_model_id="x", preset="nope")
    with pytest.raises(LockError, match=r"num_heads must be in 1\.\.8"):
        create_lock(model, tokenizer, pairs, base_model_id="x", num_heads=9)
    with pytest.raises(LockError, match="at least 2"):
        create_lock(model, tokenizer, pairs[:1], base_model_id="x", num_heads=2)
