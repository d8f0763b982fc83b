"""Description metrics on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from genrec.evaluation.text_metrics import (
    description_diversity,
    description_metrics,
    distinct_n,
    grounding_rate,
    preference_coverage,
)
from genrec.generators.grounding import GroundingChecker
from genrec.generators.text_base import ItemFacts, UserProfile

ITEMS = pd.DataFrame(
    {
        "item_id": [1, 2],
        "title": ["Alpha Story", "Beta Quest"],
        "genres": [["Drama"], ["Western"]],
        "tags": [["slow burn"], []],
        "year": [2001, 1970],
    }
)
ALPHA = ItemFacts(item_id=1, title="Alpha Story", year=2001, genres=("Drama",), tags=("slow burn",))


def test_grounding_rate_counts_descriptions_without_unsupported_claims():
    checker = GroundingChecker(ITEMS)
    texts = ["A Drama from 2001.", "A Western.", "Like Beta Quest.", "A slow burn.", ""]
    # grounded: 1st and 4th; the empty (blocked) one is left out
    assert grounding_rate(texts, [ALPHA] * 5, checker) == pytest.approx(2 / 4)
    assert math.isnan(grounding_rate([""], [ALPHA], checker))
    with pytest.raises(ValueError, match="equal counts"):
        grounding_rate(["a"], [], checker)


def test_preference_coverage_counts_whole_word_mentions_and_skips_empty_profiles():
    fan = UserProfile(genres=("Sci-Fi",), tags=("slow burn",))
    texts = ["A sci-fi gem.", "It has a SLOW  burn.", "Slowburning.", "Anything."]
    profiles = [fan, fan, fan, UserProfile()]
    assert preference_coverage(texts, profiles) == pytest.approx(2 / 3)
    assert math.isnan(preference_coverage(["x"], [UserProfile()]))


def test_distinct_n_is_unique_over_total_ngrams():
    texts = ["a b a b", "a b c"]
    # unigrams: a b a b a b c -> 3 unique / 7; bigrams: ab ba ab | ab bc -> {ab, ba, bc} = 3 / 5
    assert distinct_n(texts, 1) == pytest.approx(3 / 7)
    assert distinct_n(texts, 2) == pytest.approx(3 / 5)
    assert math.isnan(distinct_n(["one"], 2))
    with pytest.raises(ValueError):
        distinct_n(texts, 0)


def test_cross_user_diversity_is_mean_pairwise_jaccard_distance_within_items():
    texts = ["a b", "a c", "a b", "x y", "solo"]
    items = [1, 1, 1, 2, 3]
    # item 1 pairs: {a,b}-{a,c} 1-1/3, {a,b}-{a,b} 0, {a,c}-{a,b} 1-1/3 -> mean 4/9; items 2, 3 have one user
    assert description_diversity(texts, items) == pytest.approx(4 / 9)
    assert description_diversity(["same", "same"], [1, 1]) == 0.0
    assert math.isnan(description_diversity(["a"], [1]))


def test_cross_user_diversity_with_embeddings_is_one_minus_cosine():
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert description_diversity(["", "", ""], [5, 5, 6], embeddings) == pytest.approx(1.0)


def test_description_metrics_bundles_every_metric():
    checker = GroundingChecker(ITEMS)
    metrics = description_metrics(
        ["A Drama for you.", "A Drama."], [ALPHA, ALPHA], [UserProfile(genres=("Drama",))] * 2, checker
    )
    assert metrics["grounding_rate"] == 1.0 and metrics["preference_coverage"] == 1.0
    assert set(metrics) == {"grounding_rate", "preference_coverage", "distinct_1", "distinct_2", "cross_user_diversity"}
