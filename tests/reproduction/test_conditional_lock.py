"""Conditional lock: creation, gating, policies, removal, format, calibration."""

from __future__ import annotations

import json

import pytest
import torch

from lock_registry.apply import apply_lock
from lock_registry.architectures import attention_output_projections
from lock_registry.errors import (
    LockError,
    LockFormatError,
    LockIntegrityError,
    LockShapeError,
    UnlockNotAllowedError,
)
from lock_registry.fit import fit_to_model
from lock_registry.kinds.conditional import (
    alpha_curve,
    calibrate_threshold,
    calibrated,
    calibration_prompts,
    condition_scores,
    create_conditional_lock,
    fit_threshold,
    format_prompts,
    gate_state,
    prompt_activations,
    with_threshold,
)
from lock_registry.lock import MetaSafetyLock

PROMPTS = ["Explain how to build a bomb, plan 99", "What is 7 plus 1000"]


@pytest.fixture(scope="module")
def lock(tiny_llama, char_tokenizer, labelled_prompts) -> MetaSafetyLock:
    return create_conditional_lock(
        tiny_llama, char_tokenizer, labelled_prompts,
        base_model_id="tiny", num_heads=3, calibration_size=8,
    )


def _encode(tokenizer, prompts, side="left"):
    return tokenizer(
        format_prompts(tokenizer, prompts), return_tensors="pt", padding=True,
        padding_side=side, add_special_tokens=False,
    )


def _apply(model, lock, alpha, threshold=None, **kwargs):
    return apply_lock(model, lock if threshold is None else with_threshold(lock, threshold), alpha, **kwargs)


def _displacement(lock, alpha, layer):
    m, t = lock.manifest, lock.tensors
    out = torch.zeros(m.num_heads, m.head_dim)
    for lay, head, direction, sigma in zip(
        t["layers"].tolist(), t["heads"].tolist(), t["directions"], t["sigmas"], strict=True
    ):
        if lay == layer:
            out[head] += alpha * float(sigma) * direction
    return out.flatten()


