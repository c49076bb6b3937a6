import pytest
import torch

from lock_registry.apply import active_lock, apply_lock
from lock_registry.architectures import HeadGeometry, attention_output_projections
from lock_registry.errors import LockShapeError, LockStateError, UnlockNotAllowedError
from tests.lock_core.conftest import build_model
from tests.lock_core.helpers import lock_for, logits, random_lock, state_copy

IDS = torch.tensor([[2, 5, 11, 40, 12, 7, 6, 30, 21], [2, 5, 17, 33, 9, 8, 6, 12, 50]])


def hooked_logits(model, lock, alpha):
    """Independent computation: add the displacement to the o_proj input through a hook."""
    geometry = lock.geometry
    displacement = torch.zeros(geometry.num_layers, geometry.width)
    for i, (layer, head) in enumerate(lock.head_list):
        slot = slice(head * geometry.head_dim, (head + 1) * geometry.head_dim)
        displacement[layer, slot] = (
            alpha * lock.tensors["sigmas"][i] * lock.tensors["directions"][i]
        )
    handles = [
        proj.register_forward_pre_hook(lambda m, args, d=displacement[i]: (args[0] + d,))
        for i, proj in enumerate(attention_output_projections(model))
    ]
    try:
        return logits(model, IDS)
    finally:
        for handle in handles:
            handle.remove()


def test_apply_equals_adding_the_displacement_to_the_o_proj_input(family):
    model = build_model(family)
    lock = lock_for(model)
    expected = hooked_logits(model, lock, alpha=4.0)
    plain = logits(model, IDS)
    with apply_lock(model, lock, 4.0):
        locked = logits(model, IDS)
    assert (locked - plain).abs().max() > 1e-2, "the lock must change the output"
    torch.testing.assert_close(locked, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("attention_bias", [False, True])
def test_remove_restores_every_parameter_bit_for_bit(attention_bias):
    model = build_model("llama", attention_bias=attention_bias)
    projections = attention_output_projections(model)
    originals = [p.bias for p in projections]
    before, plain = state_copy(model), logits(model, IDS)
    handle = apply_lock(model, lock_for(model), 6.0)
    assert active_lock(model) is handle
    assert all(p.bias is not None for p in projections)
    handle.remove()
    handle.remove()  # a second remove does nothing
    after = model.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.bias for p in projections] == originals  # the very same objects (or None)
    assert torch.equal(logits(model, IDS), plain)
    assert active_lock(model) is None


def test_existing_bias_is_kept_under_the_lock():
    model = build_model("llama", attention_bias=True)
    proj = attention_output_projections(model)[1]
    with torch.no_grad():
        proj.bias.normal_()
    original = proj.bias.detach().clone()
    lock = lock_for(model, heads=((1, 2),))
    with apply_lock(model, lock, 2.0):
        delta = proj.weight[:, 32:48] @ (
            2.0 * lock.tensors["sigmas"][0] * lock.tensors["directions"][0]
        )
        torch.testing.assert_close(proj.bias.detach(), original + delta)
    assert torch.equal(proj.bias, original)


def test_lock_of_another_shape_is_refused_naming_the_mismatch():
    model = build_model("llama")
    lock = random_lock(HeadGeometry(num_layers=2, num_heads=4, head_dim=32), [(0, 0)])
    with pytest.raises(LockShapeError, match="head_dim=32, the model has 16"):
        apply_lock(model, lock, 6.0)
    lock = random_lock(HeadGeometry(num_layers=3, num_heads=4, head_dim=16), [(2, 0)])
    with pytest.raises(LockShapeError, match="num_layers=3, the model has 2"):
        apply_lock(model, lock, 6.0)
    assert all(p.bias is None for p in attention_output_projections(model))


def test_negative_alpha_needs_the_operator_flag():
    model = build_model("llama")
    lock = lock_for(model)
    with pytest.raises(UnlockNotAllowedError, match="allow_unlock"):
        apply_lock(model, lock, -6.0)
    assert active_lock(model) is None
    with apply_lock(model, lock, -6.0, allow_unlock=True) as handle:
        assert handle.alpha == -6.0
        unlocked = logits(model, IDS)
    torch.testing.assert_close(unlocked, hooked_logits(model, lock, -6.0), rtol=1e-4, atol=1e-5)


def test_second_lock_while_one_is_applied_is_refused_and_default_alpha_used():
    model = build_model("llama")
    lock = lock_for(model)
    with apply_lock(model, lock) as handle:
        assert handle.alpha == lock.manifest.default_alpha == 6.0
        with pytest.raises(LockStateError, match="already applied"):
            apply_lock(model, lock, 1.0)
    with pytest.raises(Exception, match="finite"):
        apply_lock(model, lock, float("nan"))


def test_an_applied_lock_does_not_keep_a_dropped_model_alive():
    import gc
    import weakref

    model = build_model("llama")
    handle = apply_lock(model, lock_for(model), 6.0)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None and not handle.active
    handle.remove()  # nothing left to do


@pytest.mark.parametrize("threads", [2, 3])
def test_rows_split_between_threads_give_the_one_thread_deltas(monkeypatch, threads):
    """Large fp32 locks on CPU split the weight rows between torch's threads: the bias is
    the one-thread bias up to float rounding (BLAS may block a row range differently)."""
    import lock_registry.kinds.head_bias.apply as apply_module

    model = build_model("llama")
    projections = attention_output_projections(model)
    lock = lock_for(model, heads=((0, 1), (1, 0), (1, 3), (0, 2)))
    serial = apply_module.head_bias_deltas(projections, lock, 4.0)  # a tiny lock: one thread
    monkeypatch.setattr(apply_module, "_PARALLEL_MIN_BYTES", 0)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        split = apply_module.head_bias_deltas(projections, lock, 4.0)
        expected = hooked_logits(model, lock, alpha=4.0)
        with apply_lock(model, lock, 4.0):
            locked = logits(model, IDS)
    finally:
        torch.set_num_threads(previous)
    assert serial.keys() == split.keys() == {0, 1}
    for layer in serial:
        torch.testing.assert_close(split[layer], serial[layer], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(locked, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("attention_bias", [False, True])
def test_at_alpha_0_a_lock_changes_no_logit_bit(attention_bias):
    """What relock and evaluate rely on when they take the unlocked model's figures for alpha 0."""
    model = build_model("llama", attention_bias=attention_bias)
    plain = logits(model, IDS)
    with apply_lock(model, lock_for(model), 0.0):
        assert torch.equal(logits(model, IDS), plain)
