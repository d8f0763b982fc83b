"""Image generation metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genrec.evaluation.image_metrics import clip_score, cross_user_diversity, personalization_score

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


def test_image_metrics_on_a_generated_table(movielens_small):
    import pandas as pd
    from PIL import Image

    from genrec.encoders import create_encoder
    from genrec.encoders.items import item_text
    from genrec.evaluation.image_metrics import image_metrics

    encoder = create_encoder("tiny")
    red, blue = Image.new("RGB", (64, 64), (200, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 200))
    keys = {"user_id": [1, 2], "item_id": [1, 1], "seed": [0, 0]}
    personal = pd.DataFrame({**keys, "image": [red, blue]})
    baseline = pd.DataFrame({**keys, "image": [red, red]}).iloc[::-1]  # row order must not matter
    history = {1: encoder.encode_images([red])[0].numpy(), 2: encoder.encode_images([red])[0].numpy()}

    metrics = image_metrics(personal, encoder, movielens_small, history, baseline)
    vectors = encoder.encode_images([red, blue]).numpy()
    text = encoder.encode_texts([item_text(movielens_small.items.iloc[0])]).numpy()
    assert metrics["clip_score"] == pytest.approx(clip_score(vectors, np.repeat(text, 2, axis=0)).mean(), abs=1e-4)
    assert metrics["baseline_cross_user_diversity"] == pytest.approx(0.0, abs=1e-6)  # both users got the same
    assert metrics["cross_user_diversity"] == pytest.approx(1 - float(vectors[0] @ vectors[1]), abs=1e-5)
    # user 1's personalised image is the baseline itself; user 2's moved away from the (red) history.
    assert metrics["personalization_baseline"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["personalization_lift"] < 0 and metrics["personalization_win_rate"] == 0.0
    with pytest.raises(ValueError, match="baseline has no image"):
        image_metrics(personal, encoder, movielens_small, history, baseline.iloc[:1])