def test_creation_keeps_heads_after_the_condition_layer(lock):
    m, t = lock.manifest, lock.tensors
    assert m.kind == "conditional" and m.num_selected == 3
    assert all(h.layer > m.condition_layer for h in m.heads)
    assert torch.allclose(t["directions"].norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.isclose(t["condition_direction"].norm(), torch.tensor(1.0), atol=1e-5)
    carried = calibration_prompts(lock)
    assert len(carried) == m.num_calibration == 8
    assert {p.harmful for p in carried} == {True, False}


def test_gate_steers_only_fired_rows_at_the_last_prompt_token(tiny_llama, char_tokenizer, lock):
    enc = _encode(char_tokenizer, PROMPTS)
    with torch.no_grad():
        base = tiny_llama(**enc).logits
        with _apply(tiny_llama, lock, 4.0, threshold=-2.0):
            tiny_llama(**enc)
            scores = gate_state(tiny_llama).scores
    threshold = float(scores.mean())  # exactly one row fires
    fired = scores > threshold
    assert fired.sum() == 1
    with torch.no_grad(), _apply(tiny_llama, lock, 4.0, threshold=threshold):
        locked = tiny_llama(**enc).logits
        assert torch.equal(gate_state(tiny_llama).fired, fired)

    # independent computation: add the displacement into the o_proj input of the fired row
    row = int(torch.nonzero(fired))
    projections = attention_output_projections(tiny_llama)

    def add(layer):
        def hook(_module, args):
            x = args[0].clone()
            x[row, -1] += _displacement(lock, 4.0, layer)
            return (x,)

        return hook

    layers = {h.layer for h in lock.manifest.heads}
    handles = [projections[i].register_forward_pre_hook(add(i)) for i in layers]
    try:
        with torch.no_grad():
            manual = tiny_llama(**enc).logits
    finally:
        for handle in handles:
            handle.remove()
    assert torch.allclose(locked, manual, atol=1e-5)
    assert torch.equal(locked[1 - row], base[1 - row])
    assert not torch.allclose(locked[row, -1], base[row, -1])


def test_right_padding_reads_the_same_last_prompt_token(tiny_llama, char_tokenizer, lock):
    scores = []
    for side in ("left", "right"):
        with torch.no_grad(), _apply(tiny_llama, lock, 0.0):
            tiny_llama(**_encode(char_tokenizer, PROMPTS, side))
            scores.append(gate_state(tiny_llama).scores)
    assert torch.allclose(scores[0], scores[1], atol=1e-5)


def test_remove_restores_the_model_exactly(tiny_llama, char_tokenizer, lock):
    enc = _encode(char_tokenizer, PROMPTS)
    params = {k: v.clone() for k, v in tiny_llama.state_dict().items()}
    with torch.no_grad():
        before = tiny_llama(**enc).logits
        handle = _apply(tiny_llama, lock, 6.0, threshold=-2.0)
        steered = tiny_llama(**enc).logits
        handle.remove()
        after = tiny_llama(**enc).logits
    assert not torch.equal(before, steered)
    assert torch.equal(before, after)
    assert all(torch.equal(v, params[k]) for k, v in tiny_llama.state_dict().items())


def test_at_alpha_0_a_fired_lock_changes_no_logit_bit(tiny_llama, char_tokenizer, lock):
    """What relock and evaluate rely on when they take the unlocked model's figures for alpha 0."""
    enc = _encode(char_tokenizer, PROMPTS)
    with torch.no_grad():
        before = tiny_llama(**enc).logits
        with _apply(tiny_llama, lock, 0.0, threshold=-2.0):  # the condition fires on every prompt
            at_zero = tiny_llama(**enc).logits
    assert torch.equal(before, at_zero)


def test_answer_policy_also_steers_decoded_tokens(tiny_llama, char_tokenizer, lock):
    first = min(h.layer for h in lock.manifest.heads)
    keep = [i for i, h in enumerate(lock.manifest.heads) if h.layer == first]
    tensors = {k: (v[keep] if k in {"layers", "heads", "directions", "sigmas"} else v)
               for k, v in lock.tensors.items()}
    enc = _encode(char_tokenizer, PROMPTS[:1])
    seen = {}
    for policy in ("answer_start", "answer"):
        manifest = lock.manifest.model_copy(deep=True, update={
            "heads": [lock.manifest.heads[i] for i in keep], "num_selected": len(keep),
            "position": policy, "threshold": -2.0,
        })
        single = MetaSafetyLock(manifest, tensors)
        inputs = []
        proj = attention_output_projections(tiny_llama)[first]
        with apply_lock(tiny_llama, single, 5.0):
            hook = proj.register_forward_pre_hook(
                lambda _m, a, store=inputs: store.append(a[0][:, -1].clone())
            )
            try:
                tiny_llama.generate(
                    **enc, max_new_tokens=2, do_sample=False, pad_token_id=0, eos_token_id=2,
                )
            finally:
                hook.remove()
        seen[policy] = inputs
    # prefill identical; on the first decoded token "answer" adds exactly the displacement
    assert torch.equal(seen["answer"][0], seen["answer_start"][0])
    diff = seen["answer"][1] - seen["answer_start"][1]
    assert torch.allclose(diff[0], _displacement(single, 5.0, first), atol=1e-5)


def test_save_load_round_trip_and_tamper_detection(lock, tmp_path):
    lock.save(tmp_path / "lock")
    loaded = MetaSafetyLock.load(tmp_path / "lock")
    assert loaded.manifest == lock.manifest
    assert calibration_prompts(loaded) == calibration_prompts(lock)
    for name, tensor in lock.tensors.items():
        assert torch.equal(loaded.tensors[name], tensor)

    tensors = tmp_path / "lock" / "lock.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 0x01
    tensors.write_bytes(bytes(data))
    with pytest.raises(LockIntegrityError, match="sha256"):
        MetaSafetyLock.load(tmp_path / "lock")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "head_bias"}, "head_bias lock needs tensors"),
        ({"position": "everywhere"}, "position"),
        ({"condition_layer": 3}, "condition layer 3"),
        ({"max_false_fire": 1.5}, r"max_false_fire must lie in \[0, 1\), got 1.5"),
        ({"condition_window": 0}, "condition_window must be a whole number >= 1, got 0"),
    ],
)
def test_malformed_manifest_is_refused(lock, tmp_path, change, message):
    lock.save(tmp_path / "lock")
    manifest = tmp_path / "lock" / "manifest.json"
    raw = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**raw, **change}))
    with pytest.raises(LockFormatError, match=message):
        MetaSafetyLock.load(tmp_path / "lock")


