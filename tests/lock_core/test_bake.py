import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from lock_registry.apply import apply_lock
from lock_registry.bake import BAKE_SWITCHES, LOCK_SUBDIR, load_locked, save_locked
from lock_registry.errors import LockFormatError, LockIntegrityError
from lock_registry.lock import TENSORS_FILE
from tests.lock_core.conftest import build_model
from tests.lock_core.helpers import lock_for, logits, state_copy

IDS = torch.tensor([[2, 5, 11, 40, 12, 7, 6, 30, 21]])


def locked_logits(model, lock, alpha):
    with apply_lock(model, lock, alpha):
        return logits(model, IDS)


@pytest.mark.parametrize("family", sorted(BAKE_SWITCHES))
def test_baked_model_loads_locked_with_plain_transformers(family, tokenizer, tmp_path):
    model = build_model(family)
    lock = lock_for(model)
    expected = locked_logits(model, lock, 5.0)
    before = state_copy(model)
    save_locked(model, tokenizer, lock, 5.0, tmp_path / "out")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "caller unchanged"
    assert AutoConfig.from_pretrained(tmp_path / "out").attention_bias is True
    reloaded, info = AutoModelForCausalLM.from_pretrained(
        tmp_path / "out", output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    torch.testing.assert_close(logits(reloaded, IDS), expected, rtol=1e-5, atol=1e-5)
    for layer in reloaded.model.layers:
        for name in ("q_proj", "k_proj", "v_proj"):
            assert not getattr(layer.self_attn, name).bias.any(), f"{name} bias must be zero"
    assert load_locked(tmp_path / "out").baked is True


@pytest.mark.parametrize("family", ["mistral", "qwen2"])
def test_other_families_keep_the_lock_beside_and_load_locked_applies_it(
    family, tokenizer, tmp_path
):
    model = build_model(family)
    lock = lock_for(model)
    expected, plain = locked_logits(model, lock, 5.0), logits(model, IDS)
    save_locked(model, tokenizer, lock, 5.0, tmp_path / "out")
    applied = json.loads((tmp_path / "out" / LOCK_SUBDIR / "applied.json").read_text())
    assert applied == {"alpha": 5.0, "baked": False, "lock_sha256": lock.manifest.sha256}
    loaded = load_locked(tmp_path / "out")
    assert loaded.baked is False and loaded.handle is not None and loaded.alpha == 5.0
    torch.testing.assert_close(logits(loaded.model, IDS), expected, rtol=1e-5, atol=1e-5)
    unlocked = AutoModelForCausalLM.from_pretrained(tmp_path / "out")  # documented: not locked
    torch.testing.assert_close(logits(unlocked, IDS), plain)


def test_load_locked_refuses_a_tampered_lock(tokenizer, tmp_path):
    model = build_model("mistral")
    save_locked(model, tokenizer, lock_for(model), 5.0, tmp_path / "out")
    tensors = tmp_path / "out" / LOCK_SUBDIR / TENSORS_FILE
    tensors.write_bytes(tensors.read_bytes()[:-1] + b"\x00")
    with pytest.raises(LockIntegrityError):
        load_locked(tmp_path / "out")
    (tmp_path / "out" / LOCK_SUBDIR / "applied.json").unlink()
    with pytest.raises(LockFormatError, match="applied.json"):
        load_locked(tmp_path / "out")
