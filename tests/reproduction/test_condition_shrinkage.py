"""The conditional lock's condition shrinkage: its direction estimated by shrinkage LDA."""

from __future__ import annotations

import pytest
import torch

from lock_registry.errors import LockError, LockFormatError
from lock_registry.kinds.conditional import (
    calibration_prompts,
    create_conditional_lock,
    prompt_activations,
)
from lock_registry.kinds.conditional.condition import condition_direction
from lock_registry.kinds.conditional.create import ConditionalRecipe
from lock_registry.kinds.conditional.fit import direction_transfer
from lock_registry.kinds.conditional.format import MEAN_DIFFERENCE_TENSOR, ConditionalFields
from lock_registry.lock import MetaSafetyLock

SHRINKAGE = 0.5


@pytest.fixture(scope="module")
def shrunk(tiny_llama, char_tokenizer, labelled_prompts) -> MetaSafetyLock:
    return create_conditional_lock(tiny_llama, char_tokenizer, labelled_prompts, base_model_id="tiny",
                                   num_heads=3, calibration_size=8, condition_shrinkage=SHRINKAGE)


def _readings(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Harm moves axis 1 a little (spread 0.1); axis 0 varies a lot in both classes and
    their means differ there by chance of the draw (a wording that happens to lean)."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(2 * n, 2, generator=gen) * torch.tensor([5.0, 0.1])
    harmful, benign = noise[:n] + torch.tensor([1.5, 1.0]), noise[n:]
    return harmful, benign


def test_shrinkage_one_is_the_mean_difference():
    harmful, benign = _readings(50, 0)
    expected = harmful.mean(0) - benign.mean(0)
    direction = condition_direction(harmful, benign, 1.0)
    assert torch.allclose(direction, expected / expected.norm(), atol=1e-6)
    assert float(direction.norm()) == pytest.approx(1.0)


def test_lda_weighs_down_the_axis_that_varies_whatever_the_harm():
    harmful, benign = _readings(50, 0)
    plain = condition_direction(harmful, benign, 1.0)
    lda = condition_direction(harmful, benign, 0.1)
    assert abs(float(lda[1])) > abs(float(plain[1]))  # more of the harm axis
    assert float(lda.norm()) == pytest.approx(1.0)
    # the solve itself, apart from the code: ((1 - s) S + s tr(S)/d I)^-1 (mean difference)
    centred = torch.cat([harmful - harmful.mean(0), benign - benign.mean(0)]).double()
    within = centred.T @ centred / len(centred)
    shrunk = 0.9 * within + 0.1 * within.diagonal().mean() * torch.eye(2, dtype=torch.float64)
    expected = torch.linalg.solve(shrunk, (harmful.mean(0) - benign.mean(0)).double()).float()
    assert torch.allclose(lda, expected / expected.norm(), atol=1e-5)


@pytest.mark.parametrize("shrinkage", [0, -0.1, 1.5, True, "0.5"])
def test_a_shrinkage_outside_zero_to_one_is_refused(tiny_llama, char_tokenizer, labelled_prompts, shrinkage):
    with pytest.raises(LockError, match=r"condition_shrinkage must lie in \(0, 1\]"):
        create_conditional_lock(tiny_llama, char_tokenizer, labelled_prompts, base_model_id="tiny",
                                condition_shrinkage=shrinkage)
    with pytest.raises(LockError, match="condition_shrinkage"):
        ConditionalRecipe(name="x", condition_shrinkage=shrinkage)


def test_a_shrunk_lock_carries_its_lda_direction_and_the_mean_difference(tiny_llama, char_tokenizer,
                                                                         labelled_prompts, shrunk):
    fields = ConditionalFields.of(shrunk)
    assert fields.condition_shrinkage == SHRINKAGE
    plain = create_conditional_lock(tiny_llama, char_tokenizer, labelled_prompts, base_model_id="tiny",
                                    num_heads=3, calibration_size=8,
                                    condition_layer=fields.condition_layer)
    assert MEAN_DIFFERENCE_TENSOR not in plain.tensors
    assert ConditionalFields.of(plain).condition_shrinkage == 1.0
    # the carried mean difference is the plain lock's direction at the same layer, from the same split
    assert torch.allclose(shrunk.tensors[MEAN_DIFFERENCE_TENSOR], plain.tensors["condition_direction"], atol=1e-5)
    assert not torch.allclose(shrunk.tensors["condition_direction"], plain.tensors["condition_direction"], atol=1e-3)


def test_transfer_compares_the_re_measured_mean_difference(tiny_llama, char_tokenizer, shrunk):
    carried = calibration_prompts(shrunk)
    labels = torch.tensor([p.harmful for p in carried])
    reading = prompt_activations(tiny_llama, char_tokenizer, [p.text for p in carried]).pooled[
        :, shrunk.manifest.condition_layer]
    remeasured = reading[labels].mean(0) - reading[~labels].mean(0)
    expected = torch.nn.functional.cosine_similarity(remeasured, shrunk.tensors[MEAN_DIFFERENCE_TENSOR], dim=0)
    assert direction_transfer(tiny_llama, char_tokenizer, shrunk).condition_cosine == pytest.approx(
        float(expected), abs=1e-5)


def test_a_shrunk_lock_round_trips_and_one_without_its_mean_difference_is_refused(shrunk, tmp_path):
    shrunk.save(tmp_path / "lock")
    loaded = MetaSafetyLock.load(tmp_path / "lock")
    assert ConditionalFields.of(loaded).condition_shrinkage == SHRINKAGE
    assert torch.equal(loaded.tensors[MEAN_DIFFERENCE_TENSOR], shrunk.tensors[MEAN_DIFFERENCE_TENSOR])
    tensors = {k: v for k, v in shrunk.tensors.items() if k != MEAN_DIFFERENCE_TENSOR}
    with pytest.raises(LockFormatError, match=f"condition_shrinkage {SHRINKAGE} needs tensors .*{MEAN_DIFFERENCE_TENSOR}"):
        MetaSafetyLock(shrunk.manifest, tensors).to_files()

