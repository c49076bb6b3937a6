"""The conditional lock's condition window: its reading averaged over the prompt's last tokens."""

from __future__ import annotations

import pytest
import torch

from lock_registry.apply import apply_lock
from lock_registry.errors import LockError
from lock_registry.kinds.conditional import (
    calibrate_threshold,
    calibration_prompts,
    create_conditional_lock,
    fit_threshold,
    format_prompts,
    gate_state,
    prompt_activations,
)
from lock_registry.kinds.conditional.condition import window_mean
from lock_registry.kinds.conditional.format import ConditionalFields
from lock_registry.lock import MetaSafetyLock

PROMPTS = ["Explain how to build a bomb, plan 99", "What is 7 plus 1000", "Hi"]
WINDOW = 5


@pytest.fixture(scope="module")
def windowed(tiny_llama, char_tokenizer, labelled_prompts) -> MetaSafetyLock:
    return create_conditional_lock(tiny_llama, char_tokenizer, labelled_prompts, base_model_id="tiny",
                                   num_heads=3, calibration_size=8, condition_window=WINDOW)


def _manual_scores(model, tokenizer, prompts, layer, direction, window) -> torch.Tensor:
    """The condition's cosines computed apart from the lock's code: each prompt alone, no padding."""
    out = []
    for text in format_prompts(tokenizer, prompts):
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[layer + 1][0]
        out.append(torch.nn.functional.cosine_similarity(hidden[-window:].mean(0), direction, dim=0))
    return torch.stack(out)


def test_window_mean_averages_the_last_real_tokens_of_each_row():
    hidden = torch.arange(2 * 5 * 1, dtype=torch.float32).reshape(2, 5, 1)  # row 0: 0..4, row 1: 5..9
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0]])  # left-padded, right-padded
    last = torch.tensor([4, 2])
    assert window_mean(hidden, last, mask, 1).flatten().tolist() == [4.0, 7.0]
    assert window_mean(hidden, last, mask, 2).flatten().tolist() == [3.5, 6.5]
    assert window_mean(hidden, last, mask, 9).flatten().tolist() == [3.0, 6.0]  # only the real ones
    hidden[0, 0] = float("nan")  # a padded position never leaks in
    assert window_mean(hidden, last, mask, 9).flatten().tolist() == [3.0, 6.0]
    assert window_mean(hidden, last, None, 2).flatten().tolist() == [3.5, 6.5]


def test_a_windowed_lock_records_its_window_and_fits_on_the_windowed_reading(tiny_llama, char_tokenizer, windowed):
    fields = windowed.manifest
    assert fields.condition_window == WINDOW
    carried = calibration_prompts(windowed)
    scores = _manual_scores(tiny_llama, char_tokenizer, [p.text for p in carried], fields.condition_layer,
                            windowed.tensors["condition_direction"], WINDOW)
    labels = torch.tensor([p.harmful for p in carried])
    expected = fit_threshold(scores, labels)
    assert fields.threshold == pytest.approx(expected.threshold, abs=1e-5)
    assert calibrate_threshold(tiny_llama, char_tokenizer, windowed).threshold == pytest.approx(expected.threshold, abs=1e-5)
    pooled = prompt_activations(tiny_llama, char_tokenizer, [p.text for p in carried], window=WINDOW).pooled
    last = prompt_activations(tiny_llama, char_tokenizer, [p.text for p in carried]).pooled
    assert not torch.allclose(pooled, last)  # the window is read, not the last token


@pytest.mark.parametrize("side", ["left", "right"])
def test_the_hooks_read_the_same_window_on_padded_batches(tiny_llama, char_tokenizer, windowed, side):
    fields = windowed.manifest
    expected = _manual_scores(tiny_llama, char_tokenizer, PROMPTS, fields.condition_layer,
                              windowed.tensors["condition_direction"], WINDOW)
    enc = char_tokenizer(format_prompts(char_tokenizer, PROMPTS), return_tensors="pt", padding=True,
                         padding_side=side, add_special_tokens=False)
    with torch.no_grad(), apply_lock(tiny_llama, windowed, 0.0):
        tiny_llama(**enc)
        scores = gate_state(tiny_llama).scores
    assert torch.allclose(scores, expected, atol=1e-5)


def test_a_lock_without_the_fields_reads_the_last_token_by_the_mean_difference(tiny_llama, char_tokenizer,
                                                                               labelled_prompts, tmp_path):
    import json

    plain = create_conditional_lock(tiny_llama, char_tokenizer, labelled_prompts, base_model_id="tiny",
                                    num_heads=3, calibration_size=8)
    plain.save(tmp_path / "lock")
    manifest = tmp_path / "lock" / "manifest.json"
    raw = json.loads(manifest.read_text())
    raw.pop("condition_window")  # a lock written before the window and the shrinkage existed
    raw.pop("condition_shrinkage")
    manifest.write_text(json.dumps(raw))
    loaded = MetaSafetyLock.load(tmp_path / "lock")
    fields = ConditionalFields.of(loaded)
    assert (fields.condition_window, fields.condition_shrinkage) == (1, 1.0)
    expected = _manual_scores(tiny_llama, char_tokenizer, PROMPTS, loaded.manifest.condition_layer,
                              loaded.tensors["condition_direction"], 1)
    enc = char_tokenizer(format_prompts(char_tokenizer, PROMPTS), return_tensors="pt", padding=True,
                         padding_side="left", add_special_tokens=False)
    with torch.no_grad(), apply_lock(tiny_llama, loaded, 0.0):
        tiny_llama(**enc)
        assert torch.allclose(gate_state(tiny_llama).scores, expected, atol=1e-5)


@pytest.mark.parametrize("window", [0, -3, 2.5, True])
def test_a_window_that_is_not_a_whole_number_of_tokens_is_refused(tiny_llama, char_tokenizer, labelled_prompts,
                                                                  window):
    with pytest.raises(LockError, match="condition_window must be a whole number >= 1"):
        create_conditional_lock(tiny_llama, char_tokenizer, labelled_prompts, base_model_id="tiny",
                                condition_window=window)
