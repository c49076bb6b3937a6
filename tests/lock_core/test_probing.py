import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from lock_registry.errors import LockError
from lock_registry.probing import auc, fit_probes, mass_mean_directions, probe_heads, split_by_group


def synthetic(n_questions=40, tokens=5, layers=3, heads=4, dim=8, seed=0):
    """Activations where head (l, h) separates the classes with strength growing in l*heads+h."""
    g = torch.Generator().manual_seed(seed)
    groups = torch.arange(n_questions).repeat_interleave(2 * tokens)
    labels = torch.tensor([1] * tokens + [0] * tokens).repeat(n_questions)
    x = torch.randn(len(labels), layers, heads, dim, generator=g)
    strength = torch.linspace(0.0, 3.0, layers * heads).view(layers, heads)
    direction = torch.nn.functional.normalize(torch.randn(layers, heads, dim, generator=g), dim=-1)
    x += (labels.float() - 0.5).view(-1, 1, 1, 1) * strength[None, ..., None] * direction[None]
    return x, labels, groups


def test_split_keeps_every_question_on_one_side():
    groups = torch.arange(50).repeat_interleave(10)
    held_out = split_by_group(groups, 0.4, seed=3)
    for q in range(50):
        sides = set(held_out[groups == q].tolist())
        assert len(sides) == 1
    assert held_out.float().mean().item() == pytest.approx(0.4)
    assert torch.equal(held_out, split_by_group(groups, 0.4, seed=3))
    with pytest.raises(LockError, match="val_fraction"):
        split_by_group(groups, 1.0, seed=0)


def test_logistic_probes_match_sklearn():
    x, y, _ = synthetic()
    flat = x.reshape(len(y), 12, 8)
    weights = fit_probes(flat, y, method="logistic", newton_steps=20)
    for probe in (0, 7, 11):
        ref = LogisticRegression(C=1.0, max_iter=1000, tol=1e-8).fit(
            flat[:, probe].numpy(), y.numpy()
        )
        np.testing.assert_allclose(weights[probe, :-1].numpy(), ref.coef_[0], atol=2e-3)
        assert weights[probe, -1].item() == pytest.approx(ref.intercept_[0], abs=2e-3)


def test_auc_matches_sklearn_including_ties():
    scores = torch.tensor([[0.1, 0.4, 0.35, 0.8, 0.4, 0.4], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1, 1, 0])
    result = auc(scores, y)
    assert result[0].item() == pytest.approx(roc_auc_score(y.numpy(), scores[0].numpy()))
    assert result[1].item() == pytest.approx(0.5)


@pytest.mark.parametrize("method", ["ridge", "logistic"])
def test_strong_heads_rank_first(method):
    x, y, groups = synthetic()
    scores = probe_heads(x, y, groups, method=method)
    assert scores.val_accuracy.shape == (3, 4)
    assert set(scores.top(3)) == {(2, 1), (2, 2), (2, 3)}
    assert scores.val_accuracy[0, 0] < 0.7 < scores.val_accuracy[2, 3]


def test_probe_heads_checks_its_inputs():
    x, y, groups = synthetic()
    with pytest.raises(LockError, match="both classes"):
        probe_heads(x, torch.ones_like(y), groups)
    with pytest.raises(LockError, match=r"\[n, L, H, D\]"):
        probe_heads(x[:, 0], y, groups)


def test_mass_mean_direction_is_unit_and_sigma_is_projection_std():
    x, y, _ = synthetic()
    directions, sigmas = mass_mean_directions(x, y, [(2, 3), (0, 1)])
    assert directions.shape == (2, 8)
    torch.testing.assert_close(directions.norm(dim=1), torch.ones(2))
    values = x[:, 2, 3].double()
    shift = values[y == 1].mean(0) - values[y == 0].mean(0)
    torch.testing.assert_close(directions[0].double(), shift / shift.norm(), rtol=1e-5, atol=1e-6)
    expected_sigma = np.std((values @ (shift / shift.norm())).numpy())
    assert sigmas[0].item() == pytest.approx(expected_sigma, rel=1e-5)
