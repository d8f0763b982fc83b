"""DiffRec ranker: schedules against hand-computed values, training, persistence, config checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genrec.config import ConfigError
from genrec.rankers import create_ranker, load_ranker, resolve_ranker_config
from genrec.rankers.diffrec import LOSS_HISTORY, UNIFORM_SHARE, GaussianDiffusion, step_embedding
from tests.rankers.baseline import assert_beats_popularity

TINY = {"hidden_dims": [16], "step_embedding_dim": 4, "batch_size": 8, "lr": 1e-2, "epochs": 10, "patience": 10}


@pytest.fixture(scope="module")
def fitted(toy_split):
    ranker = create_ranker("diffrec", TINY)
    ranker.fit(toy_split, progress=False)
    return ranker


@pytest.fixture
def diffusion():
    # 1 - abar_t = 0.1 * [0.1, 0.2, 0.3] = [0.01, 0.02, 0.03]
    return GaussianDiffusion(steps=3, noise_scale=0.1, noise_min=0.1, noise_max=0.3)


def test_forward_schedule_matches_hand_computed_values(diffusion):
    np.testing.assert_allclose(diffusion.abar, [0.99, 0.98, 0.97])
    np.testing.assert_allclose(diffusion.betas, [0.01, 1 - 0.98 / 0.99, 1 - 0.97 / 0.98])
    x0, noise = torch.ones(1, 2), torch.tensor([[1.0, -1.0]])
    xt = diffusion.q_sample(x0, torch.tensor([1]), noise)
    expected = [math.sqrt(0.98) + math.sqrt(0.02), math.sqrt(0.98) - math.sqrt(0.02)]
    torch.testing.assert_close(xt, torch.tensor([expected]))


def test_reverse_posterior_matches_hand_computed_values(diffusion):
    beta = 1 - 0.98 / 0.99
    coef_x0 = beta * math.sqrt(0.99) / 0.02  # beta_t sqrt(abar_{t-1}) / (1 - abar_t)
    coef_xt = 0.01 * math.sqrt(1 - beta) / 0.02  # (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t)
    mean = diffusion.posterior_mean(torch.tensor([[2.0]]), torch.tensor([[3.0]]), torch.tensor([1]))
    torch.testing.assert_close(mean, torch.tensor([[2 * coef_x0 + 3 * coef_xt]]))
    # At the first step the posterior mean is the predicted x_0 itself.
    first = diffusion.posterior_mean(torch.tensor([[2.0]]), torch.tensor([[3.0]]), torch.tensor([0]))
    torch.testing.assert_close(first, torch.tensor([[2.0]]))


def test_loss_weight_is_snr_difference(diffusion):
    weights = diffusion.loss_weight(torch.tensor([0, 1, 2]))
    torch.testing.assert_close(weights, torch.tensor([1.0, 0.99 / 0.01 - 0.98 / 0.02, 0.98 / 0.02 - 0.97 / 0.03]))


def test_step_embedding_starts_at_cos_one_sin_zero():
    embedding = step_embedding(torch.tensor([0, 3]), 6)
    assert embedding.shape == (2, 6)
    torch.testing.assert_close(embedding[0], torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]))
    assert step_embedding(torch.tensor([2]), 5).shape == (1, 5)


def test_importance_sampling_follows_loss_history():
    ranker = create_ranker("diffrec", {**TINY, "steps": 3})
    ranker.build(n_items=6)
    generator = torch.Generator().manual_seed(0)
    t, pt = ranker.sample_steps(100, generator)  # no history yet: uniform
    assert set(t.tolist()) == {0, 1, 2} and (pt == 1).all()
    for losses, value in zip(ranker.step_losses, (1.0, 3.0, 0.0), strict=True):
        losses.extend([value] * LOSS_HISTORY)
    t, pt = ranker.sample_steps(4000, generator)
    expected = torch.tensor([1.0, 3.0, 0.0]) / 4 * (1 - UNIFORM_SHARE) + UNIFORM_SHARE / 3
    steps = 3
    torch.testing.assert_close(pt, expected[t] * steps)
    assert (t == 1).sum() > 2.5 * (t == 0).sum()


def test_loss_decreases_on_toy_data(fitted, toy_split):
    losses = [row["loss"] for row in fitted.fit_report.history]
    assert losses[-1] < losses[0]
    assert fitted.fit_report.best_valid_ndcg10 > 0
    assert_beats_popularity(fitted, toy_split)


def test_save_load_ranks_bit_identically(fitted, toy_split, tmp_path):
    loaded = load_ranker(str(fitted.save_pretrained(tmp_path / "diffrec")))
    history = toy_split.test.history
    expected_items, expected_scores = fitted.rank(history, k=10)
    items, scores = loaded.rank(history, k=10)
    np.testing.assert_array_equal(items, expected_items)
    np.testing.assert_array_equal(scores, expected_scores)


def test_seen_items_never_returned(fitted, toy_split):
    history = toy_split.test.history
    items, _ = fitted.rank(history, k=toy_split.n_items)
    for row in range(len(history)):
        assert not set(items[row].tolist()) & set(history[row].tolist())


def test_inference_noise_steps_are_deterministic(fitted, toy_split):
    """T' noising steps at inference use the mean (no noise): the denoising run starts from
    sqrt(abar_T') x_0, whatever the global RNG does, and the scores differ from T' = 0."""
    noised = create_ranker("diffrec", {**TINY, "inference_noise_steps": 2})
    noised.build(toy_split.n_items)
    noised.load_state_tensors(fitted.state_tensors())
    noised.n_items = toy_split.n_items
    history = toy_split.test.history.rows(np.arange(5))
    first = noised.score(history)
    torch.manual_seed(12345)
    torch.rand(1000)  # a disturbed global RNG must not matter
    torch.testing.assert_close(noised.score(history), first, rtol=0, atol=0)
    x0 = history.multi_hot(toy_split.n_items)  # [B, N]
    with torch.inference_mode():
        fitted.module.eval()
        expected = fitted.predict(x0 * math.sqrt(float(noised.diffusion.abar[1])))  # abar at T' = 2
    torch.testing.assert_close(first, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(first, fitted.score(history))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"noise_min": 0.01, "noise_max": 0.005}, "noise_min"),
        ({"noise_scale": 100.0, "noise_max": 0.02}, "noise_scale \\* noise_max must be < 1"),
        ({"steps": 3, "inference_noise_steps": 4}, "inference_noise_steps"),
        ({"steps": 0}, "steps"),
        ({"noise_scale": 0.0}, "noise_scale"),
        ({"hidden_dims": []}, "hidden_dims"),
    ],
)
def test_bad_config_values_rejected(settings, message):
    with pytest.raises(ConfigError, match=message):
        resolve_ranker_config("diffrec", settings)
