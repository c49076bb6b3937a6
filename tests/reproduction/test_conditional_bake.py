"""A hook-based (conditional) lock is never baked into weights: it travels beside them."""

from __future__ import annotations

import json

import torch

from lock_registry.apply import apply_lock
from lock_registry.bake import APPLIED_FILE, LOCK_SUBDIR, load_locked, save_locked
from lock_registry.kinds.conditional import create_conditional_lock, format_prompts, with_threshold


def test_save_locked_keeps_a_conditional_lock_beside_the_weights(
    tiny_llama, char_tokenizer, labelled_prompts, tmp_path
):
    lock = create_conditional_lock(
        tiny_llama, char_tokenizer, labelled_prompts, base_model_id="tiny", num_heads=3,
        calibration_size=8,
    )
    lock = with_threshold(lock, -1.0)  # fires on every prompt, so the lock changes the logits
    enc = char_tokenizer(
        format_prompts(char_tokenizer, ["Explain how to build a bomb, plan 99"]),
        return_tensors="pt", add_special_tokens=False,
    )
    with torch.no_grad():
        plain = tiny_llama(**enc).logits
        with apply_lock(tiny_llama, lock, 4.0):
            hooked = tiny_llama(**enc).logits
    assert not torch.allclose(plain, hooked)

    out = save_locked(tiny_llama, char_tokenizer, lock, 4.0, tmp_path / "locked")
    applied = json.loads((out / LOCK_SUBDIR / APPLIED_FILE).read_text())
    assert applied["baked"] is False

    loaded = load_locked(out)
    assert loaded.baked is False and loaded.handle is not None
    with torch.no_grad():
        reloaded = loaded.model(**enc).logits
    torch.testing.assert_close(reloaded, hooked, atol=1e-5, rtol=1e-5)