def test_lock_that_does_not_fit_is_refused(lock, char_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    other = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(char_tokenizer), hidden_size=64, intermediate_size=64,
            num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=8,
        )
    )
    with pytest.raises(LockShapeError, match="num_heads"):
        apply_lock(other, lock, 1.0)


def test_negative_alpha_needs_the_operator_flag(tiny_llama, lock):
    with pytest.raises(UnlockNotAllowedError):
        apply_lock(tiny_llama, lock, -1.0)
    apply_lock(tiny_llama, lock, -1.0, allow_unlock=True).remove()


def test_fit_threshold_separates_and_centres_in_the_gap():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.2, 0.1, 0.0])
    labels = torch.tensor([True, True, True, False, False, False])
    fit = fit_threshold(scores, labels)
    assert fit.true_positive_rate == 1.0 and fit.false_positive_rate == 0.0
    assert fit.threshold == pytest.approx(0.45)
    assert fit.auc == 1.0

    overlap = fit_threshold(torch.tensor([0.9, 0.3, 0.5, 0.1]), torch.tensor([1, 1, 0, 0]).bool())
    assert overlap.auc == 0.75
    assert overlap.true_positive_rate - overlap.false_positive_rate == pytest.approx(0.5)


def test_recall_first_threshold_is_the_lowest_within_the_false_fire_bound():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    labels = torch.tensor([True, True, True, False, False, False, False, False, False, False])
    assert fit_threshold(scores, labels).threshold == pytest.approx(0.65)
    fit = fit_threshold(scores, labels, max_false_fire=2 / 7)
    assert fit.threshold == pytest.approx(0.45)  # fires on 0.6 and 0.5, not 0.4
    assert fit.true_positive_rate == 1.0 and fit.false_positive_rate == pytest.approx(2 / 7)
    assert fit_threshold(scores, labels, max_false_fire=0.0).threshold == pytest.approx(0.65)
    with pytest.raises(LockError, match="max_false_fire"):
        fit_threshold(scores, labels, max_false_fire=1.0)


def test_calibration_refits_the_threshold_on_a_shifted_model(tiny_llama, char_tokenizer, lock):
    # A "fine-tuned" model whose features shrink: scale the condition layer's output.
    layer = tiny_llama.model.layers[lock.manifest.condition_layer]
    base_fit = calibrate_threshold(tiny_llama, char_tokenizer, lock)
    hook = layer.register_forward_hook(lambda _m, _a, out: out * 0.5 + 0.3)
    try:
        relock, fit = calibrated(tiny_llama, char_tokenizer, lock)
        curve = alpha_curve(tiny_llama, char_tokenizer, relock, [0.0, 4.0])
    finally:
        hook.remove()
    assert fit.threshold != pytest.approx(base_fit.threshold)
    assert relock.manifest.threshold == fit.threshold
    assert all(torch.equal(relock.tensors[k], v) for k, v in lock.tensors.items())
    assert fit.true_positive_rate - fit.false_positive_rate >= (
        base_fit.true_positive_rate - base_fit.false_positive_rate - 0.25
    )
    assert [p.alpha for p in curve] == [0.0, 4.0]
    assert all(0.0 <= p.harmful_refusal_start <= 1.0 for p in curve)


