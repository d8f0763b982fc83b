"""Repeat interactions (re-purchase data): a test item the user already had is excluded as seen
and can never be hit; that is counted and warned about, and SplitConfig(allow_repeats=True)
keeps seen items rankable."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from genrec.data import Dataset, load_dataset
from genrec.evaluation import SplitConfig, evaluate_full_ranking, split
from genrec.rankers import create_ranker


@pytest.fixture
def repurchases(tmp_path: Path) -> Dataset:
    """Three users who buy items 1, 2, 3 and then item 1 again (their leave-one-out test item)."""
    rows = [f"{user},{item},{time}" for user in (1, 2, 3) for time, item in enumerate((1, 2, 3, 1), start=1)]
    (tmp_path / "interactions.csv").write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    (tmp_path / "items.csv").write_text("item_id,title\n1,Milk\n2,Bread\n3,Eggs\n4,Tea\n")
    return load_dataset(tmp_path)


def test_repeated_test_items_are_reported_at_load(repurchases: Dataset) -> None:
    assert (repurchases.report.repeat_interactions, repurchases.report.test_items_already_seen) == (3, 3)


def test_seen_test_items_are_unreachable_and_warned_about(repurchases: Dataset) -> None:
    the_split = split(repurchases)
    ranker = create_ranker("popular")
    ranker.fit(the_split, progress=False)
    with pytest.warns(UserWarning, match=r"3 of 3 users have only targets they already saw; excluded as seen"):
        result = evaluate_full_ranking(ranker, the_split.test, the_split.item_popularity())
    assert result.n_unreachable_users == 3 and result.to_dict()["n_unreachable_users"] == 3
    assert result.metrics["HR@20"] == 0.0
    assert not (result.recommended == repurchases.item_index([1])[0]).any()  # milk is never recommended


def test_allow_repeats_keeps_seen_items_rankable(repurchases: Dataset) -> None:
    the_split = split(repurchases, SplitConfig(allow_repeats=True))
    assert not the_split.test.exclude_seen and not the_split.valid.exclude_seen
    assert not the_split.test.subset(np.array([0])).exclude_seen
    ranker = create_ranker("popular")
    ranker.fit(the_split, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = evaluate_full_ranking(ranker, the_split.test, the_split.item_popularity())
    # milk and bread have 3 training interactions each; the tie goes to the lower index, milk
    assert result.recommended[:, 0].tolist() == repurchases.item_index([1, 1, 1]).tolist()
    assert (result.metrics["HR@5"], result.metrics["NDCG@5"], result.n_unreachable_users) == (1.0, 1.0, 0)


def test_allow_repeats_is_a_checked_field() -> None:
    assert SplitConfig().allow_repeats is False
    with pytest.raises(ValueError, match="allow_repeats"):
        SplitConfig(allow_repeats="sometimes")
