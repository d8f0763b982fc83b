"""User-history pooling and preference profiles on hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest

from genrec.config import ConfigError
from genrec.data.sequences import Sequences
from genrec.encoders import VISUAL_ATTRIBUTES, encode_histories, encode_items, preference_profile

DAY = 86_400


@pytest.fixture
def dataset(make_dataset):
    """Items 1-2 are genre A (vectors e0, e1), 3-4 genre B (e2, e3). User 10: 1 then 2; user 20: 3, 4, 1."""
    items = [
        {"item_id": 1, "title": "a1", "genres": ["A"], "tags": ["sunny"]},
        {"item_id": 2, "title": "a2", "genres": ["A"], "tags": ["sunny"]},
        {"item_id": 3, "title": "b1", "genres": ["B"], "tags": ["rainy"]},
        {"item_id": 4, "title": "b2", "genres": ["B"], "tags": ["rainy", "once"]},
    ]
    log = [(10, 1, 0, 1.0), (10, 2, 2 * DAY, 3.0), (20, 3, 0, 5.0), (20, 4, DAY, 5.0), (20, 1, 3 * DAY, 5.0)]
    return make_dataset(items, log)


EYE = np.eye(4, dtype=np.float32)


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_mean_pooling(dataset):
    users = encode_histories(dataset, EYE, method="mean")
    assert users.user_ids.tolist() == [10, 20]
    np.testing.assert_allclose(users.embeddings[0], unit([1, 1, 0, 0]), atol=1e-6)
    np.testing.assert_allclose(users.embeddings[1], unit([1, 0, 1, 1]), atol=1e-6)


def test_recency_by_position_halves_per_half_life(dataset):
    users = encode_histories(dataset, EYE, method="recency", half_life=1.0)
    np.testing.assert_allclose(users.embeddings[0], unit([0.5, 1, 0, 0]), atol=1e-6)
    np.testing.assert_allclose(users.embeddings[1], unit([1, 0, 0.25, 0.5]), atol=1e-6)


def test_recency_by_time_uses_days_before_the_latest(dataset):
    users = encode_histories(dataset, EYE, method="recency", half_life=2.0, half_life_unit="days")
    np.testing.assert_allclose(users.embeddings[0], unit([0.5, 1, 0, 0]), atol=1e-6)  # 2 days older
    np.testing.assert_allclose(users.embeddings[1], unit([1, 0, 2**-1.5, 0.5]), atol=1e-6)


def test_rating_weights(dataset):
    users = encode_histories(dataset, EYE, users=[10], method="rating")
    assert users.user_ids.tolist() == [10]
    np.testing.assert_allclose(users.embeddings[0], unit([1, 3, 0, 0]), atol=1e-6)


def test_rating_pooling_needs_ratings(make_dataset):
    dataset = make_dataset([{"item_id": 1, "title": "x"}], [(5, 1, 0, float("nan"))])
    with pytest.raises(ValueError, match="user 5: method='rating' needs a rating on every interaction"):
        encode_histories(dataset, np.ones((1, 3), np.float32), method="rating")


def test_bad_arguments_are_named(dataset):
    with pytest.raises(ValueError, match=r"shape \(3, 4\), expected \[4, D\]"):
        encode_histories(dataset, EYE[:3])
    with pytest.raises(ConfigError, match="method"):
        encode_histories(dataset, EYE, method="median")
    with pytest.raises(KeyError, match="unknown user id 99"):
        encode_histories(dataset, EYE, users=[99])


def test_explicit_history_such_as_a_training_split(dataset):
    train = Sequences.from_lists([[0], []])  # user 10 keeps item 1 only; user 20 has nothing left
    users = encode_histories(dataset, EYE, method="mean", history=train)
    np.testing.assert_allclose(users.embeddings, [[1, 0, 0, 0], [0, 0, 0, 0]], atol=1e-6)


def test_preference_profile_ranks_the_genres_and_tags_of_the_history(dataset):
    users = encode_histories(dataset, EYE, users=[10], method="mean")
    (profile,) = preference_profile(dataset, users, EYE, top_k=2)
    assert profile.user_id == 10
    assert [name for name, _ in profile.genres] == ["A", "B"]
    assert profile.genres[0][1] > 0 > profile.genres[1][1]
    assert [name for name, _ in profile.tags] == ["sunny", "rainy"]  # "once" is on one item only: skipped
    assert profile.visual == []  # no CLIP encoder given


def test_visual_attributes_come_from_the_clip_text_tower(tiny, make_dataset):
    dataset = make_dataset([{"item_id": i, "title": f"m{i}", "genres": ["A"]} for i in range(3)])
    items = encode_items(dataset, tiny, cache=False, progress=False)
    users = encode_histories(dataset, items)
    (profile,) = preference_profile(dataset, users, items, encoder=tiny, top_k=3)
    assert len(profile.visual) == 3
    assert {name for name, _ in profile.visual} <= set(VISUAL_ATTRIBUTES)
    assert profile.to_dict()["visual"] == profile.visual
