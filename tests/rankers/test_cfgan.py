"""CFGAN ranker: masking schemes against hand-built cases, adversarial training, collapse detection, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.config import ConfigError
from genrec.data.sequences import Sequences
from genrec.evaluation.metrics import accuracy_metrics
from genrec.rankers import create_ranker, load_ranker, resolve_ranker_config
from genrec.rankers.cfgan import generated_input, sample_negatives, user_spread, zero_reconstruction
from genrec.rankers.set_based import user_batches

TINY = {
    "hidden_dims": [16],
    "discriminator_dims": [8],
    "batch_size": 8,
    "discriminator_batch_size": 8,
    "lr": 1e-2,
    "discriminator_lr": 1e-2,
    "epochs": 15,
    "patience": 15,
}


@pytest.fixture(scope="module")
def fitted(toy_split):
    ranker = create_ranker("cfgan", TINY)
    ranker.fit(toy_split, progress=False)
    return ranker


def test_sample_negatives_draws_the_share_of_non_purchased_items():
    x = torch.tensor([[1.0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 1, 0, 0, 0, 0]])
    generator = torch.Generator().manual_seed(0)
    mask = sample_negatives(x, 0.5, generator)
    assert mask.sum(dim=1).tolist() == [2, 3, 0, 2]  # floor(0.5 * [4, 6, 0, 5])
    assert not (mask * x).any()  # never a purchased item
    torch.testing.assert_close(sample_negatives(x, 1.0, generator), 1 - x)  # every non-purchased item
    assert not sample_negatives(x, 0.0, generator).any()
    # Uniform over the non-purchased items: each of row 0's four is drawn about half the time.
    counts = sum(sample_negatives(x[:1], 0.5, generator) for _ in range(400))[0]
    assert counts[[0, 5]].tolist() == [0, 0]
    assert ((counts[1:5] > 150) & (counts[1:5] < 250)).all()


def test_generated_input_masks_by_purchases_plus_partial_mask():
    r_hat = torch.tensor([[0.9, 0.8, 0.7, 0.6]])
    e = torch.tensor([[1.0, 0, 1, 0]])
    torch.testing.assert_close(generated_input(r_hat, e, None), torch.tensor([[0.9, 0, 0.7, 0]]))
    k = torch.tensor([[0.0, 1, 0, 0]])
    torch.testing.assert_close(generated_input(r_hat, e, k), torch.tensor([[0.9, 0.8, 0.7, 0]]))


def test_zero_reconstruction_sums_squares_of_sampled_items_per_user():
    r_hat = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    zr = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert zero_reconstruction(r_hat, zr).item() == pytest.approx((1 + 9 + 16) / 2)


@pytest.mark.parametrize(("scheme", "has_pm", "has_zr"), [("ZR", False, True), ("PM", True, False), ("ZP", True, True)])
def test_schemes_choose_their_negative_sets(scheme, has_pm, has_zr):
    ranker = create_ranker("cfgan", {**TINY, "scheme": scheme, "s_zr": 0.5, "s_pm": 0.25})
    x = torch.zeros(3, 8)
    x[:, 0] = 1
    pm, zr = ranker.negative_masks(x, torch.Generator().manual_seed(0))
    assert (pm is not None) == has_pm and (zr is not None) == has_zr
    if pm is not None:
        assert pm.sum(dim=1).tolist() == [1, 1, 1]  # floor(0.25 * 7)
    if zr is not None:
        assert zr.sum(dim=1).tolist() == [3, 3, 3]  # floor(0.5 * 7)


def test_user_spread_is_zero_for_a_collapsed_generator():
    assert user_spread(torch.tensor([[0.1, 0.9, 0.3]] * 4)) == (0.0, 0.0)  # same vector for every user
    assert user_spread(torch.ones(4, 3)) == (0.0, 0.0)  # the trivial all-ones solution
    between, share = user_spread(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert between == pytest.approx(0.25) and share == pytest.approx(1.0)


def test_adversarial_losses_move_in_the_expected_direction(toy_split):
    """D trained alone learns to tell real from generated vectors; G trained alone then fools it."""
    ranker = create_ranker("cfgan", TINY)
    ranker.build(toy_split.n_items)
    ranker.module.train()
    generator = torch.Generator().manual_seed(0)
    d_opt = torch.optim.Adam(ranker.module.discriminator.parameters(), lr=1e-2)
    g_opt = torch.optim.Adam(ranker.module.generator.parameters(), lr=1e-2)
    batches = [b.multi_hot(toy_split.n_items) for b in user_batches(toy_split.train, 8, generator)]

    d_steps = [ranker.discriminator_step(x, d_opt, generator) for _ in range(10) for x in batches]
    first, last = d_steps[0], d_steps[-1]
    assert last["discriminator_loss"] < 0.5 * first["discriminator_loss"]
    assert last["D_real"] > 0.8 > 0.2 > last["D_fake"]
    assert last["D_real"] > first["D_real"] and last["D_fake"] < first["D_fake"]

    g_steps = [ranker.generator_step(x, g_opt, generator) for _ in range(10) for x in batches]
    assert g_steps[-1]["generator_loss"] < 0.5 * g_steps[0]["generator_loss"]
    with torch.no_grad():
        x = batches[0]
        fooled = torch.sigmoid(ranker.module.discriminate(x, generated_input(ranker.module.generate(x), x, None)))
    assert fooled.mean() > last["D_fake"]


def test_history_reports_both_losses_and_the_user_spread(fitted):
    history = fitted.fit_report.history
    assert len(history) == TINY["epochs"]
    for row in history:
        assert {"loss", "generator_loss", "zr_loss", "discriminator_loss", "D_real", "D_fake"} <= row.keys()
        assert row["generator_user_share"] > fitted.config.collapse_threshold and row["collapsed_epochs"] == 0
    assert history[-1]["zr_loss"] < history[0]["zr_loss"]


def test_collapse_is_recorded_and_stops_training(toy_split):
    # Every generator's share is below 1: with threshold 1 each epoch counts as collapsed.
    ranker = create_ranker("cfgan", {**TINY, "collapse_threshold": 1.0, "collapse_patience": 2})
    with pytest.warns(UserWarning, match="cfgan: training stopped at epoch 2: generator collapsed"):
        report = ranker.fit(toy_split, progress=False)
    assert report.epochs == 2
    assert [row["collapsed_epochs"] for row in report.history] == [1.0, 2.0]


def test_beats_popularity_on_the_toy_split(fitted, toy_split):
    popular = create_ranker("popular")
    popular.fit(toy_split, progress=False)

    def ndcg(ranker):
        recommended, _ = ranker.rank(toy_split.test.history, k=10)
        return accuracy_metrics(recommended, toy_split.test.targets, ks=(10,))["NDCG@10"]

    assert ndcg(fitted) > ndcg(popular) + 0.1


def test_save_load_ranks_bit_identically(fitted, toy_split, tmp_path):
    loaded = load_ranker(str(fitted.save_pretrained(tmp_path / "cfgan")))
    history = toy_split.test.history
    expected_items, expected_scores = fitted.rank(history, k=10)
    items, scores = loaded.rank(history, k=10)
    np.testing.assert_array_equal(items, expected_items)
    np.testing.assert_array_equal(scores, expected_scores)
    for name, tensor in fitted.state_tensors().items():
        torch.testing.assert_close(loaded.state_tensors()[name], tensor, rtol=0, atol=0)


def test_same_seed_trains_identical_weights(toy_split):
    again = create_ranker("cfgan", {**TINY, "epochs": 1})
    twice = create_ranker("cfgan", {**TINY, "epochs": 1})
    again.fit(toy_split, progress=False)
    twice.fit(toy_split, progress=False)
    for name, tensor in again.state_tensors().items():
        torch.testing.assert_close(twice.state_tensors()[name], tensor, rtol=0, atol=0)


def test_seen_items_never_returned(fitted, toy_split):
    history = toy_split.test.history
    items, _ = fitted.rank(history, k=toy_split.n_items)
    for row in range(len(history)):
        returned = set(items[row][items[row] >= 0].tolist())
        assert not returned & set(history[row].tolist())
        assert len(returned) == toy_split.n_items - len(set(history[row].tolist()))


def test_no_multi_hot_larger_than_a_batch(toy_split, monkeypatch):
    """Training, the collapse probe and ranking build multi-hot rows per batch, never for all users."""
    sizes = []
    original = Sequences.multi_hot

    def recording(self, n_items):
        sizes.append(len(self))
        return original(self, n_items)

    monkeypatch.setattr(Sequences, "multi_hot", recording)
    settings = {**TINY, "epochs": 1, "batch_size": 7, "discriminator_batch_size": 5, "eval_batch_size": 9}
    create_ranker("cfgan", {**settings, "probe_users": 9}).fit(toy_split, progress=False)
    assert sizes and max(sizes) <= 9 < toy_split.n_users


def test_history_order_is_ignored(fitted):
    forward = Sequences.from_lists([[1, 2, 3, 4]])
    backward = Sequences.from_lists([[4, 3, 2, 1]])
    torch.testing.assert_close(fitted.score(forward), fitted.score(backward), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"scheme": "ZZ"}, "scheme"),
        ({"s_zr": 1.5}, "s_zr"),
        ({"s_pm": -0.1}, "s_pm"),
        ({"alpha": -1.0}, "alpha"),
        ({"discriminator_dims": []}, "discriminator_dims"),
        ({"hidden_dims": [0]}, "hidden_dims"),
        ({"generator_steps": 0}, "generator_steps"),
        ({"collapse_threshold": 2.0}, "collapse_threshold"),
        ({"noise_dim": 8}, "noise_dim"),
    ],
)
def test_bad_config_values_rejected(settings, field):
    with pytest.raises(ConfigError, match=field):
        resolve_ranker_config("cfgan", settings)