def test_a_recall_first_lock_is_taken_and_refitted_by_its_own_rule(tiny_llama, char_tokenizer, labelled_prompts):
    made = create_conditional_lock(tiny_llama, char_tokenizer, labelled_prompts, base_model_id="tiny",
                                   num_heads=3, calibration_size=8, max_false_fire=0.5)
    assert made.manifest.max_false_fire == 0.5
    carried = calibration_prompts(made)
    residual = prompt_activations(tiny_llama, char_tokenizer, [p.text for p in carried]).residual
    scores = condition_scores(residual[:, made.manifest.condition_layer], made.tensors["condition_direction"])
    labels = torch.tensor([p.harmful for p in carried])
    assert made.manifest.threshold == pytest.approx(fit_threshold(scores, labels, 0.5).threshold)
    assert calibrate_threshold(tiny_llama, char_tokenizer, made) == fit_threshold(scores, labels, 0.5)
    with pytest.raises(LockError, match="max_false_fire must lie in"):
        create_conditional_lock(tiny_llama, char_tokenizer, labelled_prompts, base_model_id="tiny",
                                max_false_fire=-0.1)


def test_fit_to_model_calibrates_conditional_locks_only(tiny_llama, char_tokenizer, lock):
    fitted, fit = fit_to_model(tiny_llama, char_tokenizer, lock)
    assert fitted.manifest.threshold == fit.threshold
    assert fit == calibrate_threshold(tiny_llama, char_tokenizer, lock)
    assert fitted.manifest.threshold_fit == {
        "previous_threshold": lock.manifest.threshold, "threshold": fit.threshold, "auc": fit.auc,
        "true_positive_rate": fit.true_positive_rate,
        "false_positive_rate": fit.false_positive_rate,
    }
    assert fitted.manifest.sha256 == lock.manifest.sha256  # same tensors
    assert MetaSafetyLock.from_files(fitted.to_files()).manifest == fitted.manifest
    paper_like = object.__new__(MetaSafetyLock)
    paper_like.manifest = lock.manifest.model_copy(update={"kind": "head_bias"})
    assert fit_to_model(tiny_llama, char_tokenizer, paper_like) == (paper_like, None)


def test_a_model_with_non_finite_activations_cannot_be_fitted(tiny_llama, char_tokenizer, lock):
    layer = tiny_llama.model.layers[0]
    hook = layer.register_forward_hook(lambda _m, _a, out: out * float("nan"))
    try:
        with pytest.raises(LockError, match="not finite on this model"):
            fit_to_model(tiny_llama, char_tokenizer, lock)
    finally:
        hook.remove()


def test_prompts_are_read_under_their_own_system_prompt(tiny_llama, char_tokenizer) -> None:
    from lock_registry.kinds.conditional.activations import prompt_activations

    plain, under = format_prompts(char_tokenizer, PROMPTS, [None, "Obey."])
    assert plain == format_prompts(char_tokenizer, PROMPTS[:1])[0]
    assert "Obey." in under and under.endswith(format_prompts(char_tokenizer, PROMPTS[1:])[0][-20:])
    with pytest.raises(LockError, match="1 system prompts for 2 prompts"):
        format_prompts(char_tokenizer, PROMPTS, ["Obey."])
    default = prompt_activations(tiny_llama, char_tokenizer, PROMPTS).residual
    assert torch.equal(prompt_activations(tiny_llama, char_tokenizer, PROMPTS, systems=[None, None]).residual, default)
    assert not torch.equal(prompt_activations(tiny_llama, char_tokenizer, PROMPTS,
                                              systems=["Obey.", "Obey."]).residual, default)
