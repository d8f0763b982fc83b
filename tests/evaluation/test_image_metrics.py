"""Image generation metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genrec.evaluation.generation import clip_score, cross_user_diversity, personalization_score

E1, E2, DIAG = np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 1.0]) / math.sqrt(2)


def test_clip_score_is_100_times_the_clipped_cosine():
    images = np.stack([E1, E1, 3 * E1])  # scale does not matter: rows are normalised
    texts = np.stack([DIAG, -E1, E1])
    np.testing.assert_allclose(clip_score(images, texts), [100 / math.sqrt(2), 0.0, 100.0])
    with pytest.raises(ValueError, match="equal shapes"):
        clip_score(images, texts[:2])


def test_personalization_score_compares_with_the_baseline_per_pair():
    history = np.stack([E1, E2])
    personalized = np.stack([E1, DIAG])  # cos 1 and 1/sqrt(2) with the history
    baseline = np.stack([E2, E2])  # cos 0 and 1
    score = personalization_score(personalized, baseline, history)
    assert score["personalized"] == pytest.approx((1 + 1 / math.sqrt(2)) / 2)
    assert score["baseline"] == pytest.approx(0.5)
    assert score["lift"] == pytest.approx(((1 - 0) + (1 / math.sqrt(2) - 1)) / 2)
    assert score["win_rate"] == 0.5
    with pytest.raises(ValueError, match="rows must align"):
        personalization_score(personalized, baseline[:1], history)


def test_cross_user_diversity_averages_pairs_within_items_then_items():
    embeddings = np.stack([E1, E2, DIAG, E1, E1, E2])
    items = ["a", "a", "a", "b", "b", "c"]
    # item a: pairs (E1,E2)=1, (E1,DIAG)=1-1/sqrt2, (E2,DIAG)=1-1/sqrt2; item b: 0; item c: one user, skipped.
    item_a = (1 + 2 * (1 - 1 / math.sqrt(2))) / 3
    assert cross_user_diversity(embeddings, items) == pytest.approx((item_a + 0.0) / 2)
    assert math.isnan(cross_user_diversity(embeddings[:1], ["a"]))
    with pytest.raises(ValueError, match="item ids"):
        cross_user_diversity(embeddings, items[:2])
