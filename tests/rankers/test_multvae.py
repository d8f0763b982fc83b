"""Mult-VAE ranker, and the set-based machinery it shares with DiffRec (batched multi-hot input)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.config import ConfigError
from genrec.data.sequences import Sequences
from genrec.rankers import create_ranker, load_ranker, resolve_ranker_config
from genrec.rankers.multvae import kl_beta
from genrec.rankers.set_based import tanh_mlp
from tests.rankers.baseline import assert_beats_popularity

TINY = {"hidden_dims": [16], "latent_dim": 8, "batch_size": 8, "lr": 1e-2, "epochs": 10, "patience": 10}


@pytest.fixture(scope="module")
def fitted(toy_split):
    ranker = create_ranker("multvae", TINY)
    ranker.fit(toy_split, progress=False)
    return ranker


def test_loss_decreases_on_toy_data(fitted, toy_split):
    losses = [row["loss"] for row in fitted.fit_report.history]
    assert losses[-1] < losses[0]
    assert fitted.fit_report.best_valid_ndcg10 > 0
    assert_beats_popularity(fitted, toy_split)


def test_kl_annealing_schedule():
    assert kl_beta(0, 0.2, 1000) == 0.0
    assert kl_beta(100, 0.2, 1000) == pytest.approx(0.1)
    assert kl_beta(200, 0.2, 1000) == pytest.approx(0.2)
    assert kl_beta(10_000, 0.2, 1000) == 0.2  # capped
    assert kl_beta(0, 0.3, 0) == 0.3  # no warm-up


def test_save_load_ranks_bit_identically(fitted, toy_split, tmp_path):
    loaded = load_ranker(str(fitted.save_pretrained(tmp_path / "multvae")))
    history = toy_split.test.history
    expected_items, expected_scores = fitted.rank(history, k=10)
    items, scores = loaded.rank(history, k=10)
    np.testing.assert_array_equal(items, expected_items)
    np.testing.assert_array_equal(scores, expected_scores)


def test_same_seed_trains_identical_weights(fitted, toy_split):
    again = create_ranker("multvae", {**TINY, "epochs": 1})
    twice = create_ranker("multvae", {**TINY, "epochs": 1})
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
    """Training and ranking build multi-hot rows per batch, never for all users at once."""
    sizes = []
    original = Sequences.multi_hot

    def recording(self, n_items):
        sizes.append(len(self))
        return original(self, n_items)

    monkeypatch.setattr(Sequences, "multi_hot", recording)
    ranker = create_ranker("multvae", {**TINY, "epochs": 1, "batch_size": 7, "eval_batch_size": 9})
    ranker.fit(toy_split, progress=False)
    assert sizes and max(sizes) <= 9 < toy_split.n_users


def test_history_order_is_ignored(fitted):
    forward = Sequences.from_lists([[1, 2, 3, 4]])
    backward = Sequences.from_lists([[4, 3, 2, 1]])
    torch.testing.assert_close(fitted.score(forward), fitted.score(backward), rtol=0, atol=0)


def test_tanh_mlp_shapes_and_activations():
    net = tanh_mlp([5, 4, 3])
    assert [type(layer).__name__ for layer in net] == ["Linear", "Tanh", "Linear"]
    assert net(torch.zeros(2, 5)).shape == (2, 3)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"hidden_dims": []}, "hidden_dims"),
        ({"hidden_dims": [8, 0]}, "hidden_dims"),
        ({"dropout": 1.0}, "dropout"),
        ({"anneal_cap": 1.5}, "anneal_cap"),
        ({"total_anneal_steps": -1}, "total_anneal_steps"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"hidden_dim": [8]}, "hidden_dim"),
    ],
)
def test_bad_config_values_rejected(settings, field):
    with pytest.raises(ConfigError, match=field):
        resolve_ranker_config("multvae", settings)
