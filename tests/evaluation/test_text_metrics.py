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
    guard_precision_recall,
    preference_coverage,
    text_personalization,
)
from genrec.grounding.facts import ItemFacts, UserProfile
from genrec.grounding.guard import GroundingChecker

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


class FakeEncoder:
    """Unit vectors by keyword: texts about space point one way, texts about farms the other."""

    def encode_texts(self, texts):
        import torch

        rows = [[1.0 if "space" in t else 0.0, 1.0 if "farm" in t else 0.0, 0.1] for t in texts]
        return torch.nn.functional.normalize(torch.tensor(rows), dim=1)


def test_text_personalization_is_the_history_similarity_lift_over_the_baseline():
    lift = text_personalization(
        ["a space story", "a farm story"], ["a plain story", "a farm story"], ["space", "space"], FakeEncoder()
    )
    assert lift["personalized"] > lift["baseline"] and lift["win_rate"] == 0.5
    assert lift["lift"] == pytest.approx(lift["personalized"] - lift["baseline"])
    with pytest.raises(ValueError, match="one of each"):
        text_personalization(["a"], [], ["b"], FakeEncoder())


def test_guard_precision_recall_on_a_hand_computed_case():
    # verdicts: passed; labels: good. Rejected: 2 (1 bad), bad: 2 (1 rejected); accepted: 3 (2 good).
    figures = guard_precision_recall([True, True, True, False, False], [True, True, False, False, True])
    assert figures["precision"] == 0.5 and figures["recall"] == 0.5
    assert figures["acceptance_precision"] == pytest.approx(2 / 3) and figures["acceptance_recall"] == pytest.approx(
        2 / 3
    )


def test_description_metrics_bundles_every_metric():
    checker = GroundingChecker(ITEMS)
    metrics = description_metrics(
        ["Alpha Story is a Drama for you.", "Alpha Story, a Drama."],
        [ALPHA, ALPHA],
        [UserProfile(genres=("Drama",))] * 2,
        checker,
    )
    assert metrics["grounding_rate"] == 1.0 and metrics["preference_coverage"] == 1.0
    assert metrics["guard_pass_rate"] == 1.0
    assert set(metrics) == {
        "guard_pass_rate",
        "grounding_rate",
        "preference_coverage",
        "distinct_1",
        "distinct_2",
        "cross_user_diversity",
    }
    with_baseline = description_metrics(
        ["A space Drama.", "A farm Drama."],
        [ALPHA, ALPHA],
        [UserProfile(genres=("Drama",))] * 2,
        checker,
        baseline_texts=["A plain story.", "A plain story."],
        history_texts=["space", "farm"],
        encoder=FakeEncoder(),
    )
    assert with_baseline["baseline_preference_coverage"] == 0.0 and with_baseline["personalization_lift"] > 0
    assert {"personalization_win_rate", "history_similarity", "cross_user_diversity_embedding"} <= set(with_baseline)
